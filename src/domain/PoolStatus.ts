/**
 * A warm pool at a glance: its bounds, what is ready, what is being made, and what it has handed out.
 */
import * as Schema from "effect/Schema"

/** The state of one warm pool (config `pools.warm`). */
export const PoolStatus = Schema.Struct({
  name: Schema.String,
  /** How many ready sandboxes the pool refills to. */
  size: Schema.Number,
  /** The pool refills when fewer than this many are ready. */
  min: Schema.Number,
  /** The largest `size` a resize may set. */
  max: Schema.Number,
  /** Ready sandboxes wait paused (a claim unpauses them). */
  paused: Schema.Boolean,
  /** How many ready sandboxes a paused pool keeps running, so a claim need not unpause (0 for a running pool). */
  thawed: Schema.Number,
  ready: Schema.Number,
  /** Ready sandboxes that run now (all of a running pool's; up to `thawed` of a paused pool's). */
  readyRunning: Schema.Number,
  creating: Schema.Number,
  /** Sandboxes spawns have claimed since the runtime started. */
  claimedTotal: Schema.Number,
  /** Sandboxes the pool has made (or adopted at start) since the runtime started. */
  createdTotal: Schema.Number,
  /** Spawns that matched the pool's template while it had nothing ready (they were provisioned cold). */
  missesTotal: Schema.Number,
  /** The last failure to make a sandbox, if the last attempt failed. */
  lastError: Schema.optional(Schema.Struct({ code: Schema.String, message: Schema.String }))
})
/** @see PoolStatus */
export type PoolStatus = typeof PoolStatus.Type
