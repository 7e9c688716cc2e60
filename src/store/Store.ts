/**
 * The durable store: StateStore, CheckpointStore and EventLog over one SQL database, migrated at
 * startup.
 *
 * With a `url` the database is a PostgreSQL server (`@effect/sql-pg`); without one it is embedded:
 * SQLite through `node:sqlite` in `<dataDir>/l02.sqlite` (or PGlite in `<dataDir>/pglite`), or in memory. Checkpoint content goes to
 * `<dataDir>/checkpoints` either way. Every database failure surfaces as StoreFailed (E2060) with
 * what to check.
 */
import { existsSync } from "node:fs"
import { join, resolve } from "node:path"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import { SqlClient } from "effect/sql/SqlClient"
import { StoreFailed } from "../domain/Errors.ts"
import type { CheckpointStore } from "../services/CheckpointStore.ts"
import type { EventLog } from "../services/EventLog.ts"
import type { AtomicWrites, StateStore } from "../services/StateStore.ts"
import type { RunLog } from "../services/RunLog.ts"
import type { WorkflowStore } from "../services/WorkflowStore.ts"
import { type StoreTarget, storeFailed } from "./internal/sqlSupport.ts"
import { runMigrations } from "./Migrations.ts"
import * as SqlAtomicWrites from "./SqlAtomicWrites.ts"
import * as SqlCheckpointStore from "./SqlCheckpointStore.ts"
import * as SqlEventLog from "./SqlEventLog.ts"
import * as SqlRunLog from "./SqlRunLog.ts"
import * as SqlWorkflowStore from "./SqlWorkflowStore.ts"
import * as SqlStateStore from "./SqlStateStore.ts"

/** Options of {@link layer}. */
export interface StoreOptions {
  /** A PostgreSQL URL (`postgres://user@host:5432/db`); empty or omitted for the embedded database. */
  readonly url?: string | undefined
  /**
   * Where the embedded database lives when there is no `url`: files under dataDir, or memory (the key
   * keeps its first name, `store.pglite`, whichever engine is embedded).
   */
  readonly pglite: "file" | "memory"
  /**
   * The embedded engine: SQLite through `node:sqlite` (the default), or PGlite. `auto` (the default)
   * is SQLite, unless the data directory already holds a PGlite database and no SQLite one, which is
   * then kept (nothing stored is left behind by an upgrade).
   */
  readonly embedded?: "auto" | "sqlite" | "pglite" | undefined
  /** The runtime's data directory (embedded database files, checkpoint content). */
  readonly dataDir: string
}

/** The embedded SQLite database file under a data directory. */
export const sqliteFileOf = (dataDir: string) => join(dataDir, "l02.sqlite")

/** Which embedded engine a store without `url` opens (see {@link StoreOptions.embedded}). */
export const embeddedEngineOf = (options: StoreOptions): "sqlite" | "pglite" => {
  const chosen = options.embedded ?? "auto"
  if (chosen !== "auto") return chosen
  if (options.pglite === "memory") return "sqlite"
  return existsSync(join(options.dataDir, "pglite")) && !existsSync(sqliteFileOf(options.dataDir)) ? "pglite" : "sqlite"
}

/** The URL with its password masked, for messages. */
export const redactUrl = (url: string): string => {
  try {
    const parsed = new URL(url)
    if (parsed.password !== "") parsed.password = "***"
    return parsed.toString()
  } catch {
    return "(an unparseable URL)"
  }
}

/** What to check when the configured database fails. */
export const targetOf = (options: StoreOptions): StoreTarget => {
  if (options.url !== undefined && options.url !== "") {
    return {
      hint: `check that PostgreSQL at ${redactUrl(options.url)} runs and accepts connections, and that store.url (user, password, database) is right`
    }
  }
  const engine = embeddedEngineOf(options)
  const name = engine === "sqlite" ? "SQLite" : "PGlite"
  return options.pglite === "memory"
    ? { hint: `the embedded in-memory ${name} database failed; check the process has enough memory` }
    : {
        hint: `check that ${engine === "sqlite" ? resolve(sqliteFileOf(options.dataDir)) : resolve(options.dataDir, "pglite")} is writable, has free space and is not used by another runtime process`
      }
}

const clientLayer = (options: StoreOptions): Layer.Layer<SqlClient, StoreFailed> => {
  const target = targetOf(options)
  const opening = <E>(client: Layer.Layer<SqlClient, E>): Layer.Layer<SqlClient, StoreFailed> =>
    Layer.catchCause(client, (cause) => {
      const error = Cause.squash(cause)
      const detail = (error as { reason?: { message?: unknown } }).reason?.message ?? (error instanceof Error ? error.message : String(error))
      return Layer.effect(SqlClient, Effect.fail(new StoreFailed({ message: `cannot open the state store (${String(detail)}); ${target.hint}` })))
    })
  // Only the driver in use is loaded: a PostgreSQL supervisor never loads PGlite's WebAssembly, and the reverse.
  const onUse = <M, E>(load: () => Promise<M>, client: (module: M) => Layer.Layer<SqlClient, E>) =>
    opening(Layer.unwrap(Effect.map(Effect.promise(load), client)))
  const url = options.url
  if (url !== undefined && url !== "") {
    return onUse(
      () => import("@effect/sql-pg/PgClient"),
      (PgClient) => PgClient.layer({ url: Redacted.make(url), applicationName: "l02-agent-runtime" })
    )
  }
  if (embeddedEngineOf(options) === "sqlite") {
    const sqliteOptions = options.pglite === "memory" ? {} : { filename: sqliteFileOf(resolve(options.dataDir)) }
    return onUse(() => import("./SqliteClient.ts"), (SqliteClient) => SqliteClient.layer(sqliteOptions))
  }
  const pgliteOptions = options.pglite === "memory" ? {} : { dataDir: join(options.dataDir, "pglite") }
  return onUse(() => import("./PgliteClient.ts"), (PgliteClient) => PgliteClient.layer(pgliteOptions))
}

/**
 * The store services over the SQL client in context: runs the migrations, then builds the three
 * ports and their atomic writes. Useful to share one client between the store and something else.
 */
export const layerFromClient = (
  options: Pick<StoreOptions, "dataDir"> & { readonly target: StoreTarget }
): Layer.Layer<StateStore | CheckpointStore | EventLog | AtomicWrites | WorkflowStore | RunLog, StoreFailed, SqlClient> =>
  SqlAtomicWrites.layer(options.target).pipe(
    Layer.provideMerge(
      Layer.mergeAll(
        SqlStateStore.layer(options.target),
        SqlWorkflowStore.layer(options.target),
        SqlRunLog.layer(options.target),
        SqlCheckpointStore.layer({ blobDir: join(options.dataDir, "checkpoints"), target: options.target }),
        SqlEventLog.layer(options.target)
      )
    ),
    Layer.provide(Layer.effectDiscard(runMigrations().pipe(storeFailed(options.target, "migrating the database schema"))))
  )

/**
 * The durable store on PostgreSQL (with `url`) or embedded SQLite or PGlite, migrated at startup.
 *
 * @example
 * ```ts
 * import * as Store from "./src/store/Store.ts"
 * const stores = Store.layer({ pglite: "file", dataDir: "./.l02" })
 * // or: Store.layer({ url: "postgres://l02@db:5432/l02", pglite: "file", dataDir: "./.l02" })
 * ```
 */
export const layer = (
  options: StoreOptions
): Layer.Layer<StateStore | CheckpointStore | EventLog | AtomicWrites | WorkflowStore | RunLog | SqlClient, StoreFailed> =>
  layerFromClient({ dataDir: options.dataDir, target: targetOf(options) }).pipe(Layer.provideMerge(clientLayer(options)))
