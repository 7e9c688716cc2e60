/**
 * The run log over `effect/sql` (PostgreSQL, PGlite or SQLite): execution_runs, one row per run, and
 * execution_run_events, a run's events in segments: one row per run and write, holding the events
 * first_seq..last_seq as a JSON array (a write of 10,000 events is one row, not 10,000). A batch is
 * one transaction; of each run only the events after its last stored sequence number are written, so
 * a batch tried again after a lost answer writes nothing twice. A run's end and its last event are one
 * transaction too.
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { SqlClient } from "effect/sql/SqlClient"
import type { ErrorData } from "../domain/ErrorCatalog.ts"
import type { ExecutionRun, RunEvent, RunStatus } from "../domain/ExecutionRun.ts"
import { RunLog } from "../services/RunLog.ts"
import { defaultTarget, type StoreTarget, storeFailed } from "./internal/sqlSupport.ts"

type Row = Readonly<Record<string, unknown>>

const runColumns = `r.run_id, r.agent_id, r.runtime_id, r.status, r.started_at, r.ended_at, r.error,
  COALESCE((SELECT MAX(ev.last_seq) FROM execution_run_events ev WHERE ev.run_id = r.run_id), 0) AS last_seq`

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

/** One event as a segment holds it (the run id is the row's). */
interface StoredEvent {
  readonly seq: number
  readonly at: string
  readonly agentState: string
  readonly event: RunEvent["event"]
}

const eventsOfSegment = (row: Row): ReadonlyArray<RunEvent> =>
  (JSON.parse(String(row.events)) as ReadonlyArray<StoredEvent>).map((e) => ({ runId: String(row.run_id), seq: e.seq, at: e.at, agentState: e.agentState, event: e.event }))

/** The SQL run log, over the `SqlClient` in context (migrated by the store's migrations). */
export const layer = (target: StoreTarget = defaultTarget): Layer.Layer<RunLog, never, SqlClient> =>
  Layer.effect(
    RunLog,
    Effect.gen(function* () {
      const sql = yield* SqlClient
      /**
       * Writes the events of one run that come after its last stored one, as one segment; with
       * `whileRunning`, only while the run is running (nothing goes after a run's end).
       */
      const insertSegment = (runId: string, events: ReadonlyArray<RunEvent>, whileRunning: boolean) =>
        Effect.gen(function* () {
          // The run's status and its last stored sequence number, in one statement.
          const [stored] = yield* sql<{ readonly status: string; readonly last: unknown }>`
            SELECT r.status, COALESCE((SELECT MAX(ev.last_seq) FROM execution_run_events ev WHERE ev.run_id = r.run_id), 0) AS last
            FROM execution_runs r WHERE r.run_id = ${runId}`
          if (whileRunning && (stored === undefined || stored.status !== "running")) return
          const after = Number(stored?.last ?? 0)
          const fresh = events.filter((e) => e.seq > after).sort((a, b) => a.seq - b.seq)
          if (fresh.length === 0) return
          const segment = JSON.stringify(fresh.map((e): StoredEvent => ({ seq: e.seq, at: e.at, agentState: e.agentState, event: e.event })))
          yield* sql`
            INSERT INTO execution_run_events (run_id, first_seq, last_seq, events, created_at)
            VALUES (${runId}, ${fresh[0]!.seq}, ${fresh.at(-1)!.seq}, ${segment}, ${fresh[0]!.at})`
        })
      const insertEvents = (events: ReadonlyArray<RunEvent>) =>
        Effect.gen(function* () {
          const byRun = new Map<string, Array<RunEvent>>()
          for (const event of events) {
            const list = byRun.get(event.runId)
            if (list === undefined) byRun.set(event.runId, [event])
            else list.push(event)
          }
          for (const [runId, list] of byRun) yield* insertSegment(runId, list, true)
        })
      return RunLog.of({
        create: (run) =>
          sql`
            INSERT INTO execution_runs (run_id, agent_id, runtime_id, status, started_at, ended_at, error)
            VALUES (${run.runId}, ${run.agentId}, ${run.runtimeId}, ${run.status}, ${run.startedAt}, ${run.endedAt ?? null},
                    ${run.error === undefined ? null : JSON.stringify(run.error)})
            ON CONFLICT (run_id) DO NOTHING`.pipe(Effect.asVoid, storeFailed(target, `recording run ${run.runId}`, run.agentId)),
        append: (events) =>
          events.length === 0 ? Effect.void : sql.withTransaction(insertEvents(events)).pipe(storeFailed(target, `appending ${events.length} run events`)),
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
                if (end.event !== undefined) yield* insertSegment(runId, [end.event], false)
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
        events: (runId, afterSeq, limit) => {
          // Sequence numbers have no gaps: the events after afterSeq, at most limit, are in the segments
          // that end after afterSeq and start at or before afterSeq + limit.
          const upTo = limit === undefined ? sql`` : sql`AND first_seq <= ${afterSeq + Math.max(0, Math.floor(limit))}`
          return sql<Row>`
            SELECT run_id, events FROM execution_run_events
            WHERE run_id = ${runId} AND last_seq > ${afterSeq} ${upTo} ORDER BY first_seq`.pipe(
            Effect.map((rows) => {
              const out = rows.flatMap(eventsOfSegment).filter((e) => e.seq > afterSeq)
              return limit === undefined ? out : out.slice(0, Math.max(0, Math.floor(limit)))
            }),
            storeFailed(target, `reading the events of run ${runId}`)
          )
        },
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
