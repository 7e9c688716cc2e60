/**
 * An `effect/sql` client for an embedded SQLite database through Node's built-in `node:sqlite`
 * (no native addon, no WebAssembly heap): the default embedded store (ADR 0008).
 *
 * One synchronous connection is shared through a semaphore, so a transaction keeps it for its whole
 * scope and nothing interleaves. A file database runs in WAL mode with `synchronous = NORMAL` (a
 * committed write survives a crash of the process; a power loss may lose the last commits) and is
 * locked to this process like the PGlite store.
 */
import { mkdirSync } from "node:fs"
import { dirname } from "node:path"
import { DatabaseSync, type SQLInputValue } from "node:sqlite"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Semaphore from "effect/Semaphore"
import * as Stream from "effect/Stream"
import * as Reactivity from "effect/reactivity/Reactivity"
import * as SqlClient from "effect/sql/SqlClient"
import type { Connection } from "effect/sql/SqlConnection"
import { classifySqliteError, SqlError } from "effect/sql/SqlError"
import * as Statement from "effect/sql/Statement"
import { connectFailed, lockDataDir } from "./internal/dataDirLock.ts"
import { executeOver } from "./internal/sqlSupport.ts"

/** Options of {@link layer}. */
export interface SqliteClientOptions {
  /** The database file; an in-memory database when omitted. */
  readonly filename?: string | undefined
}

const describeTarget = (filename: string | undefined) =>
  filename === undefined ? "the in-memory SQLite database" : `the SQLite database ${filename}`

const toSqlError = (cause: unknown, operation: string): SqlError =>
  new SqlError({ reason: classifySqliteError(cause, { message: cause instanceof Error ? cause.message : String(cause), operation }) })

// node:sqlite binds numbers, strings, bigints, buffers and null; booleans and undefined are mapped.
const bind = (params: ReadonlyArray<unknown>): Array<SQLInputValue> =>
  params.map((p) => (p === undefined ? null : typeof p === "boolean" ? (p ? 1 : 0) : p instanceof Date ? p.toISOString() : (p as SQLInputValue)))

const makeConnection = (db: DatabaseSync): Connection => {
  const statements = new Map<string, ReturnType<DatabaseSync["prepare"]>>()
  const prepared = (sql: string) => {
    let statement = statements.get(sql)
    if (statement === undefined) {
      statement = db.prepare(sql)
      // Prepared statements are kept for reuse, boundedly (queries are built from a few templates).
      if (statements.size >= 200) statements.delete(statements.keys().next().value!)
      statements.set(sql, statement)
    }
    return statement
  }
  const rows = (sql: string, params: ReadonlyArray<unknown>) =>
    Effect.try({
      try: () => {
        const statement = prepared(sql)
        return statement.columns().length > 0 ? (statement.all(...bind(params)) as Array<Record<string, unknown>>) : (statement.run(...bind(params)), [])
      },
      catch: (cause) => toSqlError(cause, "execute")
    })
  const values = (sql: string, params: ReadonlyArray<unknown>) =>
    Effect.try({
      try: () => {
        const statement = prepared(sql)
        statement.setReturnArrays(true)
        try {
          return statement.all(...bind(params)) as unknown as Array<Array<unknown>>
        } finally {
          statement.setReturnArrays(false)
        }
      },
      catch: (cause) => toSqlError(cause, "execute")
    })
  const execute = executeOver(rows)
  // Without parameters the text may be a script of several statements (migrations): one that reads
  // rows is a single query and answers them (the cluster's message storage polls this way); anything
  // else runs whole.
  const script = (sql: string, transformRows: ((rows: ReadonlyArray<any>) => ReadonlyArray<any>) | undefined) =>
    Effect.try({
      try: () => {
        const statement = (() => {
          try {
            return db.prepare(sql)
          } catch {
            return undefined
          }
        })()
        if (statement === undefined || statement.columns().length === 0) {
          db.exec(sql)
          return []
        }
        const result = statement.all() as Array<Record<string, unknown>>
        return transformRows === undefined ? result : transformRows(result)
      },
      catch: (cause) => toSqlError(cause, "execute")
    })
  return {
    execute,
    executeUnprepared: (sql, params, transformRows) =>
      params.length === 0 ? script(sql, transformRows) : execute(sql, params, transformRows),
    executeRaw: (sql, params) => rows(sql, params),
    executeValues: values,
    executeValuesUnprepared: values,
    // node:sqlite reads every row at once; they are streamed from there.
    executeStream: (sql, params, transformRows) => Stream.fromIterableEffect(execute(sql, params, transformRows))
  }
}

const openFailed = (filename: string | undefined) => connectFailed(`cannot open ${describeTarget(filename)}`)

/**
 * Opens the database and builds an `SqlClient` over it; closed when the scope closes. Fails with an
 * `SqlError` when it cannot be opened (a directory that is not writable, another runtime holding it).
 */
export const make = (options: SqliteClientOptions = {}) =>
  Effect.gen(function* () {
    const filename = options.filename
    if (filename !== undefined) {
      yield* Effect.try({ try: () => mkdirSync(dirname(filename), { recursive: true }), catch: openFailed(filename) })
      yield* lockDataDir(filename, describeTarget(filename))
    }
    const db = yield* Effect.acquireRelease(
      Effect.try({
        try: () => {
          const db = new DatabaseSync(filename ?? ":memory:")
          db.exec("PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000")
          if (filename !== undefined) db.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL")
          return db
        },
        catch: openFailed(filename)
      }),
      (db) => Effect.sync(() => db.close()).pipe(Effect.ignore)
    )
    const connection = makeConnection(db)
    const acquirers = SqlClient.makeSqliteAcquirers({
      connection: Effect.succeed(connection),
      semaphore: yield* Semaphore.make(1),
      isTransaction: () => db.isTransaction
    })
    return yield* SqlClient.make({
      ...acquirers,
      compiler: Statement.makeCompilerSqlite(),
      driver: "node-sqlite",
      spanAttributes: [
        ["db.system.name", "sqlite"],
        ["db.namespace", filename ?? "memory"]
      ]
    })
  })

/** Provides `SqlClient` over an embedded SQLite database, on a file or in memory. */
export const layer = (options: SqliteClientOptions = {}): Layer.Layer<SqlClient.SqlClient, SqlError> =>
  Layer.effectContext(Effect.map(make(options), (client) => Context.make(SqlClient.SqlClient, client))).pipe(
    Layer.provide(Reactivity.layer)
  )
