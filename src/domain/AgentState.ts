/**
 * The lifecycle states of an agent, as a documented union of string literals.
 *
 * - `pending`: accepted, nothing provisioned yet.
 * - `spawning`: the sandbox is being provisioned and started (bounded by spawn_timeout_seconds).
 * - `running`: the sandbox runs; its activity is `idle` or `busy` (an execute step in progress).
 * - `suspending`: the sandbox is being paused or checkpointed.
 * - `suspended`: paused, or checkpointed and removed.
 * - `resuming`: the sandbox is being unpaused or restored.
 * - `terminating`: graceful stop, then forced after graceful_shutdown_seconds.
 * - `terminated`: final; the sandbox is gone.
 * - `failed`: the sandbox died or an operation failed; the fleet may restart it.
 */
import * as Schema from "effect/Schema"

/** @see the module documentation for the meaning of each state. */
export const AgentState = Schema.Literals([
  "pending",
  "spawning",
  "running",
  "suspending",
  "suspended",
  "resuming",
  "terminating",
  "terminated",
  "failed"
])
/** @see AgentState */
export type AgentState = typeof AgentState.Type

/** Whether a running agent is executing a step. */
export const AgentActivity = Schema.Literals(["idle", "busy"])
/** @see AgentActivity */
export type AgentActivity = typeof AgentActivity.Type

/** Lifecycle operations a user can ask for; each is an event of the agent machine. */
export type AgentOperation = "spawn" | "suspend" | "resume" | "terminate" | "execute" | "restart"
