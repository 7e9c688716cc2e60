/**
 * The runtime's lifecycle events as they happen: published to `events()` subscribers after they are
 * written, supervision decisions written and published with a span each, and background work that
 * follows the runtime's activity: giving memory back once quiet, collecting expired checkpoints.
 */
import * as Effect from "effect/Effect"
import * as PubSub from "effect/PubSub"
import * as Schedule from "effect/Schedule"
import * as Stream from "effect/Stream"
import type { LifecycleEvent } from "../../domain/LifecycleEvent.ts"
import type { RuntimeConfig } from "../../domain/RuntimeConfig.ts"
import type { CheckpointStoreShape } from "../../services/CheckpointStore.ts"
import type { EventLogShape } from "../../services/EventLog.ts"
import { makeQuietPeriods, memoryReducingGc } from "./memoryReducer.ts"
import type { Spans } from "./spans.ts"

/** The events of one runtime. */
export const makeRuntimeEvents = (deps: {
  readonly config: RuntimeConfig
  readonly now: () => number
  readonly iso: () => string
  readonly eventLog: EventLogShape
  readonly checkpoints: CheckpointStoreShape
  readonly spans: Spans
  /** What gives memory back once quiet; default V8's memory-reducing collection. */
  readonly reduceMemory?: (() => void) | undefined
}) =>
  Effect.gen(function* () {
    const { config, now, iso, spans } = deps
    const hub = yield* PubSub.unbounded<LifecycleEvent>()
    // Lifecycle activity marks the runtime busy; once quiet for a while, the memory of the busy period goes back.
    const idleMs = config.runtime.reduce_memory_after_idle_seconds * 1000
    const quiet = makeQuietPeriods(idleMs, now)
    const publish = (events: ReadonlyArray<LifecycleEvent>) => {
      for (const event of events) PubSub.publishUnsafe(hub, event)
      quiet.touch()
    }
    const reduce = idleMs > 0 ? (deps.reduceMemory ?? memoryReducingGc()) : undefined
    const ttl = config.lifecycle.checkpoint_ttl_seconds
    return {
      publish,
      stream: Stream.fromPubSub(hub),
      shutdown: PubSub.shutdown(hub),
      /** A supervision decision: written as a lifecycle event, published, and a span when traces are on. */
      record: (agentId: string, type: string, data: unknown) =>
        void Effect.runFork(
          spans.background(
            deps.eventLog.append([{ agentId, type, data, at: iso() }]).pipe(
              Effect.tap((events) => Effect.sync(() => publish(events))),
              Effect.ignore,
              Effect.withSpan(`l02.${type}`, { attributes: { ...spans.spanBase, "l02.agent_id": agentId, ...(data === undefined ? {} : { "l02.decision": JSON.stringify(data) }) } })
            )
          )
        ),
      /** Background work to fork for the runtime's life. */
      background: [
        ...(reduce === undefined ? [] : [
          Effect.sync(() => {
            if (quiet.due()) reduce()
          }).pipe(Effect.repeat(Schedule.spaced(`${Math.max(250, Math.floor(idleMs / 4))} millis`)), Effect.asVoid)
        ]),
        // Expired checkpoints are collected in the background.
        ...(ttl <= 0 ? [] : [
          deps.checkpoints.removeExpired(iso()).pipe(
            Effect.flatMap((removed) => (removed > 0 ? Effect.sync(() => publish([{ agentId: "", type: "checkpoints.expired", data: { removed }, at: iso() }])) : Effect.void)),
            Effect.ignore,
            Effect.repeat(Schedule.spaced(`${Math.min(ttl, 300)} seconds`)),
            Effect.asVoid
          )
        ])
      ]
    }
  })
