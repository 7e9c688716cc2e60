// The store contracts against the embedded SQLite store (node:sqlite), in memory and on a file, plus
// what only a durable store can show: reopening keeps data, one process holds the file, migrations
// are idempotent, transactions keep other statements out, and an upgrade keeps a PGlite database.
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, describe, expect, it, layer } from "@effect/vitest"
import { Effect } from "effect"
import { SqlClient } from "effect/sql/SqlClient"
import { CheckpointStore } from "../../src/services/CheckpointStore.ts"
import { StateStore } from "../../src/services/StateStore.ts"
import { runMigrations, sqliteMigrations } from "../../src/store/Migrations.ts"
import * as SqliteClient from "../../src/store/SqliteClient.ts"
import * as Store from "../../src/store/Store.ts"
import { lockIsExclusive, storeContracts, survivesReopen, transactionIsolation } from "./storeContracts.ts"

const root = mkdtempSync(join(tmpdir(), "l02-sqlite-"))
afterAll(() => rmSync(root, { recursive: true, force: true }))
const memoryDir = join(root, "memory")
const fileDir = join(root, "file")

layer(Store.layer({ pglite: "memory", embedded: "sqlite", dataDir: memoryDir }), { timeout: "60 seconds", excludeTestServices: true })("SQLite in memory", (it) => storeContracts(it))

layer(Store.layer({ pglite: "file", dataDir: fileDir }), { timeout: "60 seconds", excludeTestServices: true })("SQLite on a file (the default embedded store)", (it) => storeContracts(it))

describe("SQLite file store across restarts", () => {
  const open = Store.layer({ pglite: "file", dataDir: fileDir })

  it.live("keeps records and checkpoints after closing and reopening, and fails a truncated content file with E2062", () =>
    Effect.andThen(
      Effect.sync(() => expect(existsSync(Store.sqliteFileOf(fileDir))).toBe(true)),
      survivesReopen(open, fileDir)
    ), 60_000)

  it.live("refuses a second open of a database in use with E2060, and takes over a lock left by a dead process", () =>
    lockIsExclusive(open, `${Store.sqliteFileOf(fileDir)}.lock`), 60_000)

  it.live("applies migrations once: a second run is a no-op", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient
      expect(yield* runMigrations()).toEqual(sqliteMigrations.map((m) => m.id))
      expect(yield* runMigrations()).toEqual([])
      const tables = yield* sql<{ readonly name: string }>`SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name`
      expect(tables.map((t) => t.name)).toEqual(["agent_checkpoints", "agent_instances", "execution_run_events", "execution_runs", "fleet_operations", "l02_migrations", "lifecycle_events", "workflow_runs"])
    }).pipe(Effect.provide(SqliteClient.layer())), 60_000)
})

describe("SqliteClient", () => {
  it.live("commits and rolls back transactions, and keeps other statements out while one is open", () =>
    Effect.asVoid(transactionIsolation).pipe(Effect.provide(SqliteClient.layer())), 60_000)

  it.live("answers the rows of an unprepared query without parameters, and runs an unprepared script whole", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient
      yield* sql`CREATE TABLE a (x INTEGER); CREATE TABLE b (y INTEGER); INSERT INTO a VALUES (1), (2)`.unprepared
      const tables = yield* sql<{ readonly name: string }>`SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name`.unprepared
      expect(tables.map((t) => t.name)).toEqual(["a", "b"])
      expect(yield* sql<{ readonly x: number }>`SELECT x FROM a ORDER BY x`.unprepared).toEqual([{ x: 1 }, { x: 2 }])
      yield* sql`UPDATE a SET x = x + 10`.unprepared
      expect(yield* sql<{ readonly x: number }>`SELECT x FROM a ORDER BY x`).toEqual([{ x: 11 }, { x: 12 }])
    }).pipe(Effect.provide(SqliteClient.layer())), 60_000)
})

describe("the embedded engine", () => {
  it("is SQLite by default, and stays PGlite for a data directory that already holds a PGlite database", () => {
    const fresh = join(root, "fresh")
    const upgraded = join(root, "upgraded")
    mkdirSync(join(upgraded, "pglite"), { recursive: true })
    expect(Store.embeddedEngineOf({ pglite: "file", dataDir: fresh })).toBe("sqlite")
    expect(Store.embeddedEngineOf({ pglite: "file", dataDir: upgraded })).toBe("pglite")
    expect(Store.embeddedEngineOf({ pglite: "file", embedded: "sqlite", dataDir: upgraded })).toBe("sqlite")
    expect(Store.embeddedEngineOf({ pglite: "memory", dataDir: upgraded })).toBe("sqlite")
  })
})
