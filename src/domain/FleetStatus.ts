/**
 * The fleet at a glance: agents counted by state, restarts and pending restarts.
 */
import * as Schema from "effect/Schema"

/** Counts of the agents a runtime supervises. */
export const FleetStatus = Schema.Struct({
  runtimeId: Schema.String,
  backend: Schema.String,
  total: Schema.Number,
  byState: Schema.Record(Schema.String, Schema.Number),
  /** Idle agents whose actor is stopped and kept as a snapshot until the next operation wakes it. */
  hibernated: Schema.Number,
  pendingRestarts: Schema.Number,
  restartsTotal: Schema.Number,
  /**
   * With `cluster.enabled`: how many of the fleet's agents this runner hosts (`total` and `byState`
   * then count the whole fleet, from the shared store; hibernated and restarts stay this runner's).
   */
  hostedHere: Schema.optional(Schema.Number)
})
/** @see FleetStatus */
export type FleetStatus = typeof FleetStatus.Type
