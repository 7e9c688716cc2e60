/**
 * Gives back the memory of a busy period once the runtime goes quiet. A burst of spawns grows V8's
 * young generation to its maximum (two 32 MB semi-spaces on 64-bit Node 24) and fragments the old
 * one; V8 keeps both while the process idles, so a supervisor of 1,000 idle agents would hold ~40 MB
 * of empty nursery indefinitely. One memory-reducing full collection (V8's "last resort" flavour:
 * it shrinks the young generation and compacts) returns it, in about 10-50 ms.
 *
 * The runtime runs it once per quiet period: after lifecycle activity, when none has happened for
 * `runtime.reduce_memory_after_idle_seconds`. Never while operations are going on.
 */
import { setFlagsFromString } from "node:v8"
import { runInNewContext } from "node:vm"

type Gc = (options?: { type?: "major" | "minor"; execution?: "sync" | "async"; flavor?: "regular" | "last-resort" }) => void

let gc: Gc | undefined | null = null

/**
 * The memory-reducing collection, or undefined where V8's collector cannot be reached. Uses
 * `globalThis.gc` when the process runs with --expose-gc; otherwise exposes it to a throwaway
 * context only (the process's own global object gets no `gc`).
 */
export const memoryReducingGc = (): (() => void) | undefined => {
  if (gc === null) {
    gc = undefined
    const exposed = (globalThis as { gc?: unknown }).gc
    if (typeof exposed === "function") {
      gc = exposed as Gc
    } else {
      try {
        setFlagsFromString("--expose-gc")
        const fromContext = runInNewContext("gc") as unknown
        if (typeof fromContext === "function") gc = fromContext as Gc
      } catch {
        gc = undefined
      }
    }
  }
  const collect = gc
  return collect === undefined ? undefined : () => collect({ type: "major", execution: "sync", flavor: "last-resort" })
}

/**
 * Tracks activity and says when to reduce: `touch` on activity, `due` (polled) is true once per quiet
 * period, when there was activity since the last reduction and none for `idleMs`.
 */
export const makeQuietPeriods = (idleMs: number, now: () => number) => {
  let dirty = false
  let lastActivity = 0
  return {
    touch: (): void => {
      dirty = true
      lastActivity = now()
    },
    due: (): boolean => {
      if (!dirty || now() - lastActivity < idleMs) return false
      dirty = false
      return true
    }
  }
}
