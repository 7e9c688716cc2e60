/**
 * The port for durable execute runs (execution_runs, execution_run_events): each run's record and
 * its events by sequence number.
 *
 * Implementations: in-memory (`layerMemory`) and SQL (`SqlRunLog`); both pass the contract suite in
 * test/services/RunLogContract.ts.
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type { StoreFailed } from "../domain/Errors.ts"
import type { ErrorData } from "../domain/ErrorCatalog.ts"
import type { ExecutionRun, RunEvent, RunStatus } from "../domain/ExecutionRun.ts"

/** Which runs to list: newest first, at most `limit` (default 100). */
export interface RunQuery {
  readonly agentId?: string | undefined
  readonly runtimeId?: string | undefined
  readonly status?: RunStatus | ReadonlyArray<RunStatus> | undefined
  readonly limit?: number | undefined
}

/** How a run ends: its status, time, error, and the last event that says so (written together). */
export interface RunEnd {
  readonly status: Exclude<RunStatus, "running">
  readonly endedAt: string
  readonly error?: ErrorData | undefined
  readonly event?: RunEvent | undefined
}

/**
 * What retention removes, of the runs of `runtimeId`: ended runs that ended before `endedBefore`, and
 * those beyond the newest `keepPerAgent` ended runs of an agent. Running runs stay.
 */
export interface RunRetention {
  readonly runtimeId: string
  readonly endedBefore: string
  readonly keepPerAgent: number
}

/** The shape of {@link RunLog}. */
export interface RunLogShape {
  /** Records a new run (status running, no events). */
  readonly create: (run: ExecutionRun) => Effect.Effect<void, StoreFailed>
  /**
   * Appends events of any runs, in order, all or nothing. An event whose (runId, seq) is already stored
   * is left as stored (a batch tried again after a lost answer writes nothing twice); events of a run
   * that is unknown or has ended are not stored (nothing goes after a run's end).
   */
  readonly append: (events: ReadonlyArray<RunEvent>) => Effect.Effect<void, StoreFailed>
  /**
   * Ends a running run, with its last event in the same write; false (and nothing written) when the
   * run is unknown or has already ended.
   */
  readonly finish: (runId: string, end: RunEnd) => Effect.Effect<boolean, StoreFailed>
  /** One run, with `lastSeq` its highest stored sequence number. */
  readonly get: (runId: string) => Effect.Effect<Option.Option<ExecutionRun>, StoreFailed>
  /** Runs, newest first (ties by id, descending). */
  readonly list: (query?: RunQuery) => Effect.Effect<ReadonlyArray<ExecutionRun>, StoreFailed>
  /** A run's events with a sequence number above `afterSeq`, ascending, at most `limit`. */
  readonly events: (runId: string, afterSeq: number, limit?: number) => Effect.Effect<ReadonlyArray<RunEvent>, StoreFailed>
  /** Removes ended runs (and their events) as `retention` says; answers how many runs went. */
  readonly prune: (retention: RunRetention) => Effect.Effect<number, StoreFailed>
}

/** The run log port. */
export class RunLog extends Context.Service<RunLog, RunLogShape>()("l02/RunLog") {}

/** Whether a run passes a query (the semantics every implementation has). */
export const matchesRunQuery = (run: ExecutionRun, query: RunQuery): boolean => {
  if (query.agentId !== undefined && run.agentId !== query.agentId) return false
  if (query.runtimeId !== undefined && run.runtimeId !== query.runtimeId) return false
  if (query.status !== undefined) {
    const statuses: ReadonlyArray<RunStatus> = typeof query.status === "string" ? [query.status] : query.status
    if (!statuses.includes(run.status)) return false
  }
  return true
}

/** Runs in listing order: newest first, ties by id descending. */
export const compareRunsNewestFirst = (a: ExecutionRun, b: ExecutionRun): number =>
  a.startedAt > b.startedAt ? -1 : a.startedAt < b.startedAt ? 1 : a.runId > b.runId ? -1 : a.runId < b.runId ? 1 : 0

/** The ended runs `retention` removes, of the given runs (the semantics every implementation has). */
export const prunedRuns = (runs: ReadonlyArray<ExecutionRun>, retention: RunRetention): ReadonlyArray<string> => {
  const ended = runs.filter((r) => r.status !== "running" && r.runtimeId === retention.runtimeId).sort(compareRunsNewestFirst)
  const kept = new Map<string, number>()
  const out: Array<string> = []
  for (const run of ended) {
    const rank = (kept.get(run.agentId) ?? 0) + 1
    kept.set(run.agentId, rank)
    if (rank > retention.keepPerAgent || (run.endedAt ?? run.startedAt) < retention.endedBefore) out.push(run.runId)
  }
  return out
}

interface MemoryRun {
  run: ExecutionRun
  readonly events: Array<RunEvent>
  readonly seqs: Set<number>
}

/** A fresh in-memory run log: real state in a Map, lost with it. */
export const makeMemory = (): RunLogShape => {
  const runs = new Map<string, MemoryRun>()
  const withSeq = (entry: MemoryRun): ExecutionRun => ({ ...entry.run, lastSeq: entry.events.at(-1)?.seq ?? 0 })
  return RunLog.of({
    create: (run) =>
      Effect.sync(() => {
        if (!runs.has(run.runId)) runs.set(run.runId, { run: { ...run, lastSeq: 0 }, events: [], seqs: new Set() })
      }),
    append: (events) =>
      Effect.sync(() => {
        for (const event of events) {
          const entry = runs.get(event.runId)
          if (entry === undefined || entry.run.status !== "running" || entry.seqs.has(event.seq)) continue
          entry.seqs.add(event.seq)
          const last = entry.events.at(-1)
          entry.events.push(structuredClone(event))
          // Events come in order; one that does not is put in its place.
          if (last !== undefined && last.seq > event.seq) entry.events.sort((a, b) => a.seq - b.seq)
        }
      }),
    finish: (runId, end) =>
      Effect.sync(() => {
        const entry = runs.get(runId)
        if (entry === undefined || entry.run.status !== "running") return false
        if (end.event !== undefined && !entry.seqs.has(end.event.seq)) {
          entry.seqs.add(end.event.seq)
          entry.events.push(structuredClone(end.event))
        }
        entry.run = { ...entry.run, status: end.status, endedAt: end.endedAt, ...(end.error === undefined ? {} : { error: end.error }) }
        return true
      }),
    get: (runId) => Effect.sync(() => Option.map(Option.fromUndefinedOr(runs.get(runId)), withSeq)),
    list: (query = {}) =>
      Effect.sync(() =>
        [...runs.values()]
          .map(withSeq)
          .filter((run) => matchesRunQuery(run, query))
          .sort(compareRunsNewestFirst)
          .slice(0, Math.max(0, Math.floor(query.limit ?? 100)))
      ),
    events: (runId, afterSeq, limit) =>
      Effect.sync(() => {
        const all = runs.get(runId)?.events ?? []
        // Sorted by seq: the first event after afterSeq by binary search.
        let lo = 0
        let hi = all.length
        while (lo < hi) {
          const mid = (lo + hi) >>> 1
          if (all[mid]!.seq <= afterSeq) lo = mid + 1
          else hi = mid
        }
        const after = all.slice(lo)
        return structuredClone(limit === undefined ? after : after.slice(0, Math.max(0, Math.floor(limit))))
      }),
    prune: (retention) =>
      Effect.sync(() => {
        const gone = prunedRuns([...runs.values()].map(withSeq), retention)
        for (const runId of gone) runs.delete(runId)
        return gone.length
      })
  })
}

/** The in-memory run log: real state in a Map, lost when the layer is released. */
export const layerMemory: Layer.Layer<RunLog> = Layer.sync(RunLog, makeMemory)
