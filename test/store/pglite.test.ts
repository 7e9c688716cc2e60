// The store contracts against embedded PGlite, in memory and on files, plus what only a durable
// store can show: reopening keeps data, migrations are idempotent, a damaged content file is E2062.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, describe, expect, it, layer } from "@effect/vitest"
import { Effect } from "effect"
import { SqlClient } from "effect/sql/SqlClient"
import { CheckpointStore } from "../../src/services/CheckpointStore.ts"
import { StateStore } from "../../src/services/StateStore.ts"
import { migrations, runMigrations } from "../../src/store/Migrations.ts"
import * as PgliteClient from "../../src/store/PgliteClient.ts"
import * as Store from "../../src/store/Store.ts"
import { lockIsExclusive, storeContracts, survivesReopen, transactionIsolation } from "./storeContracts.ts"

const root = mkdtempSync(join(tmpdir(), "l02-store-"))
afterAll(() => rmSync(root, { recursive: true, force: true }))
const memoryDir = join(root, "memory")
const fileDir = join(root, "file")

layer(Store.layer({ pglite: "memory", embedded: "pglite", dataDir: memoryDir }), { timeout: "60 seconds", excludeTestServices: true })("PGlite in memory", (it) => storeContracts(it))

layer(Store.layer({ pglite: "file", embedded: "pglite", dataDir: fileDir }), { timeout: "60 seconds", excludeTestServices: true })("PGlite on files", (it) => storeContracts(it))

// Runs after the file store above is closed, and reopens its directory.
describe("PGlite file store across restarts", () => {
  const open = Store.layer({ pglite: "file", embedded: "pglite", dataDir: fileDir })

  it.live(
    "keeps records and checkpoints after closing and reopening, and fails a truncated content file with E2062",
    () =>
      survivesReopen(open, fileDir),
    60_000
  )

  it.live(
    "refuses a second open of a data directory in use with E2060, and takes over a lock left by a dead process",
    () =>
      lockIsExclusive(open, join(fileDir, "pglite.lock")),
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
        expect(tables.map((t) => t.name)).toEqual(["agent_checkpoints", "agent_instances", "execution_run_events", "execution_runs", "fleet_operations", "l02_migrations", "lifecycle_events", "workflow_runs"])
      }).pipe(Effect.provide(PgliteClient.layer({ dataDir: join(fileDir, "pglite") }))),
    60_000
  )
})

describe("PgliteClient", () => {
  it.live(
    "commits and rolls back transactions, and keeps other statements out while one is open",
    () =>
      Effect.gen(function* () {
        const error = yield* transactionIsolation
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
        const error = yield* Effect.flip(Effect.provide(Effect.void, Store.layer({ pglite: "file", embedded: "pglite", dataDir: blocked })))
        expect(error._tag).toBe("StoreFailed")
        expect(error.code).toBe("E2060")
        expect(error.message).toContain(join(blocked, "pglite"))
      }),
    60_000
  )
})
