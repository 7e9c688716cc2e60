/**
 * The port for the lifecycle event log: every state change and supervision decision, in order.
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Ref from "effect/Ref"
import type { StoreFailed } from "../domain/Errors.ts"
import type { LifecycleEvent } from "../domain/LifecycleEvent.ts"

/** Which events to read back. */
export interface EventQuery {
  readonly agentId?: string | undefined
  /** Only events with an id greater than this. */
  readonly afterId?: number | undefined
  readonly limit?: number | undefined
  /** With `limit`: the newest `limit` matching events instead of the oldest (still oldest first). */
  readonly latest?: boolean | undefined
}

/** The shape of the event log. */
export interface EventLogShape {
  /** Appends events in order; returns them with their assigned ids. */
  readonly append: (events: ReadonlyArray<LifecycleEvent>) => Effect.Effect<ReadonlyArray<LifecycleEvent>, StoreFailed>
  /** Events matching `query`, in append order (ascending id); at most `limit` when given. */
  readonly query: (query: EventQuery) => Effect.Effect<ReadonlyArray<LifecycleEvent>, StoreFailed>
}

/** The event log port. */
export class EventLog extends Context.Service<EventLog, EventLogShape>()("l02/EventLog") {}

interface MemoryLog {
  readonly nextId: number
  /** Append-only and shared between successive states, so appending is not quadratic. */
  readonly events: Array<LifecycleEvent>
}

/**
 * The in-memory event log: events in a `Ref`, ids assigned 1, 2, 3... in append order.
 * Each build starts empty.
 */
export const layerMemory: Layer.Layer<EventLog> = Layer.effect(
  EventLog,
  Effect.gen(function* () {
    const ref = yield* Ref.make<MemoryLog>({ nextId: 1, events: [] })
    return EventLog.of({
      append: (events) =>
        Ref.modify(ref, (log) => {
          const stored = events.map((event, i): LifecycleEvent => ({ ...event, eventId: log.nextId + i }))
          log.events.push(...stored)
          return [stored, { nextId: log.nextId + stored.length, events: log.events }] as const
        }),
      query: (query) =>
        Effect.map(Ref.get(ref), (log) => {
          const afterId = query.afterId ?? 0
          if (query.latest === true && query.limit !== undefined) {
            const newest: Array<LifecycleEvent> = []
            for (let i = log.events.length - 1; i >= Math.max(0, afterId) && newest.length < query.limit; i--) {
              const event = log.events[i]!
              if (query.agentId === undefined || event.agentId === query.agentId) newest.push(event)
            }
            return newest.reverse()
          }
          // Ids are 1-based and dense, so the first candidate is at index afterId.
          const out: Array<LifecycleEvent> = []
          for (let i = Math.max(0, afterId); i < log.events.length; i++) {
            if (query.limit !== undefined && out.length >= query.limit) break
            const event = log.events[i]!
            if (query.agentId === undefined || event.agentId === query.agentId) out.push(event)
          }
          return out
        })
    })
  })
)
