// The contract every StateStore implementation passes. Tests never assume an empty store: each one
// uses fresh UUIDs and its own runtime id, so one shared store (or database schema) serves the suite.
import { randomUUID } from "node:crypto"
import { expect, layer, type Vitest } from "@effect/vitest"
import { Effect, type Layer, Option } from "effect"
import type { SandboxConfiguration } from "../../src/domain/SandboxConfiguration.ts"
import { trustProfiles } from "../../src/domain/SandboxConfiguration.ts"
import { type AgentRecord, type FleetOperation, StateStore } from "../../src/services/StateStore.ts"

const sandbox: SandboxConfiguration = {
  trustLevel: "STANDARD",
  runtimeClass: "gvisor",
  networkPolicy: trustProfiles.STANDARD.network,
  securityContext: trustProfiles.STANDARD.security,
  resources: { cpu: "2", cpuMillis: 2000, memory: "2Gi", memoryBytes: 2 * 1024 ** 3, tokensPerHour: 100_000, pids: 256 }
}

/** A complete agent record with fresh ids; `overrides` replace fields. */
export const agentRecord = (overrides: Partial<AgentRecord> = {}): AgentRecord => ({
  agentId: randomUUID(),
  sessionId: randomUUID(),
  runtimeId: "rt-contract",
  state: "running",
  config: { name: "contract-agent", trustLevel: "STANDARD", labels: { team: "a" }, env: { MODE: "test" } },
  sandbox,
  sandboxId: "sbx-1",
  snapshot: { status: "active", value: { running: "idle" }, context: { restarts: 0, nested: [1, "two", null, { ok: true }] } },
  resourceUsage: { cpuPercent: 12.5, memoryBytes: 1024 },
  createdAt: "2026-01-14T10:00:00.000Z",
  updatedAt: "2026-01-14T10:00:01.000Z",
  ...overrides
})

/** Registers the StateStore contract tests on `it`, whose layer provides the StateStore under test. */
export const stateStoreTests = (it: Vitest.MethodsNonLive<StateStore>) => {
  it.effect("returns a saved record unchanged, every field included", () =>
    Effect.gen(function* () {
      const store = yield* StateStore
      const record = agentRecord({ terminatedAt: "2026-01-14T11:00:00.123Z", state: "terminated" })
      yield* store.saveAgent(record)
      expect(Option.getOrThrow(yield* store.getAgent(record.agentId))).toStrictEqual(record)
    }))

  it.effect("leaves optional fields absent when they were not given", () =>
    Effect.gen(function* () {
      const store = yield* StateStore
      const { sandboxId: _s, resourceUsage: _r, ...minimal } = agentRecord({ state: "pending" })
      yield* store.saveAgent(minimal)
      const got = Option.getOrThrow(yield* store.getAgent(minimal.agentId))
      expect(got).toStrictEqual(minimal)
      expect("sandboxId" in got).toBe(false)
      expect("terminatedAt" in got).toBe(false)
    }))

  it.effect("fences a former host: once another token claimed an agent, saves carrying the old token change nothing", () =>
    Effect.gen(function* () {
      const store = yield* StateStore
      const record = agentRecord({ state: "running", hostToken: "runner-a/1" })
      yield* store.saveAgent(record)
      expect(Option.getOrThrow(yield* store.getAgent(record.agentId)).hostToken).toBe("runner-a/1")
      expect(yield* store.claimAgent(record.agentId, "runner-b/1")).toBe(true)
      expect(yield* store.claimAgent(randomUUID(), "runner-b/1")).toBe(false)
      // The former owner writes, alone and in a batch with another agent of its own: its fenced record stays as it was.
      const other = agentRecord({ state: "running", hostToken: "runner-a/1" })
      yield* store.saveAgent({ ...record, state: "failed", updatedAt: "2999-01-01T00:00:00.000Z" })
      yield* store.saveAgents([{ ...record, state: "terminated", updatedAt: "2999-01-02T00:00:00.000Z" }, other])
      const kept = Option.getOrThrow(yield* store.getAgent(record.agentId))
      expect([kept.state, kept.updatedAt, kept.hostToken]).toEqual(["running", record.updatedAt, "runner-b/1"])
      expect(Option.getOrThrow(yield* store.getAgent(other.agentId)).state).toBe("running")
      // The new owner's saves apply; so does a save that carries no token (one supervisor), keeping the token.
      yield* store.saveAgents([{ ...record, state: "suspended", hostToken: "runner-b/1" }])
      expect(Option.getOrThrow(yield* store.getAgent(record.agentId)).state).toBe("suspended")
      const { hostToken: _t, ...untokened } = record
      yield* store.saveAgent({ ...untokened, state: "running" })
      expect(Option.getOrThrow(yield* store.getAgent(record.agentId))).toMatchObject({ state: "running", hostToken: "runner-b/1" })
    }))

  it.effect("answers None for an unknown agent, even for an id that is not a UUID", () =>
    Effect.gen(function* () {
      const store = yield* StateStore
      expect(Option.isNone(yield* store.getAgent(randomUUID()))).toBe(true)
      expect(Option.isNone(yield* store.getAgent("not-a-uuid"))).toBe(true)
    }))

  it.effect("replaces the record on a second save of the same agent", () =>
    Effect.gen(function* () {
      const store = yield* StateStore
      const record = agentRecord()
      yield* store.saveAgent(record)
      const next = { ...record, state: "suspended" as const, snapshot: { v: 2 }, updatedAt: "2026-01-14T10:05:00.000Z" }
      yield* store.saveAgent(next)
      expect(Option.getOrThrow(yield* store.getAgent(record.agentId))).toStrictEqual(next)
      expect(yield* store.listAgents({ runtimeId: record.runtimeId, sessionId: record.sessionId })).toStrictEqual([next])
    }))

  it.effect("saves a batch of records at once: new and existing ones, every field kept, optional ones absent", () =>
    Effect.gen(function* () {
      const store = yield* StateStore
      const runtimeId = `rt-batch-${randomUUID().slice(0, 8)}`
      const existing = agentRecord({ runtimeId, createdAt: "2026-01-14T09:00:00.000Z" })
      yield* store.saveAgent(existing)
      const { sandboxId: _s, resourceUsage: _r, ...minimal } = agentRecord({ runtimeId, state: "pending", createdAt: "2026-01-14T09:00:02.000Z" })
      const batch = [
        { ...existing, state: "suspended" as const, snapshot: null, updatedAt: "2026-01-14T10:05:00.000Z" },
        minimal,
        agentRecord({ runtimeId, state: "terminated", terminatedAt: "2026-01-14T11:00:00.123Z", createdAt: "2026-01-14T09:00:01.000Z" })
      ]
      yield* store.saveAgents(batch)
      yield* store.saveAgents([])
      for (const record of batch) expect(Option.getOrThrow(yield* store.getAgent(record.agentId))).toStrictEqual(record)
      expect((yield* store.listAgents({ runtimeId })).map((r) => r.agentId)).toEqual([batch[0]!.agentId, batch[2]!.agentId, batch[1]!.agentId])
      expect((yield* store.listAgents({ runtimeId, labels: { team: "a" } })).length).toBe(3)
    }))

  it.effect("deletes a record; deleting an unknown agent is not an error", () =>
    Effect.gen(function* () {
      const store = yield* StateStore
      const record = agentRecord()
      yield* store.saveAgent(record)
      yield* store.deleteAgent(record.agentId)
      expect(Option.isNone(yield* store.getAgent(record.agentId))).toBe(true)
      yield* store.deleteAgent(record.agentId)
      yield* store.deleteAgent("not-a-uuid")
    }))

  it.effect("lists by state, session, runtime and labels, oldest first with ties by id", () =>
    Effect.gen(function* () {
      const store = yield* StateStore
      const runtimeId = `rt-${randomUUID()}`
      const sessionId = randomUUID()
      const at = (s: number) => `2026-02-01T00:00:${String(s).padStart(2, "0")}.000Z`
      const [tieA, tieB] = [randomUUID(), randomUUID()].sort()
      const records = [
        agentRecord({ runtimeId, state: "running", createdAt: at(3), config: { name: "c", labels: { team: "a", tier: "gold" } } }),
        agentRecord({ runtimeId, state: "suspended", createdAt: at(1), sessionId, config: { name: "a", labels: { team: "b" } } }),
        agentRecord({ runtimeId, state: "failed", createdAt: at(2), agentId: tieB!, sessionId, config: { name: "b" } }),
        agentRecord({ runtimeId, state: "running", createdAt: at(2), agentId: tieA!, config: { name: "d", labels: { team: "a" } } })
      ]
      yield* Effect.forEach(records, store.saveAgent, { concurrency: "unbounded" })
      const ids = (rs: ReadonlyArray<AgentRecord>) => rs.map((r) => r.config.name)
      expect(ids(yield* store.listAgents({ runtimeId }))).toEqual(["a", "d", "b", "c"])
      expect(ids(yield* store.listAgents({ runtimeId, state: "running" }))).toEqual(["d", "c"])
      expect(ids(yield* store.listAgents({ runtimeId, state: ["failed", "suspended"] }))).toEqual(["a", "b"])
      expect(ids(yield* store.listAgents({ runtimeId, state: [] }))).toEqual([])
      expect(ids(yield* store.listAgents({ sessionId }))).toEqual(["a", "b"])
      expect(ids(yield* store.listAgents({ runtimeId, labels: { team: "a" } }))).toEqual(["d", "c"])
      expect(ids(yield* store.listAgents({ runtimeId, labels: { team: "a", tier: "gold" } }))).toEqual(["c"])
      expect(ids(yield* store.listAgents({ runtimeId, labels: { team: "a", tier: "silver" } }))).toEqual([])
      expect(ids(yield* store.listAgents({ runtimeId, labels: {} }))).toEqual(["a", "d", "b", "c"])
      expect(ids(yield* store.listAgents({ runtimeId, sessionId, state: "failed" }))).toEqual(["b"])
      const all = yield* store.listAgents()
      for (const r of records) expect(all.map((a) => a.agentId)).toContain(r.agentId)
    }))

  it.effect("keeps every one of many concurrent saves", () =>
    Effect.gen(function* () {
      const store = yield* StateStore
      const runtimeId = `rt-${randomUUID()}`
      const records = Array.from({ length: 40 }, () => agentRecord({ runtimeId }))
      yield* Effect.forEach(records, store.saveAgent, { concurrency: "unbounded" })
      const listed = yield* store.listAgents({ runtimeId })
      expect(new Set(listed.map((r) => r.agentId))).toEqual(new Set(records.map((r) => r.agentId)))
    }))

  it.effect("keeps fleet operations, replaces them by id and lists the newest first", () =>
    Effect.gen(function* () {
      const store = yield* StateStore
      // Far-future times keep these the newest operations whatever else the store holds.
      const op = (day: number, overrides: Partial<FleetOperation> = {}): FleetOperation => ({
        operationId: randomUUID(),
        operationType: "scale",
        targetReplicas: day,
        status: "pending",
        reason: `scale to ${day}`,
        priority: "normal",
        createdAt: `2999-01-0${day}T00:00:00.000Z`,
        ...overrides
      })
      const first = op(1)
      const { targetReplicas: _t, reason: _r, priority: _p, ...second } = op(2, { operationType: "drain" })
      const third = op(3)
      yield* Effect.forEach([second, third, first], store.saveFleetOperation)
      const done = { ...first, status: "completed" as const, completedAt: "2999-01-01T00:01:00.000Z" }
      yield* store.saveFleetOperation(done)
      expect(yield* store.listFleetOperations(3)).toStrictEqual([third, second, done])
      expect(yield* store.listFleetOperations(1)).toStrictEqual([third])
      expect(yield* store.listFleetOperations(0)).toStrictEqual([])
      expect((yield* store.listFleetOperations()).slice(0, 3)).toStrictEqual([third, second, done])
    }))
}

/** Registers the StateStore contract tests for `storeLayer`, built once for the suite. */
export const stateStoreContract = (name: string, storeLayer: Layer.Layer<StateStore, unknown>) =>
  layer(storeLayer, { timeout: "60 seconds", excludeTestServices: true })(`StateStore contract: ${name}`, stateStoreTests)
