// The contract every EventLog implementation passes. Tests use fresh agent ids and read relative to
// the ids they were given, so they never assume an empty log.
import { randomUUID } from "node:crypto"
import { expect, layer, type Vitest } from "@effect/vitest"
import { Effect, type Layer } from "effect"
import type { LifecycleEvent } from "../../src/domain/LifecycleEvent.ts"
import { EventLog } from "../../src/services/EventLog.ts"

const event = (agentId: string, i: number, overrides: Partial<LifecycleEvent> = {}): LifecycleEvent => ({
  agentId,
  type: "agent.transition",
  fromState: "spawning",
  toState: "running",
  data: { step: i, detail: { ok: true, list: [1, "x", null] } },
  at: new Date(Date.UTC(2026, 0, 14, 10, 0, i, 123)).toISOString(),
  ...overrides
})

const strip = ({ eventId: _id, ...rest }: LifecycleEvent) => rest

/** Registers the EventLog contract tests on `it`, whose layer provides the EventLog under test. */
export const eventLogTests = (it: Vitest.MethodsNonLive<EventLog>) => {
  it.effect("assigns increasing ids in append order and keeps every field", () =>
    Effect.gen(function* () {
      const log = yield* EventLog
      const agentId = randomUUID()
      const events = [
        event(agentId, 1),
        event(agentId, 2, { type: "agent.restart", fromState: undefined, toState: undefined, data: undefined }),
        event(agentId, 3, { data: "plain string" })
      ].map((e) => JSON.parse(JSON.stringify(e)) as LifecycleEvent)
      const appended = yield* log.append(events)
      expect(appended.map(strip)).toStrictEqual(events)
      const ids = appended.map((e) => e.eventId!)
      expect(ids.every((id) => Number.isInteger(id) && id > 0)).toBe(true)
      expect(ids).toEqual([...ids].sort((a, b) => a - b))
      expect(new Set(ids).size).toBe(3)
      expect(yield* log.query({ agentId })).toStrictEqual(appended)
      const second = yield* log.query({ agentId, afterId: ids[0]! })
      expect("fromState" in second[0]!).toBe(false)
      expect("data" in second[0]!).toBe(false)
    }))

  it.effect("appends nothing for an empty batch", () =>
    Effect.gen(function* () {
      const log = yield* EventLog
      expect(yield* log.append([])).toEqual([])
    }))

  it.effect("filters by agent, reads after an id and honours the limit", () =>
    Effect.gen(function* () {
      const log = yield* EventLog
      const [a, b] = [randomUUID(), randomUUID()]
      const appended = yield* log.append([event(a!, 1), event(b!, 2), event(a!, 3), event(b!, 4), event(a!, 5)])
      const idOf = (i: number) => appended[i]!.eventId!
      expect((yield* log.query({ agentId: a })).map((e) => e.eventId)).toEqual([idOf(0), idOf(2), idOf(4)])
      expect((yield* log.query({ agentId: a, afterId: idOf(0) })).map((e) => e.eventId)).toEqual([idOf(2), idOf(4)])
      expect((yield* log.query({ agentId: a, limit: 2 })).map((e) => e.eventId)).toEqual([idOf(0), idOf(2)])
      expect((yield* log.query({ agentId: b, afterId: idOf(3) }))).toEqual([])
      expect(yield* log.query({ agentId: a, limit: 0 })).toEqual([])
      expect((yield* log.query({ afterId: idOf(0), limit: 4 })).map((e) => e.eventId)).toEqual(appended.slice(1).map((e) => e.eventId))
      expect(yield* log.query({ agentId: "not-a-uuid" })).toEqual([])
      // The newest of them, oldest first.
      expect((yield* log.query({ agentId: a, limit: 2, latest: true })).map((e) => e.eventId)).toEqual([idOf(2), idOf(4)])
      expect((yield* log.query({ agentId: b, limit: 5, latest: true })).map((e) => e.eventId)).toEqual([idOf(1), idOf(3)])
      expect((yield* log.query({ agentId: a, afterId: idOf(2), limit: 5, latest: true })).map((e) => e.eventId)).toEqual([idOf(4)])
    }))

  it.effect("gives concurrent appends distinct ids and keeps each batch in order", () =>
    Effect.gen(function* () {
      const log = yield* EventLog
      const agentId = randomUUID()
      const batches = yield* Effect.forEach(
        Array.from({ length: 20 }, (_, b) => [event(agentId, b, { type: `batch.${b}.0` }), event(agentId, b, { type: `batch.${b}.1` })]),
        log.append,
        { concurrency: "unbounded" }
      )
      const all = yield* log.query({ agentId })
      expect(all).toHaveLength(40)
      expect(new Set(all.map((e) => e.eventId)).size).toBe(40)
      for (const batch of batches) {
        expect(batch[0]!.eventId!).toBeLessThan(batch[1]!.eventId!)
      }
      const ids = all.map((e) => e.eventId!)
      expect(ids).toEqual([...ids].sort((x, y) => x - y))
    }))
}

/** Registers the EventLog contract tests for `logLayer`, built once for the suite. */
export const eventLogContract = (name: string, logLayer: Layer.Layer<EventLog, unknown>) =>
  layer(logLayer, { timeout: "60 seconds", excludeTestServices: true })(`EventLog contract: ${name}`, eventLogTests)
