// The store contracts against embedded PGlite, in memory and on files, plus what only a durable
// store can show: reopening keeps data, migrations are idempotent, a damaged content file is E2062.
import { spawnSync } from "node:child_process"
import { existsSync, mkdtempSync, rmSync, truncateSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, describe, expect, it, layer } from "@effect/vitest"
import { Effect, Layer, Option } from "effect"
import { SqlClient } from "effect/sql/SqlClient"
import type { Checkpoint } from "../../src/domain/Checkpoint.ts"
import { CheckpointStore } from "../../src/services/CheckpointStore.ts"
import { StateStore } from "../../src/services/StateStore.ts"
import { migrations, runMigrations } from "../../src/store/Migrations.ts"
import * as PgliteClient from "../../src/store/PgliteClient.ts"
import * as Store from "../../src/store/Store.ts"
import { checkpointRequest, checkpointStoreTests } from "../services/CheckpointStoreContract.ts"
import { eventLogTests } from "../services/EventLogContract.ts"
import { agentRecord, stateStoreTests } from "../services/StateStoreContract.ts"
import { atomicWritesTests } from "./atomicWritesContract.ts"

const root = mkdtempSync(join(tmpdir(), "l02-store-"))
afterAll(() => rmSync(root, { recursive: true, force: true }))
const memoryDir = join(root, "memory")
const fileDir = join(root, "file")

/** Truncates a checkpoint's content file to half its size, behind the store's back. */
const truncate = (checkpoint: Checkpoint) => Effect.sync(() => truncateSync(checkpoint.storageLocation, Math.floor(checkpoint.sizeBytes / 2)))

layer(Store.layer({ pglite: "memory", dataDir: memoryDir }), { timeout: "60 seconds", excludeTestServices: true })("PGlite in memory", (it) => {
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
})

layer(Store.layer({ pglite: "file", dataDir: fileDir }), { timeout: "60 seconds", excludeTestServices: true })("PGlite on files", (it) => {
  describe("StateStore", () => stateStoreTests(it))
  describe("CheckpointStore", () => checkpointStoreTests(it, { corrupt: truncate }))
  describe("EventLog", () => eventLogTests(it))
})

// Runs after the file store above is closed, and reopens its directory.
describe("PGlite file store across restarts", () => {
  const open = Store.layer({ pglite: "file", dataDir: fileDir })

  it.live(
    "keeps records and checkpoints after closing and reopening, and fails a truncated content file with E2062",
    () =>
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
        expect(saved.storageLocation).toBe(join(fileDir, "checkpoints", `${damaged.checkpointId}.bin`))
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
      }),
    60_000
  )

  it.live(
    "refuses a second open of a data directory in use with E2060, and takes over a lock left by a dead process",
    () =>
      Effect.gen(function* () {
        const lockFile = join(fileDir, "pglite.lock")
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
        const dead = spawnSync(process.execPath, ["-e", ""]).pid!
        writeFileSync(lockFile, String(dead))
        yield* Effect.provide(StateStore.use((s) => s.listAgents()), open)
        expect(existsSync(lockFile)).toBe(false)
      }),
    60_000
  )

  it.live(
    "applies migrations once: a second run is a no-op, on a fresh schema too",
    () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient
        // The store already migrated the public schema.
        expect(yield* runMigrations()).toEqual([])
        yield* sql`CREATE SCHEMA migration_check`
        yield* sql`SET search_path TO migration_check`
        expect(yield* runMigrations()).toEqual(migrations.map((m) => m.id))
        expect(yield* runMigrations()).toEqual([])
        const recorded = yield* sql<{ readonly id: number }>`SELECT id FROM migration_check.l02_migrations ORDER BY id`
        expect(recorded.map((r) => Number(r.id))).toEqual(migrations.map((m) => m.id))
        const tables = yield* sql<{ readonly name: string }>`
          SELECT table_name AS name FROM information_schema.tables WHERE table_schema = 'migration_check' ORDER BY table_name`
        expect(tables.map((t) => t.name)).toEqual(["agent_checkpoints", "agent_instances", "fleet_operations", "l02_migrations", "lifecycle_events"])
      }).pipe(Effect.provide(PgliteClient.layer({ dataDir: join(fileDir, "pglite") }))),
    60_000
  )
})

describe("PgliteClient", () => {
  it.live(
    "commits and rolls back transactions, and keeps other statements out while one is open",
    () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient
        yield* sql`CREATE TEMPORARY TABLE tx_check (n INT)`
        yield* sql.withTransaction(sql`INSERT INTO tx_check VALUES (1)`)
        const failing = sql.withTransaction(
          Effect.gen(function* () {
            yield* sql`INSERT INTO tx_check VALUES (2)`
            yield* Effect.sleep("50 millis")
            return yield* Effect.fail("abandoned" as const)
          })
        )
        // The plain read starts while the transaction is open: it must wait for the rollback, not
        // run inside the transaction and see its uncommitted row.
        const [outcome, seen] = yield* Effect.all(
          [Effect.flip(failing), Effect.delay(sql<{ readonly n: number }>`SELECT n FROM tx_check ORDER BY n`, "10 millis")],
          { concurrency: 2 }
        )
        expect(outcome).toBe("abandoned")
        expect(seen.map((r) => Number(r.n))).toEqual([1])
        expect((yield* sql<{ readonly n: number }>`SELECT n FROM tx_check ORDER BY n`).map((r) => Number(r.n))).toEqual([1])
        const error = yield* Effect.flip(sql`SELECT * FROM no_such_table`)
        expect(error._tag).toBe("SqlError")
        expect(error.reason._tag).toBe("SqlSyntaxError")
      }).pipe(Effect.provide(PgliteClient.layer({ dataDir: join(fileDir, "pglite") }))),
    60_000
  )
})

describe("PGlite store errors", () => {
  it.live(
    "fails to open a data directory that is a file with E2060 saying what to check",
    () =>
      Effect.gen(function* () {
        const blocked = join(root, "blocked")
        rmSync(blocked, { force: true })
        writeFileSync(blocked, "not a directory")
        const error = yield* Effect.flip(Effect.provide(Effect.void, Store.layer({ pglite: "file", dataDir: blocked })))
        expect(error._tag).toBe("StoreFailed")
        expect(error.code).toBe("E2060")
        expect(error.message).toContain(join(blocked, "pglite"))
      }),
    60_000
  )
})
