/**
 * The run log over `effect/sql` (PostgreSQL, PGlite or SQLite): execution_runs, one row per run, and
 * execution_run_events, one row per event keyed by (run_id, seq). A batch of events is one INSERT ...
 * SELECT over the batch as a JSON array, so it is written all or nothing (an event already stored is
 * left as it is, so a batch tried again writes nothing twice); a run's end and its last
 * event are one transaction.
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { SqlClient } from "effect/sql/SqlClient"
import type { ErrorData } from "../domain/ErrorCatalog.ts"
import type { ExecutionRun, RunEvent, RunStatus } from "../domain/ExecutionRun.ts"
import { RunLog } from "../services/RunLog.ts"
import { defaultTarget, dialectOf, type StoreTarget, storeFailed } from "./internal/sqlSupport.ts"

type Row = Readonly<Record<string, unknown>>

const runColumns = `r.run_id, r.agent_id, r.runtime_id, r.status, r.started_at, r.ended_at, r.error,
  COALESCE((SELECT MAX(ev.seq) FROM execution_run_events ev WHERE ev.run_id = r.run_id), 0) AS last_seq`

const toRun = (row: Row): ExecutionRun => ({
  runId: String(row.run_id),
  agentId: String(row.agent_id),
  runtimeId: String(row.runtime_id),
  status: String(row.status) as RunStatus,
  startedAt: String(row.started_at),
  ...(row.ended_at === null || row.ended_at === undefined ? {} : { endedAt: String(row.ended_at) }),
  lastSeq: Number(row.last_seq),
  ...(row.error === null || row.error === undefined ? {} : { error: JSON.parse(String(row.error)) as ErrorData })
})

const toEvent = (row: Row): RunEvent => ({
  runId: String(row.run_id),
  seq: Number(row.seq),
  at: String(row.created_at),
  agentState: String(row.agent_state),
  event: JSON.parse(String(row.event)) as RunEvent["event"]
})

/** The SQL run log, over the `SqlClient` in context (migrated by the store's migrations). */
export const layer = (target: StoreTarget = defaultTarget): Layer.Layer<RunLog, never, SqlClient> =>
  Layer.effect(
    RunLog,
    Effect.gen(function* () {
      const sql = yield* SqlClient
      const sqlite = dialectOf(sql) === "sqlite"
      const insertEvents = (events: ReadonlyArray<RunEvent>) => {
        const batch = JSON.stringify(
          events.map((e) => ({ run_id: e.runId, seq: e.seq, agent_state: e.agentState, event: JSON.stringify(e.event), at: e.at }))
        )
        return sqlite
          ? sql`
              INSERT INTO execution_run_events (run_id, seq, agent_state, event, created_at)
              SELECT json_extract(e.value, '$.run_id'), json_extract(e.value, '$.seq'), json_extract(e.value, '$.agent_state'),
                     json_extract(e.value, '$.event'), json_extract(e.value, '$.at')
              FROM json_each(${batch}) AS e ORDER BY e.key
              ON CONFLICT (run_id, seq) DO NOTHING`
          : sql`
              INSERT INTO execution_run_events (run_id, seq, agent_state, event, created_at)
              SELECT e.v->>'run_id', (e.v->>'seq')::bigint, e.v->>'agent_state', e.v->>'event', e.v->>'at'
              FROM jsonb_array_elements(${batch}::jsonb) WITH ORDINALITY AS e(v, n) ORDER BY e.n
              ON CONFLICT (run_id, seq) DO NOTHING`
      }
      return RunLog.of({
        create: (run) =>
          sql`
            INSERT INTO execution_runs (run_id, agent_id, runtime_id, status, started_at, ended_at, error)
            VALUES (${run.runId}, ${run.agentId}, ${run.runtimeId}, ${run.status}, ${run.startedAt}, ${run.endedAt ?? null},
                    ${run.error === undefined ? null : JSON.stringify(run.error)})
            ON CONFLICT (run_id) DO NOTHING`.pipe(Effect.asVoid, storeFailed(target, `recording run ${run.runId}`, run.agentId)),
        append: (events) =>
          events.length === 0 ? Effect.void : insertEvents(events).pipe(Effect.asVoid, storeFailed(target, `appending ${events.length} run events`)),
        finish: (runId, end) =>
          sql
            .withTransaction(
              Effect.gen(function* () {
                const updated = yield* sql<{ readonly run_id: string }>`
                  UPDATE execution_runs SET status = ${end.status}, ended_at = ${end.endedAt},
                    error = ${end.error === undefined ? null : JSON.stringify(end.error)}
                  WHERE run_id = ${runId} AND status = 'running'
                  RETURNING run_id`
                if (updated.length === 0) return false
                if (end.event !== undefined) yield* insertEvents([end.event])
                return true
              })
            )
            .pipe(storeFailed(target, `ending run ${runId}`)),
        get: (runId) =>
          sql<Row>`SELECT ${sql.literal(runColumns)} FROM execution_runs r WHERE r.run_id = ${runId}`.pipe(
            Effect.map((rows) => Option.map(Option.fromUndefinedOr(rows[0]), toRun)),
            storeFailed(target, `reading run ${runId}`)
          ),
        list: (query = {}) => {
          const statuses: ReadonlyArray<RunStatus> | undefined = typeof query.status === "string" ? [query.status] : query.status
          const conditions = [
            ...(query.agentId === undefined ? [] : [sql`r.agent_id = ${query.agentId}`]),
            ...(query.runtimeId === undefined ? [] : [sql`r.runtime_id = ${query.runtimeId}`]),
            ...(statuses === undefined ? [] : [sql.in("r.status", statuses)])
          ]
          return sql<Row>`
            SELECT ${sql.literal(runColumns)} FROM execution_runs r
            ${conditions.length === 0 ? sql`` : sql`WHERE ${sql.and(conditions)}`}
            ORDER BY r.started_at DESC, r.run_id DESC LIMIT ${Math.max(0, Math.floor(query.limit ?? 100))}`.pipe(
            Effect.map((rows) => rows.map(toRun)),
            storeFailed(target, "listing runs")
          )
        },
        events: (runId, afterSeq, limit) =>
          sql<Row>`
            SELECT run_id, seq, agent_state, event, created_at FROM execution_run_events
            WHERE run_id = ${runId} AND seq > ${afterSeq} ORDER BY seq
            ${limit === undefined ? sql`` : sql`LIMIT ${Math.max(0, Math.floor(limit))}`}`.pipe(
            Effect.map((rows) => rows.map(toEvent)),
            storeFailed(target, `reading the events of run ${runId}`)
          ),
        prune: (retention) =>
          sql
            .withTransaction(
              Effect.gen(function* () {
                const rows = yield* sql<{ readonly run_id: string }>`
                  SELECT run_id FROM (
                    SELECT run_id, ended_at, ROW_NUMBER() OVER (PARTITION BY agent_id ORDER BY started_at DESC, run_id DESC) AS rank
                    FROM execution_runs WHERE status <> 'running' AND runtime_id = ${retention.runtimeId}
                  ) ranked
                  WHERE rank > ${retention.keepPerAgent} OR ended_at < ${retention.endedBefore}`
                const ids = rows.map((r) => String(r.run_id))
                for (let i = 0; i < ids.length; i += 500) {
                  const chunk = ids.slice(i, i + 500)
                  yield* sql`DELETE FROM execution_run_events WHERE ${sql.in("run_id", chunk)}`
                  yield* sql`DELETE FROM execution_runs WHERE ${sql.in("run_id", chunk)}`
                }
                return ids.length
              })
            )
            .pipe(storeFailed(target, "removing ended runs past their retention"))
      })
    })
  )
