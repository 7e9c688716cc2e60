/**
 * The event log over `effect/sql` (PostgreSQL, PGlite or SQLite): lifecycle_events with a serial id.
 *
 * A batch is one INSERT ... SELECT over the batch as a JSON array, ordered by position, so its ids
 * are assigned in batch order and the batch is written all or nothing.
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { SqlClient } from "effect/sql/SqlClient"
import type { LifecycleEvent } from "../domain/LifecycleEvent.ts"
import { EventLog } from "../services/EventLog.ts"
import { columnList, defaultTarget, dialectOf, isoColumn, parseJson, type StoreTarget, storeFailed } from "./internal/sqlSupport.ts"

const columnsPg = ["id::text AS id", "agent_id", "type", "from_state", "to_state", "data::text AS data", isoColumn("created_at")]
const columnsPlain = ["id", "agent_id", "type", "from_state", "to_state", "data", "created_at"]

type Row = Readonly<Record<string, unknown>>

const toEvent = (row: Row): LifecycleEvent => {
  const data = parseJson(row.data)
  return {
    eventId: Number(row.id),
    agentId: String(row.agent_id),
    type: String(row.type),
    ...(row.from_state === null ? {} : { fromState: String(row.from_state) }),
    ...(row.to_state === null ? {} : { toState: String(row.to_state) }),
    ...(data === undefined ? {} : { data }),
    at: String(row.created_at)
  }
}

/**
 * One INSERT ... SELECT of a batch of events, in batch order; returns their ids (see {@link withIds}).
 * `data` is nested as JSON text so that a JSON null payload stays distinct from no payload.
 */
export const insertEvents = (sql: SqlClient, events: ReadonlyArray<LifecycleEvent>, keep?: { readonly saved: string; readonly agentIds: ReadonlyArray<string> }) => {
  const batch = JSON.stringify(
    events.map((e) => ({
      agent_id: e.agentId,
      type: e.type,
      from_state: e.fromState ?? null,
      to_state: e.toState ?? null,
      data: e.data === undefined ? null : JSON.stringify(e.data),
      at: e.at
    }))
  )
  if (dialectOf(sql) === "sqlite") {
    return sql<{ readonly id: string }>`
      INSERT INTO lifecycle_events (agent_id, type, from_state, to_state, data, created_at)
      SELECT json_extract(e.value, '$.agent_id'), json_extract(e.value, '$.type'), json_extract(e.value, '$.from_state'),
             json_extract(e.value, '$.to_state'), json_extract(e.value, '$.data'), json_extract(e.value, '$.at')
      FROM json_each(${batch}) AS e
      ORDER BY e.key
      RETURNING id`
  }
  return sql<{ readonly id: string }>`
    INSERT INTO lifecycle_events (agent_id, type, from_state, to_state, data, created_at)
    SELECT e.v->>'agent_id', e.v->>'type', e.v->>'from_state', e.v->>'to_state', (e.v->>'data')::jsonb,
           (e.v->>'at')::timestamp
    FROM jsonb_array_elements(${batch}::jsonb) WITH ORDINALITY AS e(v, n)
    ${keep === undefined ? sql`` : sql`WHERE (e.v->>'agent_id') IN (SELECT agent_id FROM ${sql.literal(keep.saved)}) OR NOT ((e.v->>'agent_id') = ANY(${keep.agentIds}::text[]))`}
    ORDER BY e.n
    RETURNING id::text AS id`
}

/** The events of a batch with the ids the insert assigned (ascending, in batch order). */
export const withIds = (events: ReadonlyArray<LifecycleEvent>, rows: ReadonlyArray<{ readonly id: string }>): ReadonlyArray<LifecycleEvent> => {
  const ids = rows.map((r) => Number(r.id)).sort((a, b) => a - b)
  return events.map((e, i): LifecycleEvent => ({ ...e, eventId: ids[i]! }))
}

/** Builds the SQL event log over the `SqlClient` in context (migrations must have run). */
export const make = (target: StoreTarget = defaultTarget) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient
    const columns = columnList(dialectOf(sql), columnsPg, columnsPlain)
    return EventLog.of({
      append: (events) => {
        if (events.length === 0) return Effect.succeed([])
        return insertEvents(sql, events).pipe(
          Effect.map((rows) => withIds(events, rows)),
          storeFailed(target, `appending ${events.length} lifecycle events`)
        )
      },

      query: (query) => {
        if (query.limit !== undefined && query.limit <= 0) return Effect.succeed([])
        const where = sql.and([
          ...(query.agentId === undefined ? [] : [sql`agent_id = ${query.agentId}`]),
          ...(query.afterId === undefined ? [] : [sql`id > ${query.afterId}`])
        ])
        const newest = query.latest === true && query.limit !== undefined
        const statement =
          query.limit === undefined
            ? sql<Row>`SELECT ${sql.literal(columns)} FROM lifecycle_events WHERE ${where} ORDER BY lifecycle_events.id`
            : newest
            ? sql<Row>`SELECT ${sql.literal(columns)} FROM lifecycle_events WHERE ${where} ORDER BY lifecycle_events.id DESC LIMIT ${Math.floor(query.limit)}`
            : sql<Row>`SELECT ${sql.literal(columns)} FROM lifecycle_events WHERE ${where} ORDER BY lifecycle_events.id LIMIT ${Math.floor(query.limit)}`
        return statement.pipe(
          // The newest come newest first; answered oldest first like every query.
          Effect.map((rows) => (newest ? [...rows].reverse() : rows).map(toEvent)),
          storeFailed(target, "reading lifecycle events")
        )
      }
    })
  })

/** The SQL event log; needs an `SqlClient` whose database is migrated (see `Store.layer`). */
export const layer = (target: StoreTarget = defaultTarget): Layer.Layer<EventLog, never, SqlClient> =>
  Layer.effect(EventLog, make(target))
