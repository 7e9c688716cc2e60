/**
 * The port for the lifecycle event log: every state change and supervision decision, in order.
 */
import { Context, type Effect } from "effect"
import type { StoreFailed } from "../domain/Errors.ts"
import type { LifecycleEvent } from "../domain/LifecycleEvent.ts"

/** Which events to read back. */
export interface EventQuery {
  readonly agentId?: string | undefined
  /** Only events with an id greater than this. */
  readonly afterId?: number | undefined
  readonly limit?: number | undefined
}

/** The shape of the event log. */
export interface EventLogShape {
  /** Appends events in order; returns them with their assigned ids. */
  readonly append: (events: ReadonlyArray<LifecycleEvent>) => Effect.Effect<ReadonlyArray<LifecycleEvent>, StoreFailed>
  readonly query: (query: EventQuery) => Effect.Effect<ReadonlyArray<LifecycleEvent>, StoreFailed>
}

/** The event log port. */
export class EventLog extends Context.Service<EventLog, EventLogShape>()("l02/EventLog") {}
