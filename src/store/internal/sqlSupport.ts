// Helpers shared by the SQL implementations of the store ports.
import * as Effect from "effect/Effect"
import type { SqlClient } from "effect/sql/SqlClient"
import type { SqlError } from "effect/sql/SqlError"
import { StoreFailed } from "../../domain/Errors.ts"

/** What to check when the database fails, e.g. "check that PostgreSQL at ... runs and the URL is right". */
export interface StoreTarget {
  readonly hint: string
}

/** The default hint, for layers used without {@link StoreTarget}. */
export const defaultTarget: StoreTarget = { hint: "check that the database is reachable and its schema is migrated" }

/** Translates an `SqlError` into E2060 with what failed and what to check. */
export const storeFailed =
  (target: StoreTarget, operation: string, agentId?: string) =>
  <A, R>(effect: Effect.Effect<A, SqlError, R>): Effect.Effect<A, StoreFailed, R> =>
    Effect.mapError(effect, (error) => {
      const reason = error.reason
      const detail = reason.message ?? (reason.cause instanceof Error ? reason.cause.message : String(reason.cause))
      return new StoreFailed({
        message: `${operation} failed (${reason._tag}: ${detail}); ${target.hint}`,
        ...(agentId === undefined ? {} : { agentId })
      })
    })

const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

/** Whether `s` can be a UUID column value; ids that cannot are simply never found. */
export const isUuid = (s: string): boolean => uuid.test(s)

/** Reads a timestamp column as an ISO-8601 UTC string (millisecond precision, like `Date#toISOString`). */
export const isoColumn = (column: string, alias: string = column): string =>
  `to_char(${column}, 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS ${alias}`

/** A JSON value as the text of a `$n::jsonb` parameter; SQL NULL for `undefined`. */
export const jsonParam = (value: unknown): string | null => (value === undefined ? null : JSON.stringify(value))

/** Parses a `jsonb::text` column; SQL NULL reads as `undefined`. */
export const parseJson = (text: unknown): unknown => (text === null || text === undefined ? undefined : JSON.parse(String(text)))

/** A nullable text column as an optional field: `{}` when NULL, `{ [key]: value }` otherwise. */
export const optional = <K extends string>(key: K, value: unknown): { readonly [P in K]?: string } =>
  (value === null || value === undefined ? {} : { [key]: String(value) }) as { readonly [P in K]?: string }

/** The SQL dialect of a client: PostgreSQL (a server or PGlite) or the embedded SQLite store. */
export type Dialect = "pg" | "sqlite"

/** Which dialect `sql` speaks. */
export const dialectOf = (sql: SqlClient): Dialect => sql.onDialectOrElse({ sqlite: () => "sqlite" as const, orElse: () => "pg" as const })

/** A column list for the dialect: PostgreSQL's casts and ISO formatting, or SQLite's plain columns (already text). */
export const columnList = (dialect: Dialect, pg: ReadonlyArray<string>, plain: ReadonlyArray<string>): string =>
  (dialect === "pg" ? pg : plain).join(", ")

/** A connection's `execute` over a driver's row reader: the client's row transform applied when it has one. */
export const executeOver =
  <E>(rows: (sql: string, params: ReadonlyArray<unknown>) => Effect.Effect<ReadonlyArray<any>, E>) =>
  <A extends object>(sql: string, params: ReadonlyArray<unknown>, transformRows: ((rows: ReadonlyArray<A>) => ReadonlyArray<A>) | undefined) =>
    transformRows === undefined ? rows(sql, params) : Effect.map(rows(sql, params), (r) => transformRows(r as never))
