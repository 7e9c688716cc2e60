/**
 * The durable store: StateStore, CheckpointStore and EventLog over one SQL database, migrated at
 * startup.
 *
 * With a `url` the database is a PostgreSQL server (`@effect/sql-pg`); without one it is an embedded
 * PGlite database, in `<dataDir>/pglite` or in memory. Checkpoint content goes to
 * `<dataDir>/checkpoints` either way. Every database failure surfaces as StoreFailed (E2060) with
 * what to check.
 */
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
import { type StoreTarget, storeFailed } from "./internal/sqlSupport.ts"
import { runMigrations } from "./Migrations.ts"
import * as SqlAtomicWrites from "./SqlAtomicWrites.ts"
import * as SqlCheckpointStore from "./SqlCheckpointStore.ts"
import * as SqlEventLog from "./SqlEventLog.ts"
import * as SqlStateStore from "./SqlStateStore.ts"

/** Options of {@link layer}. */
export interface StoreOptions {
  /** A PostgreSQL URL (`postgres://user@host:5432/db`); empty or omitted for embedded PGlite. */
  readonly url?: string | undefined
  /** Where PGlite keeps its database when there is no `url`: files under dataDir, or memory. */
  readonly pglite: "file" | "memory"
  /** The runtime's data directory (PGlite files, checkpoint content). */
  readonly dataDir: string
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
  return options.pglite === "memory"
    ? { hint: "the embedded in-memory PGlite database failed; check the process has enough memory" }
    : {
        hint: `check that ${resolve(options.dataDir, "pglite")} is writable, has free space and is not used by another runtime process`
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
  const pgliteOptions = options.pglite === "memory" ? {} : { dataDir: join(options.dataDir, "pglite") }
  return onUse(() => import("./PgliteClient.ts"), (PgliteClient) => PgliteClient.layer(pgliteOptions))
}

/**
 * The store services over the SQL client in context: runs the migrations, then builds the three
 * ports and their atomic writes. Useful to share one client between the store and something else.
 */
export const layerFromClient = (
  options: Pick<StoreOptions, "dataDir"> & { readonly target: StoreTarget }
): Layer.Layer<StateStore | CheckpointStore | EventLog | AtomicWrites, StoreFailed, SqlClient> =>
  SqlAtomicWrites.layer(options.target).pipe(
    Layer.provideMerge(
      Layer.mergeAll(
        SqlStateStore.layer(options.target),
        SqlCheckpointStore.layer({ blobDir: join(options.dataDir, "checkpoints"), target: options.target }),
        SqlEventLog.layer(options.target)
      )
    ),
    Layer.provide(Layer.effectDiscard(runMigrations().pipe(storeFailed(options.target, "migrating the database schema"))))
  )

/**
 * The durable store on PostgreSQL (with `url`) or embedded PGlite, migrated at startup.
 *
 * @example
 * ```ts
 * import * as Store from "./src/store/Store.ts"
 * const stores = Store.layer({ pglite: "file", dataDir: "./.l02" })
 * // or: Store.layer({ url: "postgres://l02@db:5432/l02", pglite: "file", dataDir: "./.l02" })
 * ```
 */
export const layer = (options: StoreOptions): Layer.Layer<StateStore | CheckpointStore | EventLog | AtomicWrites, StoreFailed> =>
  layerFromClient({ dataDir: options.dataDir, target: targetOf(options) }).pipe(Layer.provide(clientLayer(options)))
