/**
 * An `effect/sql` client for the embedded PGlite database (PostgreSQL compiled to WebAssembly).
 *
 * PGlite has a single connection, so every statement and every transaction takes the one permit of
 * a semaphore: a transaction keeps the connection for its whole scope and nothing else interleaves.
 * Statements are compiled by the PostgreSQL compiler of `@effect/sql-pg`, so the same SQL runs here
 * and on a PostgreSQL server.
 */
import { mkdir } from "node:fs/promises"
import { PGlite } from "@electric-sql/pglite"
import { makeCompiler } from "@effect/sql-pg/PgClient"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Semaphore from "effect/Semaphore"
import * as Stream from "effect/Stream"
import * as Reactivity from "effect/reactivity/Reactivity"
import * as SqlClient from "effect/sql/SqlClient"
import type { Connection } from "effect/sql/SqlConnection"
import {
  ConnectionError,
  ConstraintError,
  SqlError,
  SqlSyntaxError,
  UniqueViolation,
  UnknownError
} from "effect/sql/SqlError"
import { connectFailed, lockDataDir } from "./internal/dataDirLock.ts"
import { executeOver } from "./internal/sqlSupport.ts"

/** Options of {@link layer}. */
export interface PgliteClientOptions {
  /** Directory of the database files; an in-memory database when omitted. */
  readonly dataDir?: string | undefined
}

const describeTarget = (dataDir: string | undefined) =>
  dataDir === undefined ? "the in-memory PGlite database" : `the PGlite database in ${dataDir}`

const toSqlError = (cause: unknown, operation: string): SqlError => {
  const code = (cause as { code?: unknown } | null)?.code
  const message = cause instanceof Error ? cause.message : String(cause)
  const props = { cause, message, operation }
  if (typeof code !== "string") return new SqlError({ reason: new ConnectionError(props) })
  if (code === "23505") {
    const constraint = (cause as { constraint?: unknown }).constraint
    return new SqlError({ reason: new UniqueViolation({ ...props, constraint: typeof constraint === "string" ? constraint : "unknown" }) })
  }
  if (code.startsWith("23")) return new SqlError({ reason: new ConstraintError(props) })
  if (code.startsWith("42")) return new SqlError({ reason: new SqlSyntaxError(props) })
  if (code.startsWith("08")) return new SqlError({ reason: new ConnectionError(props) })
  return new SqlError({ reason: new UnknownError(props) })
}

const makeConnection = (db: PGlite): Connection => {
  const rows = (sql: string, params: ReadonlyArray<unknown>) =>
    Effect.tryPromise({
      try: () => db.query<Record<string, unknown>>(sql, params as Array<unknown>),
      catch: (cause) => toSqlError(cause, "execute")
    }).pipe(Effect.map((result) => result.rows))
  const values = (sql: string, params: ReadonlyArray<unknown>) =>
    Effect.tryPromise({
      try: () => db.query<Array<unknown>>(sql, params as Array<unknown>, { rowMode: "array" }),
      catch: (cause) => toSqlError(cause, "execute")
    }).pipe(Effect.map((result) => result.rows))
  const execute = executeOver(rows)
  return {
    execute,
    executeUnprepared: execute,
    executeRaw: (sql, params) =>
      Effect.tryPromise({ try: () => db.query(sql, params as Array<unknown>), catch: (cause) => toSqlError(cause, "execute") }),
    executeValues: values,
    executeValuesUnprepared: values,
    // PGlite has no cursors: the rows are read at once, then streamed.
    executeStream: (sql, params, transformRows) =>
      Stream.fromIterableEffect(execute(sql, params, transformRows))
  }
}

/**
 * Opens PGlite and builds an `SqlClient` over it; the database is closed when the layer is released.
 * Fails with an `SqlError` when the database cannot be opened (e.g. the directory is not writable or
 * another PGlite instance, in this process or another, holds it).
 */
export const make = (options: PgliteClientOptions = {}) =>
  Effect.gen(function* () {
    if (options.dataDir !== undefined) {
      const dataDir = options.dataDir
      yield* Effect.tryPromise({
        try: () => mkdir(dataDir, { recursive: true }),
        catch: connectFailed(`cannot create ${dataDir}`)
      })
      yield* lockDataDir(dataDir, describeTarget(dataDir))
    }
    const db = yield* Effect.acquireRelease(
      Effect.tryPromise({
        try: async () => {
          const db = new PGlite(options.dataDir)
          await db.waitReady
          return db
        },
        catch: connectFailed(`cannot open ${describeTarget(options.dataDir)}`)
      }),
      (db) => Effect.promise(() => db.close()).pipe(Effect.ignore)
    )
    const connection = makeConnection(db)
    const acquirers = SqlClient.makeSqliteAcquirers({
      connection: Effect.succeed(connection),
      semaphore: yield* Semaphore.make(1)
    })
    return yield* SqlClient.make({
      ...acquirers,
      compiler: makeCompiler(),
      driver: "pglite",
      spanAttributes: [
        ["db.system.name", "postgresql"],
        ["db.namespace", options.dataDir ?? "memory"]
      ]
    })
  })

/** Provides `SqlClient` over an embedded PGlite database, file-backed or in memory. */
export const layer = (options: PgliteClientOptions = {}): Layer.Layer<SqlClient.SqlClient, SqlError> =>
  Layer.effectContext(Effect.map(make(options), (client) => Context.make(SqlClient.SqlClient, client))).pipe(
    Layer.provide(Reactivity.layer)
  )
