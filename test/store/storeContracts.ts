// Every store contract, registered on a layer of the SQL store (SQLite, PGlite or PostgreSQL).
import { describe, expect, type Vitest } from "@effect/vitest"
import { Effect, Layer, Option } from "effect"
import { SqlClient } from "effect/sql/SqlClient"
import type { Checkpoint } from "../../src/domain/Checkpoint.ts"
import type { StoreFailed } from "../../src/domain/Errors.ts"
import { CheckpointStore } from "../../src/services/CheckpointStore.ts"
import type { EventLog } from "../../src/services/EventLog.ts"
import { type AtomicWrites, StateStore } from "../../src/services/StateStore.ts"
import { checkpointRequest, checkpointStoreTests } from "../services/CheckpointStoreContract.ts"
import { eventLogTests } from "../services/EventLogContract.ts"
import type { WorkflowStore } from "../../src/services/WorkflowStore.ts"
import { workflowStoreTests } from "../services/WorkflowStoreContract.ts"
import type { RunLog } from "../../src/services/RunLog.ts"
import { runLogTests } from "../services/RunLogContract.ts"
import { agentRecord, stateStoreTests } from "../services/StateStoreContract.ts"
import { atomicWritesTests } from "./atomicWritesContract.ts"
import { spawnSync } from "node:child_process"
import { existsSync, truncateSync, writeFileSync } from "node:fs"
import { join } from "node:path"

/** Truncates a checkpoint's content file to half its size, behind the store's back. */
export const truncate = (checkpoint: Checkpoint) => Effect.sync(() => truncateSync(checkpoint.storageLocation, Math.floor(checkpoint.sizeBytes / 2)))

/** The state, atomic-write, checkpoint and event-log contracts, plus the refusal of a whole batch. */
export const storeContracts = (it: Vitest.MethodsNonLive<StateStore | CheckpointStore | EventLog | AtomicWrites | WorkflowStore | RunLog>) => {
  describe("StateStore", () => stateStoreTests(it))
  it.effect("a batch save is one statement: a record the database refuses fails the batch with E2060 and saves none of it", () =>
    Effect.gen(function* () {
      const store = yield* StateStore
      const good = agentRecord({ runtimeId: "rt-atomic" })
      const error = yield* Effect.flip(store.saveAgents([good, agentRecord({ agentId: "not-a-uuid", runtimeId: "rt-atomic" })]))
      expect(error).toMatchObject({ _tag: "StoreFailed", code: "E2060" })
      expect(Option.isNone(yield* store.getAgent(good.agentId))).toBe(true)
    }))
  describe("AtomicWrites", () => atomicWritesTests(it))
  describe("CheckpointStore", () => checkpointStoreTests(it, { corrupt: truncate }))
  describe("EventLog", () => eventLogTests(it))
  describe("WorkflowStore", () => workflowStoreTests(it))
  describe("RunLog", () => runLogTests(it))
}

/**
 * A client's transactions: commit, rollback, and a plain statement that starts while one is open
 * waits for it (it must not run inside the transaction and see its uncommitted row). Ends with a
 * query of a table that does not exist, whose error it returns.
 */
export const transactionIsolation = Effect.gen(function* () {
  const sql = yield* SqlClient
  yield* sql`CREATE TEMPORARY TABLE tx_check (n INTEGER)`
  yield* sql.withTransaction(sql`INSERT INTO tx_check VALUES (1)`)
  const failing = sql.withTransaction(
    Effect.gen(function* () {
      yield* sql`INSERT INTO tx_check VALUES (2)`
      yield* Effect.sleep("50 millis")
      return yield* Effect.fail("abandoned" as const)
    })
  )
  const [outcome, seen] = yield* Effect.all(
    [Effect.flip(failing), Effect.delay(sql<{ readonly n: number }>`SELECT n FROM tx_check ORDER BY n`, "10 millis")],
    { concurrency: 2 }
  )
  expect(outcome).toBe("abandoned")
  expect(seen.map((r) => Number(r.n))).toEqual([1])
  expect((yield* sql<{ readonly n: number }>`SELECT n FROM tx_check ORDER BY n`).map((r) => Number(r.n))).toEqual([1])
  const error = yield* Effect.flip(sql`SELECT * FROM no_such_table`)
  expect(error._tag).toBe("SqlError")
  return error
})

/**
 * An embedded store is one process's: a second open while it is held is E2060 saying so, and the lock
 * of a process that is gone is taken over.
 */
export const lockIsExclusive = (open: Layer.Layer<StateStore, StoreFailed>, lockFile: string) =>
  Effect.gen(function* () {
    yield* Effect.scoped(
      Effect.gen(function* () {
        yield* Layer.build(open)
        expect(existsSync(lockFile)).toBe(true)
        const error = yield* Effect.flip(Effect.provide(Effect.void, open))
        expect(error.code).toBe("E2060")
        expect(error.message).toContain("in use by this process")
      })
    )
    expect(existsSync(lockFile)).toBe(false)
    writeFileSync(lockFile, String(spawnSync(process.execPath, ["-e", ""]).pid!))
    yield* Effect.provide(StateStore.use((s) => s.listAgents()), open)
    expect(existsSync(lockFile)).toBe(false)
  })

/**
 * A file store across a close and a reopen: records and checkpoints are kept, content lives in
 * `<dataDir>/checkpoints`, and a content file truncated meanwhile is E2062.
 */
export const survivesReopen = (open: Layer.Layer<StateStore | CheckpointStore, StoreFailed>, dataDir: string) =>
  Effect.gen(function* () {
    const record = agentRecord({ state: "suspended" })
    const request = checkpointRequest({ agentId: record.agentId, sessionId: record.sessionId })
    const damaged = checkpointRequest({ agentId: record.agentId, sessionId: record.sessionId })
    const saved = yield* Effect.gen(function* () {
      yield* (yield* StateStore).saveAgent(record)
      const checkpoints = yield* CheckpointStore
      yield* checkpoints.save(request)
      return yield* checkpoints.save(damaged)
    }).pipe(Effect.provide(open))
    expect(saved.storageLocation).toBe(join(dataDir, "checkpoints", `${damaged.checkpointId}.bin`))
    yield* truncate(saved)

    yield* Effect.gen(function* () {
      expect(Option.getOrThrow(yield* (yield* StateStore).getAgent(record.agentId))).toStrictEqual(record)
      const checkpoints = yield* CheckpointStore
      const loaded = yield* checkpoints.load(request.checkpointId)
      expect(loaded.content.actorState).toStrictEqual(request.content.actorState)
      expect(Array.from(loaded.content.workspace!)).toEqual(Array.from(request.content.workspace!))
      const error = yield* Effect.flip(checkpoints.load(damaged.checkpointId))
      expect(error._tag).toBe("CheckpointCorrupt")
      expect(error.code).toBe("E2062")
      expect((yield* checkpoints.list(record.agentId)).length).toBe(2)
    }).pipe(Effect.provide(open))
  })
