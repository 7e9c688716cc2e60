/**
 * Ends every process of a sandbox's own uid, not only those of its process group: a program that
 * left its group (setsid, a double fork) would otherwise outlive its sandbox and, once the uid is
 * claimed again, run as the next agent's uid, able to read its workspace and signal its processes.
 *
 * A stop kills what /proc shows as the uid's; a remove, before the uid is given back, also kills as
 * that uid (`kill -KILL -1` from a shell of that uid): the kernel signals every process that uid may
 * signal, which are exactly its own, non-dumpable ones included (/proc shows those as root's). Only
 * ever used for a uid the sandbox holds alone.
 */
import { spawn } from "node:child_process"
import { readdirSync, statSync } from "node:fs"
import * as Effect from "effect/Effect"

/** Processes /proc shows as owned by `uid` (zombies included, until they are reaped). */
export const pidsOfUid = (uid: number): Array<number> => {
  const pids: Array<number> = []
  for (const name of readdirSync("/proc")) {
    const first = name.charCodeAt(0)
    if (first < 48 || first > 57) continue
    try {
      if (statSync(`/proc/${name}`).uid === uid) pids.push(Number(name))
    } catch {
      // Gone meanwhile.
    }
  }
  return pids
}

/**
 * SIGKILL to every process of `uid`, sent by a shell running as `uid` (it spares only itself): it
 * reaches the processes /proc does not show as that uid's (non-dumpable ones).
 */
export const killAllAs = (uid: number, gid: number): Effect.Effect<void> =>
  Effect.callback<void>((resume) => {
    const child = spawn("/bin/sh", ["-c", "kill -KILL -1"], { uid, gid, stdio: "ignore", env: { PATH: "/usr/bin:/bin" } })
    child.once("error", () => resume(Effect.void))
    child.once("close", () => resume(Effect.void))
  })

const killVisible = (uid: number): number => {
  const pids = pidsOfUid(uid)
  for (const pid of pids) {
    try {
      // Checked again just before the signal: the pid is this uid's now, not a reused one.
      if (statSync(`/proc/${pid}`).uid === uid) process.kill(pid, "SIGKILL")
    } catch {
      // Gone meanwhile.
    }
  }
  return pids.length
}

/**
 * Kills every process /proc shows as `uid`'s and waits until none is left (the killed ones
 * reaped), up to `timeoutMs`; true when none is left.
 */
export const sweepUid = (uid: number, timeoutMs: number): Effect.Effect<boolean> =>
  Effect.gen(function* () {
    const deadline = Date.now() + timeoutMs
    while (killVisible(uid) > 0) {
      if (Date.now() > deadline) return false
      yield* Effect.sleep("2 millis")
    }
    return true
  })
