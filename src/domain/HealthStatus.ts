/**
 * Health of one agent as the supervisor sees it.
 */
import * as Schema from "effect/Schema"

/** Liveness and readiness of an agent. */
export const HealthStatus = Schema.Struct({
  agentId: Schema.String,
  live: Schema.Boolean,
  ready: Schema.Boolean,
  lastHeartbeatAt: Schema.optional(Schema.String),
  checkedAt: Schema.String,
  reason: Schema.optional(Schema.String)
})
/** @see HealthStatus */
export type HealthStatus = typeof HealthStatus.Type
