/**
 * Heartbeat liveness: while an agent runs, its main program's output is read for
 * `{"type":"heartbeat"}` lines, and an agent silent for longer than its timeout is reported.
 *
 * One reader per watched agent, attached to its sandbox for as long as the sandbox is the agent's;
 * checks run on the runtime's XState clock (a `SimulatedClock` in tests), so time is the runtime's own.
 * A suspended agent is not checked (a paused program cannot speak); on resume its silence is counted
 * from the resume.
 */
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type { SandboxError } from "../../domain/Errors.ts"
import type { Attachment } from "../../services/SandboxBackend.ts"

/** What the watch needs from the runtime. */
export interface HeartbeatDeps {
  readonly attach: (sandboxId: string) => Effect.Effect<Attachment, SandboxError, Scope.Scope>
  readonly fork: (effect: Effect.Effect<void>) => Fiber.Fiber<void>
  readonly now: () => number
  readonly setTimeout: (fn: () => void, ms: number) => unknown
  readonly clearTimeout: (id: unknown) => void
  /** Called once per silence: the agent sent nothing for `silentMs` (at least its timeout). */
  readonly onMissed: (agentId: string, sandboxId: string, silentMs: number) => void
}

interface Watched {
  readonly sandboxId: string
  readonly timeoutMs: number
  /** Silence counts from here: the last heartbeat, or the start of the watch or of the resume. */
  last: number
  /** The last heartbeat actually received. */
  heard: number | undefined
  checking: boolean
  timer: unknown
  reader: Fiber.Fiber<void> | undefined
}

/** True for a heartbeat line of the JSON-lines protocol. */
export const isHeartbeat = (line: string): boolean => {
  if (!line.startsWith("{") || !line.includes("heartbeat")) return false
  try {
    return (JSON.parse(line) as { type?: unknown }).type === "heartbeat"
  } catch {
    return false
  }
}

/** Builds the watch; every method is synchronous and cheap for agents that are not watched. */
export const makeHeartbeatWatch = (deps: HeartbeatDeps) => {
  const watched = new Map<string, Watched>()

  const arm = (agentId: string, w: Watched) => {
    if (w.timer !== undefined) deps.clearTimeout(w.timer)
    w.timer = deps.setTimeout(() => check(agentId, w), Math.max(0, w.last + w.timeoutMs - deps.now()))
  }

  const check = (agentId: string, w: Watched) => {
    w.timer = undefined
    if (watched.get(agentId) !== w || !w.checking) return
    const silentMs = deps.now() - w.last
    if (silentMs < w.timeoutMs) return arm(agentId, w)
    w.checking = false
    deps.onMissed(agentId, w.sandboxId, silentMs)
  }

  const stop = (agentId: string) => {
    const w = watched.get(agentId)
    if (w === undefined) return
    watched.delete(agentId)
    if (w.timer !== undefined) deps.clearTimeout(w.timer)
    if (w.reader !== undefined) deps.fork(Fiber.interrupt(w.reader))
  }

  return {
    /** The agent runs in `sandboxId`: watch it (a new sandbox starts a new reader; silence counts from now). */
    running: (agentId: string, sandboxId: string, timeoutMs: number) => {
      const current = watched.get(agentId)
      if (current !== undefined && current.sandboxId === sandboxId && current.timeoutMs === timeoutMs) {
        if (!current.checking) {
          current.checking = true
          current.last = deps.now()
          arm(agentId, current)
        }
        return
      }
      stop(agentId)
      const w: Watched = { sandboxId, timeoutMs, last: deps.now(), heard: undefined, checking: true, timer: undefined, reader: undefined }
      watched.set(agentId, w)
      w.reader = deps.fork(
        Effect.scoped(
          Effect.flatMap(deps.attach(sandboxId), (attachment) =>
            Stream.runForEach(attachment.output, (output) =>
              Effect.sync(() => {
                if (isHeartbeat(output.line)) w.last = w.heard = deps.now()
              })
            )
          )
        ).pipe(Effect.ignore)
      )
      arm(agentId, w)
    },
    /** The agent is suspended (or between states): keep the reader, stop counting. */
    paused: (agentId: string) => {
      const w = watched.get(agentId)
      if (w === undefined) return
      w.checking = false
      if (w.timer !== undefined) deps.clearTimeout(w.timer)
      w.timer = undefined
    },
    /** The agent left its sandbox for good (terminated, failed, restarting): forget it. */
    stop,
    /** Stops every reader and timer (shutdown). */
    stopAll: () => {
      for (const agentId of [...watched.keys()]) stop(agentId)
    },
    /** When the agent last sent a heartbeat, if it is watched and has sent one. */
    lastHeartbeatAt: (agentId: string): number | undefined => watched.get(agentId)?.heard,
    /** True while a watched, running agent has been silent for longer than its timeout. */
    overdue: (agentId: string): boolean => {
      const w = watched.get(agentId)
      return w !== undefined && w.checking && deps.now() - w.last >= w.timeoutMs
    }
  }
}

/** The watch's operations. */
export type HeartbeatWatch = ReturnType<typeof makeHeartbeatWatch>
