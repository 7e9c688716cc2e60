// The store contracts against a real PostgreSQL server, each run in its own schema (dropped
// afterwards), plus concurrent startup of two runtimes against one fresh schema.
// Gated by L02_TEST_POSTGRES_URL, e.g. postgres://postgres@127.0.0.1:5432/test (CI sets it).
import { randomUUID } from "node:crypto"
import { mkdtempSync, rmSync, truncateSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, describe, expect, it, layer } from "@effect/vitest"
import * as PgClient from "@effect/sql-pg/PgClient"
import { Effect, Layer, Option, Redacted } from "effect"
import { SqlClient } from "effect/sql/SqlClient"
import type { Checkpoint } from "../../src/domain/Checkpoint.ts"
import { StateStore } from "../../src/services/StateStore.ts"
import { migrations } from "../../src/store/Migrations.ts"
import * as Store from "../../src/store/Store.ts"
import { checkpointStoreTests } from "../services/CheckpointStoreContract.ts"
import { workflowStoreTests } from "../services/WorkflowStoreContract.ts"
import { eventLogTests } from "../services/EventLogContract.ts"
import { agentRecord, stateStoreTests } from "../services/StateStoreContract.ts"
import { atomicWritesTests } from "./atomicWritesContract.ts"

const baseUrl = process.env.L02_TEST_POSTGRES_URL ?? ""
const root = mkdtempSync(join(tmpdir(), "l02-pg-"))
afterAll(() => rmSync(root, { recursive: true, force: true }))

const admin = () => PgClient.layer({ url: Redacted.make(baseUrl), applicationName: "l02-test-admin" })

/** A fresh schema for the life of the layer, dropped (with everything in it) on release. */
const schemaLayer = (schema: string) =>
  Layer.effectDiscard(
    Effect.acquireRelease(
      SqlClient.use((sql) => sql.unsafe(`CREATE SCHEMA "${schema}"`)),
      () => SqlClient.use((sql) => sql.unsafe(`DROP SCHEMA "${schema}" CASCADE`)).pipe(Effect.orDie)
    ).pipe(Effect.orDie)
  ).pipe(Layer.provide(admin()))

/** The base URL with the connection's search_path set to `schema`. */
const urlFor = (schema: string) => {
  if (baseUrl === "") return ""
  const url = new URL(baseUrl)
  url.searchParams.set("options", `-c search_path=${schema}`)
  return url.toString()
}

const schemaName = () => `l02_test_${randomUUID().replaceAll("-", "").slice(0, 16)}`

describe.skipIf(!baseUrl)("PostgreSQL store", () => {
  const schema = schemaName()
  const storeLayer = Store.layer({ url: urlFor(schema), pglite: "file", dataDir: join(root, "contract") }).pipe(
    Layer.provide(schemaLayer(schema))
  )
  const truncate = (checkpoint: Checkpoint) =>
    Effect.sync(() => truncateSync(checkpoint.storageLocation, Math.floor(checkpoint.sizeBytes / 2)))

  layer(storeLayer, { timeout: "60 seconds", excludeTestServices: true })("contracts", (it) => {
    describe("StateStore", () => stateStoreTests(it))
    describe("CheckpointStore", () => checkpointStoreTests(it, { corrupt: truncate }))
    describe("EventLog", () => eventLogTests(it))
    describe("AtomicWrites", () => atomicWritesTests(it))
    describe("WorkflowStore", () => workflowStoreTests(it))
  })

  it.live(
    "two runtimes starting at once against a fresh schema migrate it exactly once",
    () =>
      Effect.gen(function* () {
        const fresh = schemaName()
        const open = Store.layer({ url: urlFor(fresh), pglite: "file", dataDir: join(root, "concurrent") })
        const record = agentRecord()
        yield* Effect.scoped(
          Effect.gen(function* () {
            yield* Layer.build(schemaLayer(fresh))
            yield* Effect.all(
              [
                Effect.provide(StateStore.use((s) => s.saveAgent(record)), open),
                Effect.provide(StateStore.use((s) => s.listAgents()), open)
              ],
              { concurrency: 2 }
            )
            const seen = yield* Effect.provide(StateStore.use((s) => s.getAgent(record.agentId)), open)
            expect(Option.getOrThrow(seen)).toStrictEqual(record)
            const applied = yield* Effect.provide(
              SqlClient.use((sql) => sql.unsafe<{ readonly id: number }>(`SELECT id FROM "${fresh}".l02_migrations ORDER BY id`)),
              admin()
            )
            expect(applied.map((r) => Number(r.id))).toEqual(migrations.map((m) => m.id))
          })
        )
      }),
    60_000
  )
})

describe("PostgreSQL store errors", () => {
  it.live(
    "fails with E2060 naming the server to check, without the password, when PostgreSQL cannot be reached",
    () =>
      Effect.gen(function* () {
        const open = Store.layer({ url: "postgres://l02:s3cret@127.0.0.1:1/l02", pglite: "file", dataDir: join(root, "unreachable") })
        const error = yield* Effect.flip(Effect.provide(Effect.void, open))
        expect(error._tag).toBe("StoreFailed")
        expect(error.code).toBe("E2060")
        expect(error.message).toContain("127.0.0.1:1")
        expect(error.message).not.toContain("s3cret")
      }),
    60_000
  )
})
