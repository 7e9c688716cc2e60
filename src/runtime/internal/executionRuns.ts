/**
 * Durable execute runs: every execute step is a run with its own id. Its events get sequence numbers
 * 1, 2, 3... as they happen, are kept in memory for the callers attached to it and go to the store in
 * ordered batches (runWriter.ts); the last is always `end`, with the run's status. The step runs in a
 * fiber of the runtime's scope, not the caller's: a caller that goes away leaves it running.
 *
 * Attaching reads the events after a sequence number from the store, then from memory, then waits for
 * the live ones, so each event is delivered once and in order however often a caller reconnects. A run
 * of another supervisor (a cluster runner) is followed by polling the store.
 */
import { randomUUID } from "node:crypto"
import * as Cause from "effect/Cause"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Result from "effect/Result"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type { ErrorData } from "../../domain/ErrorCatalog.ts"
import { ExecuteFailed, fromErrorData, RunCancelled, RunInterrupted, RunNotFound, type RuntimeError, toErrorData } from "../../domain/Errors.ts"
import type { ExecutionRun, RunEvent, RunStatus } from "../../domain/ExecutionRun.ts"
import type { LifecycleEvent } from "../../domain/LifecycleEvent.ts"
import { compareRunsNewestFirst, matchesRunQuery, type RunLogShape, type RunQuery } from "../../services/RunLog.ts"
import type { ExecuteEvent, ExecuteOptions, RunsShape } from "../AgentRuntimeApi.ts"
import type { StepOptions } from "./executeStep.ts"
import { makeRunWriter } from "./runWriter.ts"

/** A run this runtime is running, and the window of its events kept in memory. */
interface LiveRun {
  readonly run: ExecutionRun
  /** Events in memory: `events[i].seq === base + i + 1`; those up to `base` are only in the store. */
  readonly events: Array<RunEvent>
  base: number
  /** The highest sequence number the store has. */
  written: number
  ended: { readonly status: Exclude<RunStatus, "running">; readonly at: string; readonly error?: ErrorData | undefined; readonly cause?: RuntimeError | undefined } | undefined
  readonly waiters: Set<() => void>
  cancelling: boolean
  /** The output recorded so far, as {@link outputSizeOf} counts it. */
  bytes: number
}

/** What the runs are built over. */
export interface ExecutionRunsDeps {
  readonly runLog: RunLogShape
  readonly runtimeId: string
  readonly iso: () => string
  readonly now: () => number
  /** The agent's state now, recorded on every event. */
  readonly agentStateOf: (agentId: string) => string
  /** Begins a step (executeStep.ts) in the run's scope. */
  readonly begin: (agentId: string, input: unknown, options: StepOptions) => Effect.Effect<Stream.Stream<ExecuteEvent, RuntimeError>, RuntimeError, Scope.Scope>
  /** The scope run fibers live in (the runtime's). */
  readonly scope: Scope.Scope
  readonly retention: { readonly seconds: number; readonly runsPerAgent: number }
  /** How much output one run may record (`execution.stream_max_bytes`), counted by {@link outputSizeOf}. */
  readonly maxBytes: number
  /** Records lifecycle events of the agent (`run.started`, `run.ended`) in the event log, in the background. */
  readonly recordEvents: (events: ReadonlyArray<LifecycleEvent>) => void
  /** How often a run of another supervisor is read again while it runs and is quiet (default 200 ms). */
  readonly pollMs?: number | undefined
}

/** Events kept in memory per run before written ones are dropped from it (attachers behind read the store). */
const memoryWindow = 1024
const pageSize = 5000

/** The runs of a runtime, and what the runtime itself does with them (start, recover, shut down). */
export interface ExecutionRuns extends RunsShape {
  /** The execute operation: a run, attached from its first event, failing with the run's error if it did not complete. */
  readonly execute: (agentId: string, input: unknown, options?: ExecuteOptions) => Stream.Stream<ExecuteEvent, RuntimeError>
  /**
   * Ends the runs the store says are running that this runtime does not run, as interrupted (E2036):
   * at start, those of this runtime id; a cluster runner, those of an agent it has just taken over.
   */
  readonly interruptStale: (query: { readonly runtimeId?: string; readonly agentId?: string }) => Effect.Effect<number, RuntimeError>
  /** Ends the runs under way of an agent this runtime stops hosting (a cluster runner's shard moved) as interrupted. */
  readonly releaseAgent: (agentId: string) => Effect.Effect<void>
  /** Removes ended runs past their retention. */
  readonly prune: Effect.Effect<number, RuntimeError>
  /** Interrupts the runs under way (they end interrupted) and writes what is queued. */
  readonly shutdown: Effect.Effect<void>
}

const endEvent = (runId: string, seq: number, at: string, agentState: string, status: RunStatus, error: ErrorData | undefined): RunEvent => ({
  runId,
  seq,
  at,
  agentState,
  event: { type: "end", status, ...(error === undefined ? {} : { error }) }
})

/**
 * What an event adds to a run's output: the characters of its line, text, content or arguments (the
 * parts an agent or model chooses), plus a little for the rest of the event.
 */
export const outputSizeOf = (event: ExecuteEvent): number => {
  const e = event as { readonly line?: unknown; readonly text?: unknown; readonly content?: unknown; readonly arguments?: unknown }
  let size = 64
  for (const part of [e.line, e.text, e.content, e.arguments]) if (typeof part === "string") size += part.length
  return size
}

/** Builds the runs of a runtime. */
export const makeExecutionRuns = (deps: ExecutionRunsDeps): ExecutionRuns => {
  const { runLog, runtimeId, iso } = deps
  const pollMs = deps.pollMs ?? 200
  const live = new Map<string, LiveRun>()
  const writer = makeRunWriter(runLog, {
    onWritten: (runId, seq) => {
      const r = live.get(runId)
      if (r === undefined) return
      r.written = Math.max(r.written, seq)
      // Written events beyond the window leave memory; an attacher behind them reads the store.
      const drop = Math.min(r.written - r.base, r.events.length - memoryWindow)
      if (drop > 0) {
        r.events.splice(0, drop)
        r.base += drop
      }
    },
    onFinished: (runId) => void live.delete(runId)
  })

  const lastSeqOf = (r: LiveRun) => r.base + r.events.length
  const snapshotOf = (r: LiveRun): ExecutionRun => ({
    ...r.run,
    lastSeq: lastSeqOf(r),
    ...(r.ended === undefined ? {} : { status: r.ended.status, endedAt: r.ended.at, ...(r.ended.error === undefined ? {} : { error: r.ended.error }) })
  })
  const wake = (r: LiveRun) => {
    const waiting = [...r.waiters]
    r.waiters.clear()
    for (const resume of waiting) resume()
  }
  const push = (r: LiveRun, event: RunEvent["event"]) => {
    const recorded: RunEvent = { runId: r.run.runId, seq: lastSeqOf(r) + 1, at: iso(), agentState: deps.agentStateOf(r.run.agentId), event }
    r.events.push(recorded)
    writer.append(recorded)
    wake(r)
  }

  /** Records how the run ended: its `end` event (written with the run's status) and the error it carries. */
  const end = (r: LiveRun, exit: Exit.Exit<unknown, RuntimeError>) => {
    if (r.ended !== undefined) return
    let status: Exclude<RunStatus, "running">
    let cause: RuntimeError | undefined
    if (Exit.isSuccess(exit)) status = "completed"
    else {
      const failure = Cause.findError(exit.cause)
      if (Result.isSuccess(failure)) {
        status = "failed"
        cause = failure.success
      } else if (r.cancelling) {
        status = "cancelled"
        cause = new RunCancelled({ message: `run ${r.run.runId} was cancelled`, agentId: r.run.agentId, runId: r.run.runId })
      } else if (Cause.hasInterrupts(exit.cause)) {
        status = "interrupted"
        cause = new RunInterrupted({
          message: `run ${r.run.runId} was interrupted after event ${lastSeqOf(r)}: its supervisor stopped before the step ended`,
          agentId: r.run.agentId,
          runId: r.run.runId,
          lastSeq: lastSeqOf(r)
        })
      } else {
        status = "failed"
        cause = new ExecuteFailed({ message: `run ${r.run.runId} ended with a defect: ${String(Cause.squash(exit.cause)).slice(0, 300)}`, agentId: r.run.agentId })
      }
    }
    const error = cause === undefined ? undefined : toErrorData(cause)
    const at = iso()
    const last = endEvent(r.run.runId, lastSeqOf(r) + 1, at, deps.agentStateOf(r.run.agentId), status, error)
    r.events.push(last)
    r.ended = { status, at, error, cause }
    writer.finish(r.run.runId, { status, endedAt: at, ...(error === undefined ? {} : { error }), event: last })
    wake(r)
    deps.recordEvents([
      { agentId: r.run.agentId, type: "run.ended", data: { runId: r.run.runId, status, lastSeq: last.seq, ...(error === undefined ? {} : { error }) }, at }
    ])
  }

  // Fibers of the runs under way, from their fork on (before they are accepted), and cancels asked
  // for before a run was accepted (its caller went away while the agent was being reached).
  const fibers = new Map<string, Fiber.Fiber<unknown, unknown>>()
  const cancelRequested = new Set<string>()

  /** Starts a run with a chosen id; resolves once the agent accepted the step. */
  const startWith = (runId: string, agentId: string, input: unknown, options: ExecuteOptions = {}): Effect.Effect<ExecutionRun, RuntimeError> =>
    Effect.gen(function* () {
      const accepted = yield* Deferred.make<LiveRun, RuntimeError>()
      // The run's record is written once the agent accepted the step and before its input is sent: a
      // store that refuses it refuses the step, and the agent never sees the input.
      const record = Effect.gen(function* () {
        const run: ExecutionRun = { runId, agentId, runtimeId, status: "running", startedAt: iso(), lastSeq: 0 }
        yield* runLog.create(run)
        const r: LiveRun = { run, events: [], base: 0, written: 0, ended: undefined, waiters: new Set(), cancelling: false, bytes: 0 }
        live.set(runId, r)
        deps.recordEvents([{ agentId, type: "run.started", data: { runId }, at: run.startedAt }])
        yield* Deferred.succeed(accepted, r)
        if (cancelRequested.delete(runId)) {
          r.cancelling = true
          return yield* Effect.interrupt
        }
      })
      const body = Effect.scoped(
        Effect.gen(function* () {
          const stream = yield* deps.begin(agentId, input, { runId, timeoutMs: options.timeoutMs, accepted: record })
          const r = live.get(runId)!
          // The agent's output is untrusted: a run records at most maxBytes of it, then the step fails.
          yield* Stream.runForEach(stream, (event) => {
            r.bytes += outputSizeOf(event)
            if (r.bytes > deps.maxBytes) {
              return Effect.fail(
                new ExecuteFailed({
                  message: `run ${runId} recorded more than ${deps.maxBytes} bytes of the agent's output, the most one run may (execution.stream_max_bytes); the step was stopped`,
                  agentId,
                  key: "execution.stream_max_bytes"
                })
              )
            }
            return Effect.sync(() => push(r, event as RunEvent["event"]))
          })
        })
      )
      const fiber = yield* Effect.forkIn(
        body.pipe(
          Effect.onExit((exit) =>
            Effect.suspend(() => {
              fibers.delete(runId)
              cancelRequested.delete(runId)
              const r = live.get(runId)
              if (r !== undefined) {
                end(r, exit)
                return Deferred.succeed(accepted, r)
              }
              // Refused before it was under way: the caller hears why, and nothing was recorded.
              if (Exit.isSuccess(exit)) return Effect.void
              const failure = Cause.findError(exit.cause)
              return Result.isSuccess(failure) ? Deferred.fail(accepted, failure.success) : Deferred.failCause(accepted, exit.cause as Cause.Cause<never>)
            })
          )
        ),
        deps.scope
      )
      fibers.set(runId, fiber)
      if (options.signal !== undefined) {
        const signal = options.signal
        const onAbort = () => void Effect.runFork(cancel(runId))
        if (signal.aborted) onAbort()
        else {
          signal.addEventListener("abort", onAbort, { once: true })
          fiber.addObserver(() => signal.removeEventListener("abort", onAbort))
        }
      }
      return snapshotOf(yield* Deferred.await(accepted))
    })

  const start = (agentId: string, input: unknown, options: ExecuteOptions = {}) => startWith(randomUUID(), agentId, input, options)

  /**
   * Ends a run the store says is running but that runs nowhere here (its supervisor stopped): its end
   * event after its last stored one and its status in one write, and `run.ended`.
   */
  const finishStored = (run: ExecutionRun, status: "interrupted" | "cancelled", error: ErrorData) =>
    Effect.gen(function* () {
      const at = iso()
      const last = endEvent(run.runId, run.lastSeq + 1, at, deps.agentStateOf(run.agentId), status, error)
      const ended = yield* runLog.finish(run.runId, { status, endedAt: at, error, event: last })
      if (ended) deps.recordEvents([{ agentId: run.agentId, type: "run.ended", data: { runId: run.runId, status, lastSeq: last.seq, error }, at }])
    })

  const notFound = (runId: string) =>
    new RunNotFound({ message: `no execute run ${runId} is in the store: it was never started, or its retention (execution.stream_retention_seconds, stream_retention_runs) removed it`, runId })

  const get = (runId: string): Effect.Effect<ExecutionRun, RuntimeError> =>
    Effect.suspend(() => {
      const r = live.get(runId)
      if (r !== undefined) return Effect.succeed(snapshotOf(r))
      return Effect.flatMap(runLog.get(runId), (found) => (Option.isSome(found) ? Effect.succeed(found.value) : Effect.fail(notFound(runId))))
    })

  // The store's answer with what memory knows better: runs under way here as they are now (a run
  // that has just ended may not have its end written yet), filtered and ordered again.
  const list = (query: RunQuery = {}): Effect.Effect<ReadonlyArray<ExecutionRun>, RuntimeError> =>
    Effect.map(runLog.list(query), (stored) => {
      const byId = new Map<string, ExecutionRun>()
      for (const run of stored) byId.set(run.runId, run)
      for (const r of live.values()) byId.set(r.run.runId, snapshotOf(r))
      return [...byId.values()]
        .filter((run) => matchesRunQuery(run, query))
        .sort(compareRunsNewestFirst)
        .slice(0, Math.max(0, Math.floor(query.limit ?? 100)))
    })

  const cancel = (runId: string): Effect.Effect<ExecutionRun, RuntimeError> =>
    Effect.gen(function* () {
      const r = live.get(runId)
      const fiber = fibers.get(runId)
      if (r === undefined && fiber !== undefined) {
        // Not accepted yet: it is cancelled as soon as it is.
        cancelRequested.add(runId)
        yield* Fiber.await(fiber)
        return yield* get(runId)
      }
      if (r === undefined) {
        const stored = yield* get(runId)
        if (stored.status !== "running" || stored.runtimeId !== runtimeId) return stored
        // Running in the store but not here, though this runtime would run it: nobody does (its
        // supervisor stopped); it ends cancelled.
        yield* finishStored(stored, "cancelled", toErrorData(new RunCancelled({ message: `run ${runId} was cancelled`, agentId: stored.agentId, runId })))
        return yield* get(runId)
      }
      if (r.ended === undefined) {
        r.cancelling = true
        if (fiber !== undefined) yield* Fiber.interrupt(fiber)
      }
      return snapshotOf(r)
    })

  /** Waits until the run has an event after `cursor`, or has ended. */
  const eventAfter = (r: LiveRun, cursor: number) =>
    Effect.callback<void>((resume) => {
      if (lastSeqOf(r) > cursor || r.ended !== undefined) return resume(Effect.void)
      const waiter = () => resume(Effect.void)
      r.waiters.add(waiter)
      return Effect.sync(() => void r.waiters.delete(waiter))
    })

  type Page = readonly [ReadonlyArray<RunEvent>, Option.Option<number>]
  /** A page of events and where the next starts; nothing after a run's end is delivered. */
  const pageOf = (events: ReadonlyArray<RunEvent>, cursor: number): Page => {
    const endAt = events.findIndex((e) => e.event.type === "end")
    if (endAt >= 0) return [events.slice(0, endAt + 1), Option.none()]
    const last = events.at(-1)
    return last === undefined ? [events, Option.some(cursor)] : [events, Option.some(last.seq)]
  }

  const nextPage = (runId: string, local: LiveRun | undefined, cursor: number): Effect.Effect<Page, RuntimeError> =>
    Effect.gen(function* () {
      if (local !== undefined) {
        yield* eventAfter(local, cursor)
        // Behind the memory window (also when it moved while waiting): the store has those.
        if (cursor < local.base) {
          const stored = yield* runLog.events(runId, cursor, Math.min(pageSize, local.base - cursor))
          // Nothing stored behind the window: the run was removed by retention meanwhile.
          if (stored.length === 0) return yield* notFound(runId)
          return pageOf(stored, cursor)
        }
        const fresh = local.events.slice(cursor - local.base)
        if (fresh.length === 0 && local.ended !== undefined) return [[], Option.none()] as Page
        return pageOf(fresh, cursor)
      }
      // A run of another supervisor, or one that has ended: the store.
      const events = yield* runLog.events(runId, cursor, pageSize)
      if (events.length > 0) return pageOf(events, cursor)
      // Nothing new: the run's status says whether more can come. One seen ended has its end event
      // stored with it, so it is read once more.
      const run = yield* runLog.get(runId)
      if (Option.isNone(run)) return yield* notFound(runId)
      if (run.value.status !== "running") {
        const last = yield* runLog.events(runId, cursor, pageSize)
        return last.length > 0 ? pageOf(last, cursor) : ([[], Option.none()] as Page)
      }
      yield* Effect.sleep(pollMs)
      return [[], Option.some(cursor)] as Page
    })

  const attach = (runId: string, from = 0): Stream.Stream<RunEvent, RuntimeError> =>
    Stream.unwrap(
      Effect.gen(function* () {
        const local = live.get(runId)
        if (local === undefined && Option.isNone(yield* runLog.get(runId))) return yield* notFound(runId)
        return Stream.paginate(from, (cursor: number) => nextPage(runId, local, cursor))
      })
    )

  const execute = (agentId: string, input: unknown, options: ExecuteOptions = {}): Stream.Stream<ExecuteEvent, RuntimeError> =>
    Stream.unwrap(
      Effect.suspend(() => {
        const runId = randomUUID()
        // A caller that goes away while the agent is still being reached cancels as one that stops reading.
        return options.cancelOnDisconnect === true ? Effect.onInterrupt(startWith(runId, agentId, input, options), () => Effect.ignore(cancel(runId))) : startWith(runId, agentId, input, options)
      }).pipe(Effect.map((run) => {
        let ended = false
        return attach(run.runId).pipe(
          Stream.mapEffect((recorded): Effect.Effect<ExecuteEvent | undefined, RuntimeError> => {
            if (recorded.event.type !== "end") return Effect.succeed(recorded.event as unknown as ExecuteEvent)
            ended = true
            const error = (recorded.event as { error?: ErrorData }).error
            // A caller whose own signal cancelled the step just stops reading; anyone else hears why it ended.
            if (error === undefined || (error.code === "E2037" && options.signal?.aborted === true)) return Effect.succeed(undefined)
            // The error as raised where it ran (with its own fields), else rebuilt from its data.
            const cause = live.get(run.runId)?.ended?.cause ?? fromErrorData(error, agentId)
            return Effect.fail(cause)
          }),
          Stream.filter((event): event is ExecuteEvent => event !== undefined),
          Stream.onExit(() => (ended || options.cancelOnDisconnect !== true ? Effect.void : Effect.ignore(cancel(run.runId))))
        )
      }))
    )

  const interruptStale = (query: { readonly runtimeId?: string; readonly agentId?: string }) =>
    Effect.gen(function* () {
      const stale = (yield* runLog.list({ ...query, status: "running", limit: 100_000 })).filter((run) => !live.has(run.runId))
      for (const run of stale) {
        const message = `run ${run.runId} was interrupted after event ${run.lastSeq}: its supervisor stopped or lost the agent before the step ended`
        yield* finishStored(run, "interrupted", toErrorData(new RunInterrupted({ message, agentId: run.agentId, runId: run.runId, lastSeq: run.lastSeq })))
      }
      return stale.length
    })

  const prune = Effect.suspend(() =>
    runLog.prune({
      runtimeId,
      keepPerAgent: deps.retention.runsPerAgent,
      endedBefore: new Date(deps.now() - deps.retention.seconds * 1000).toISOString()
    })
  )

  // The runs end here and their ends are written before the agent goes, so its next owner finds
  // nothing of them running.
  const releaseAgent = (agentId: string) =>
    Effect.gen(function* () {
      yield* Fiber.interruptAll([...live.values()].flatMap((r) => (r.run.agentId === agentId && r.ended === undefined ? Option.toArray(Option.fromUndefinedOr(fibers.get(r.run.runId))) : [])))
      yield* Effect.promise(() => writer.drained())
    })

  const shutdown = Effect.gen(function* () {
    yield* Fiber.interruptAll([...fibers.values()])
    yield* Effect.promise(() => writer.close())
  })

  return { start, attach: (runId, options) => attach(runId, options?.from ?? 0), get, list, cancel, execute, interruptStale, releaseAgent, prune, shutdown }
}
