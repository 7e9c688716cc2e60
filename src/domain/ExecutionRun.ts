/**
 * A durable execute run: one execute step of an agent with its own id, whose events are kept in the
 * store with a sequence number as they happen, so any client can attach to it from any sequence
 * (docs/execution.md, "Runs").
 */
import type { ErrorData } from "./ErrorCatalog.ts"

/**
 * Where a run is: `running` until it ends; `completed` with its `done` event, `failed` with a coded
 * error, `cancelled` when a client cancelled it, `interrupted` when its supervisor stopped or lost the
 * agent before the step ended (E2036).
 */
export type RunStatus = (typeof runStatuses)[number]

/** Every run status, in lifecycle order. */
export const runStatuses = ["running", "completed", "failed", "cancelled", "interrupted"] as const

/** One run, as the store keeps it and `runs.get` answers it. */
export interface ExecutionRun {
  readonly runId: string
  readonly agentId: string
  /** The runtime (or cluster runner's runtime id) that runs the step. */
  readonly runtimeId: string
  readonly status: RunStatus
  readonly startedAt: string
  readonly endedAt?: string | undefined
  /** The sequence number of its last recorded event (0: none yet). */
  readonly lastSeq: number
  /** For failed, cancelled and interrupted runs: the coded error its last event carries. */
  readonly error?: ErrorData | undefined
}

/**
 * One event of a run: sequence numbers start at 1 and have no gaps; `event` is an execute event
 * (output line, text, tool call or result, usage, error, done); `agentState` is the agent's state
 * when it happened, so a stream that spans a suspend and resume reads truthfully.
 */
export interface RunEvent {
  readonly runId: string
  readonly seq: number
  readonly at: string
  readonly agentState: string
  readonly event: { readonly type: string } & Readonly<Record<string, unknown>>
}
