/**
 * One recorded lifecycle event: a state change, an operation, or a supervision decision.
 */
import * as Schema from "effect/Schema"

/** A lifecycle event as kept in lifecycle_events and delivered to `events()` subscribers. */
export const LifecycleEvent = Schema.Struct({
  eventId: Schema.optional(Schema.Number),
  agentId: Schema.String,
  type: Schema.String,
  fromState: Schema.optional(Schema.String),
  toState: Schema.optional(Schema.String),
  data: Schema.optional(Schema.Unknown),
  at: Schema.String
})
/** @see LifecycleEvent */
export type LifecycleEvent = typeof LifecycleEvent.Type
