/**
 * Operation intents: what an operation (suspend, resume, terminate) is about to do, written with the
 * agent's record before its event is sent to the agent's actor and before any side effect, and kept
 * until the operation's transient state ends. A store that refuses the intent refuses the operation
 * (E2060) with nothing changed; a record that still holds an intent at recovery names an operation
 * whose end was not written, which recovery completes or rolls back by what the sandbox shows.
 */
import type { AgentOperation, AgentState } from "../../domain/AgentState.ts"

/** An operation under way, as the agent's record holds it. */
export interface AgentIntent {
  readonly operation: Extract<AgentOperation, "suspend" | "resume" | "terminate">
  /** When the intent was written (ISO 8601). */
  readonly at: string
  /** suspend: whether it checkpoints (and removes the sandbox) rather than pauses. */
  readonly checkpoint?: boolean | undefined
  /** resume: the checkpoint it restores from, if named. */
  readonly checkpointId?: string | undefined
  /** terminate: forced, and why. */
  readonly force?: boolean | undefined
  readonly reason?: string | undefined
}

/** The states an operation passes through; an intent lasts until the agent leaves them. */
const transientStates: ReadonlySet<AgentState> = new Set<AgentState>(["suspending", "resuming", "terminating"])

/** Whether a transition from `from` to `to` ends the operation an intent names. */
export const endsOperation = (from: AgentState, to: AgentState): boolean => transientStates.has(from) && !transientStates.has(to)

const operations: ReadonlySet<string> = new Set(["suspend", "resume", "terminate"])

/** The intent a stored snapshot holds, if any (anything malformed is no intent). */
export const intentOfSnapshot = (snapshot: unknown): AgentIntent | undefined => {
  const intent = (snapshot as { readonly intent?: unknown } | null | undefined)?.intent
  if (typeof intent !== "object" || intent === null) return undefined
  const i = intent as Record<string, unknown>
  if (typeof i.operation !== "string" || !operations.has(i.operation) || typeof i.at !== "string") return undefined
  return {
    operation: i.operation as AgentIntent["operation"],
    at: i.at,
    ...(typeof i.checkpoint === "boolean" ? { checkpoint: i.checkpoint } : {}),
    ...(typeof i.checkpointId === "string" ? { checkpointId: i.checkpointId } : {}),
    ...(typeof i.force === "boolean" ? { force: i.force } : {}),
    ...(typeof i.reason === "string" ? { reason: i.reason } : {})
  }
}
