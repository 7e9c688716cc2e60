/**
 * Identifiers used across the runtime. Agent, session and checkpoint ids are UUIDs; the
 * runtime id names one runtime instance so that sandboxes it owns can be told apart from those
 * of another runtime sharing the same backend.
 */
import * as Schema from "effect/Schema"

/** An agent's id: a UUID. */
export const AgentId = Schema.String.check(Schema.isUUID())
/** @see AgentId */
export type AgentId = typeof AgentId.Type

/** A session's id: a UUID. */
export const SessionId = Schema.String.check(Schema.isUUID())
/** @see SessionId */
export type SessionId = typeof SessionId.Type

/** A checkpoint's id: a UUID. */
export const CheckpointId = Schema.String.check(Schema.isUUID())
/** @see CheckpointId */
export type CheckpointId = typeof CheckpointId.Type

/** Label keys every sandbox carries so a runtime can find, adopt and reap what it owns. */
export const OwnershipLabels = {
  managedBy: "l02.dev/managed-by",
  agentId: "l02.dev/agent-id",
  runtimeId: "l02.dev/runtime-id",
  sessionId: "l02.dev/session-id"
} as const
