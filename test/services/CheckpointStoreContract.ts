// The contract every CheckpointStore implementation passes. Tests use fresh ids and never assume an
// empty store; times are driven by the TestClock (saves stamp createdAt from the Effect Clock).
import { randomUUID } from "node:crypto"
import { expect, layer, type Vitest } from "@effect/vitest"
import { Effect, type Layer } from "effect"
import { TestClock } from "effect/testing"
import type { Checkpoint } from "../../src/domain/Checkpoint.ts"
import {
  type CheckpointRequest,
  CheckpointStore,
  encodeCheckpointContent,
  sha256Hex
} from "../../src/services/CheckpointStore.ts"

/** A checkpoint request with fresh ids and a small workspace; `overrides` replace fields. */
export const checkpointRequest = (overrides: Partial<CheckpointRequest> = {}): CheckpointRequest => ({
  checkpointId: randomUUID(),
  agentId: randomUUID(),
  sessionId: randomUUID(),
  checkpointType: "suspend",
  content: {
    actorState: { status: "active", value: "suspended", context: { n: 1, list: ["a", null, 2.5], text: "zé ✓" } },
    workspace: Uint8Array.from({ length: 4096 }, (_, i) => (i * 31) % 256)
  },
  ...overrides
})

/** Options of the checkpoint contract. */
export interface CheckpointContractOptions {
  /** Damages the stored content of a checkpoint behind the store's back (e.g. truncates its file). */
  readonly corrupt?: ((checkpoint: Checkpoint) => Effect.Effect<void>) | undefined
}

const t0 = Date.parse("2100-01-01T00:00:00.000Z")

/**
 * Runs a test body under its own TestClock. The store layer itself is built with the live clock, so
 * that a store's background fibers (a connection pool's timers) never see the test's time jumps.
 */
const withTestClock = <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.provide(effect, TestClock.layer())

/** Registers the CheckpointStore contract tests on `it`, whose layer provides the store under test. */
export const checkpointStoreTests = (it: Vitest.MethodsNonLive<CheckpointStore>, options: CheckpointContractOptions = {}) => {
  it.effect("saves content and loads it back verified, with its metadata", () =>
    withTestClock(Effect.gen(function* () {
      yield* TestClock.setTime(t0)
      const store = yield* CheckpointStore
      const request = checkpointRequest({ expiresAt: "2100-01-02T00:00:00.000Z" })
      const saved = yield* store.save(request)
      const bytes = encodeCheckpointContent(request.content)
      expect(saved).toMatchObject({
        checkpointId: request.checkpointId,
        agentId: request.agentId,
        sessionId: request.sessionId,
        checkpointType: "suspend",
        sizeBytes: bytes.length,
        sha256: sha256Hex(bytes),
        createdAt: "2100-01-01T00:00:00.000Z",
        expiresAt: "2100-01-02T00:00:00.000Z"
      })
      expect(saved.sha256).toMatch(/^[0-9a-f]{64}$/)
      expect(saved.storageLocation.length).toBeGreaterThan(0)
      const loaded = yield* store.load(request.checkpointId)
      expect(loaded.checkpoint).toStrictEqual(saved)
      expect(loaded.content.actorState).toStrictEqual(request.content.actorState)
      expect(Array.from(loaded.content.workspace!)).toEqual(Array.from(request.content.workspace!))
    })))

  it.effect("round-trips content without a workspace and metadata without an expiry", () =>
    withTestClock(Effect.gen(function* () {
      yield* TestClock.setTime(t0)
      const store = yield* CheckpointStore
      const request = checkpointRequest({ checkpointType: "manual", content: { actorState: [1, 2, 3] } })
      const saved = yield* store.save(request)
      expect("expiresAt" in saved).toBe(false)
      const loaded = yield* store.load(request.checkpointId)
      expect(loaded.content).toStrictEqual({ actorState: [1, 2, 3] })
      expect(loaded.checkpoint).toStrictEqual(saved)
    })))

  it.effect("fails a missing checkpoint with E2061, also for an id that is not a UUID", () =>
    Effect.gen(function* () {
      const store = yield* CheckpointStore
      for (const id of [randomUUID(), "not-a-uuid"]) {
        const error = yield* Effect.flip(store.load(id))
        expect(error._tag).toBe("CheckpointNotFound")
        expect(error.code).toBe("E2061")
        expect(error.message).toContain(id)
      }
    }))

  it.effect("fails an expired checkpoint with E2062", () =>
    withTestClock(Effect.gen(function* () {
      yield* TestClock.setTime(t0)
      const store = yield* CheckpointStore
      const request = checkpointRequest({ expiresAt: new Date(t0 + 60_000).toISOString() })
      yield* store.save(request)
      yield* store.load(request.checkpointId)
      yield* TestClock.adjust("61 seconds")
      const error = yield* Effect.flip(store.load(request.checkpointId))
      expect(error._tag).toBe("CheckpointCorrupt")
      expect(error.code).toBe("E2062")
      expect(error.message).toContain("expired")
    })))

  it.effect("lists an agent's checkpoints only, oldest first", () =>
    withTestClock(Effect.gen(function* () {
      yield* TestClock.setTime(t0)
      const store = yield* CheckpointStore
      const agentId = randomUUID()
      const ids: Array<string> = []
      for (let i = 0; i < 3; i++) {
        const saved = yield* store.save(checkpointRequest({ agentId }))
        ids.push(saved.checkpointId)
        yield* TestClock.adjust("1 second")
      }
      yield* store.save(checkpointRequest())
      const listed = yield* store.list(agentId)
      expect(listed.map((c) => c.checkpointId)).toEqual(ids)
      expect(listed.every((c) => c.agentId === agentId)).toBe(true)
      expect(yield* store.list(randomUUID())).toEqual([])
      expect(yield* store.list("not-a-uuid")).toEqual([])
    })))

  it.effect("replaces a checkpoint saved again under the same id", () =>
    withTestClock(Effect.gen(function* () {
      yield* TestClock.setTime(t0)
      const store = yield* CheckpointStore
      const request = checkpointRequest()
      yield* store.save(request)
      const again = { ...request, checkpointType: "manual" as const, content: { actorState: { v: 2 } } }
      const saved = yield* store.save(again)
      const loaded = yield* store.load(request.checkpointId)
      expect(loaded.checkpoint).toStrictEqual(saved)
      expect(loaded.content).toStrictEqual({ actorState: { v: 2 } })
      expect(yield* store.list(request.agentId)).toHaveLength(1)
    })))

  it.effect("removes a checkpoint; removing a missing one is not an error", () =>
    withTestClock(Effect.gen(function* () {
      yield* TestClock.setTime(t0)
      const store = yield* CheckpointStore
      const request = checkpointRequest()
      yield* store.save(request)
      yield* store.remove(request.checkpointId)
      expect((yield* Effect.flip(store.load(request.checkpointId)))._tag).toBe("CheckpointNotFound")
      expect(yield* store.list(request.agentId)).toEqual([])
      yield* store.remove(request.checkpointId)
      yield* store.remove("not-a-uuid")
    })))

  it.effect("removes exactly the checkpoints that expired before the given time", () =>
    withTestClock(Effect.gen(function* () {
      yield* TestClock.setTime(t0)
      const store = yield* CheckpointStore
      const agentId = randomUUID()
      // Expiries long before any other test's, so no other checkpoint is in range.
      const old1 = checkpointRequest({ agentId, expiresAt: "2000-01-01T00:00:00.000Z" })
      const old2 = checkpointRequest({ agentId, expiresAt: "2000-06-01T00:00:00.000Z" })
      const later = checkpointRequest({ agentId, expiresAt: "2000-12-31T00:00:00.000Z" })
      const never = checkpointRequest({ agentId })
      yield* Effect.forEach([old1, old2, later, never], store.save)
      expect(yield* store.removeExpired("2000-07-01T00:00:00.000Z")).toBe(2)
      expect((yield* store.list(agentId)).map((c) => c.checkpointId).sort()).toEqual([later.checkpointId, never.checkpointId].sort())
      expect((yield* Effect.flip(store.load(old1.checkpointId)))._tag).toBe("CheckpointNotFound")
      expect(yield* store.removeExpired("2000-07-01T00:00:00.000Z")).toBe(0)
    })))

  const corrupt = options.corrupt
  if (corrupt !== undefined) {
    it.effect("fails a checkpoint whose stored content was damaged with E2062", () =>
      withTestClock(Effect.gen(function* () {
        yield* TestClock.setTime(t0)
        const store = yield* CheckpointStore
        const saved = yield* store.save(checkpointRequest())
        yield* corrupt(saved)
        const error = yield* Effect.flip(store.load(saved.checkpointId))
        expect(error._tag).toBe("CheckpointCorrupt")
        expect(error.code).toBe("E2062")
        expect(error.message).toContain("integrity")
      })))
  }
}

/** Registers the CheckpointStore contract tests for `storeLayer`, built once for the suite. */
export const checkpointStoreContract = (
  name: string,
  storeLayer: Layer.Layer<CheckpointStore, unknown>,
  options: CheckpointContractOptions = {}
) =>
  layer(storeLayer, { timeout: "60 seconds", excludeTestServices: true })(`CheckpointStore contract: ${name}`, (it) => checkpointStoreTests(it, options))
