/**
 * Gives back the memory of a busy period once the runtime goes quiet. A burst of spawns grows V8's
 * young generation to its maximum (two 32 MB semi-spaces on 64-bit Node 24) and fragments the old
 * one; V8 keeps both while the process idles, so a supervisor of 1,000 idle agents would hold ~40 MB
 * of empty nursery indefinitely. One memory-reducing full collection (V8's "last resort" flavour:
 * it shrinks the young generation and compacts) returns it. It holds the event loop for about 1.5 ms
 * per MB of live heap (70 ms with 1,000 idle agents, 260 ms with 10,000), so it runs only when it
 * pays: when the young generation has grown past {@link youngGenerationThresholdBytes}.
 *
 * The runtime considers it once per quiet period: after lifecycle activity, when none has happened
 * for `runtime.reduce_memory_after_idle_seconds`. Never while operations are going on.
 */
import { getHeapSpaceStatistics, setFlagsFromString } from "node:v8"
import { runInNewContext } from "node:vm"

type Gc = (options?: { type?: "major" | "minor"; execution?: "sync" | "async"; flavor?: "regular" | "last-resort" }) => void

let gc: Gc | undefined | null = null

/** The young generation's resident size above which a quiet runtime reduces memory (16 MB). */
export const youngGenerationThresholdBytes = 16 * 2 ** 20

const youngGenerationBytes = (): number => getHeapSpaceStatistics().find((s) => s.space_name === "new_space")?.physical_space_size ?? 0

/**
 * The memory-reducing collection (run only when the young generation is past the threshold; it
 * returns whether it ran), or undefined where V8's collector cannot be reached. Uses
 * `globalThis.gc` when the process runs with --expose-gc; otherwise exposes it to a throwaway
 * context only (the process's own global object gets no `gc`).
 */
export const memoryReducingGc = (): (() => boolean) | undefined => {
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
  if (collect === undefined) return undefined
  return () => {
    if (youngGenerationBytes() < youngGenerationThresholdBytes) return false
    collect({ type: "major", execution: "sync", flavor: "last-resort" })
    return true
  }
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
