// The AtomicWrites contract of the SQL store (PGlite and PostgreSQL): a batch of agent records and
// its lifecycle events is written together, in order, or not at all.
import { expect, type Vitest } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { EventLog } from "../../src/services/EventLog.ts"
import { AtomicWrites, StateStore } from "../../src/services/StateStore.ts"
import { agentRecord } from "../services/StateStoreContract.ts"

/** Registers the contract's tests on a layer providing the SQL store. */
export const atomicWritesTests = (it: Vitest.MethodsNonLive<AtomicWrites | StateStore | EventLog>) => {
  it.effect("records and their events are written together or not at all (AtomicWrites)", () =>
    Effect.gen(function* () {
      const store = yield* StateStore
      const log = yield* EventLog
      const atomic = yield* AtomicWrites
      const record = agentRecord({ runtimeId: "rt-atomic-events", state: "running" })
      const event = { agentId: record.agentId, type: "agent.running", fromState: "spawning", toState: "running", at: new Date().toISOString() }
      const appended = yield* atomic.saveAgentsAndAppend([record], [event, { ...event, type: "agent.idle", data: { n: 1 } }])
      expect(appended.map((e) => e.type)).toEqual(["agent.running", "agent.idle"])
      expect(appended[1]!.eventId).toBe(appended[0]!.eventId! + 1)
      expect(Option.getOrThrow(yield* store.getAgent(record.agentId)).state).toBe("running")
      expect((yield* log.query({ agentId: record.agentId })).map((e) => [e.eventId, e.type, e.data])).toEqual([
        [appended[0]!.eventId, "agent.running", undefined],
        [appended[1]!.eventId, "agent.idle", { n: 1 }]
      ])
      // An event the database refuses (a timestamp that is none) fails the batch: the record keeps its old state.
      const error = yield* Effect.flip(atomic.saveAgentsAndAppend([{ ...record, state: "suspended" }], [{ ...event, at: "yesterday-ish" }]))
      expect(error).toMatchObject({ _tag: "StoreFailed", code: "E2060" })
      expect(Option.getOrThrow(yield* store.getAgent(record.agentId)).state).toBe("running")
      expect(yield* log.query({ agentId: record.agentId })).toHaveLength(2)
    }))

  it.effect("a fenced record's events are not appended either; the batch's others are", () =>
    Effect.gen(function* () {
      const store = yield* StateStore
      const log = yield* EventLog
      const atomic = yield* AtomicWrites
      const lost = agentRecord({ runtimeId: "rt-fenced", state: "running", hostToken: "runner-a/1" })
      const mine = agentRecord({ runtimeId: "rt-fenced", state: "running", hostToken: "runner-a/1" })
      yield* store.saveAgents([lost, mine])
      yield* store.claimAgent(lost.agentId, "runner-b/1")
      const at = new Date().toISOString()
      const appended = yield* atomic.saveAgentsAndAppend(
        [{ ...lost, state: "failed" }, { ...mine, state: "suspended" }],
        [
          { agentId: lost.agentId, type: "agent.state", fromState: "running", toState: "failed", at },
          { agentId: mine.agentId, type: "agent.state", fromState: "running", toState: "suspended", at },
          { agentId: "00000000-0000-4000-8000-00000000f00d", type: "workflow.note", at }
        ]
      )
      expect(appended.map((e) => [e.agentId, e.type])).toEqual([
        [mine.agentId, "agent.state"],
        ["00000000-0000-4000-8000-00000000f00d", "workflow.note"]
      ])
      expect(Option.getOrThrow(yield* store.getAgent(lost.agentId)).state).toBe("running")
      expect(Option.getOrThrow(yield* store.getAgent(mine.agentId)).state).toBe("suspended")
      expect(yield* log.query({ agentId: lost.agentId })).toHaveLength(0)
      expect((yield* log.query({ agentId: mine.agentId })).map((e) => e.eventId)).toEqual([appended[0]!.eventId])
    }))
}
