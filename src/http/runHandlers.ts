/**
 * The handlers of the execute-run routes (RunsApi.ts) over a runtime's `runs`, and the SSE writer the
 * execute route shares with them: each event `id: <seq>`, so a client reconnecting with Last-Event-ID
 * reads each event once, in order.
 */
import type { ServerResponse } from "node:http"
import type { ErrorData } from "../domain/ErrorCatalog.ts"
import { fromErrorData } from "../domain/Errors.ts"
import type { RunEvent, RunStatus } from "../domain/ExecutionRun.ts"
import type { L02Runtime } from "../runtime/createRuntime.ts"
import { answerOfUnknown } from "./ErrorResponse.ts"
import { type Answer, type Handler, json, lastEventIdOf, orThrow, startSse, writeEvent } from "./internal/answers.ts"
import { decode } from "./internal/decode.ts"
import { RunEventsQuery, RunListQuery, RunPath } from "./RunsApi.ts"

/** The names of the run endpoints. */
export type RunEndpoint = "listRuns" | "getRun" | "runEvents" | "cancelRun"

/**
 * Streams a run's events to `res` as SSE until its end (or the client leaves): `events` is the run's
 * attach iterator, `first` its first step when already read. `endAs` says how the end is written:
 * `end` (the runs route: an `end` event) or `execute` (the execute route: an ErrorBody `error` event
 * for a run that did not complete, nothing for one that did).
 */
export const streamRun = async (
  res: ServerResponse,
  events: AsyncIterator<RunEvent>,
  endAs: "end" | "execute",
  first?: IteratorResult<RunEvent>
) => {
  const stop = () => void events.return?.().catch(() => undefined)
  res.once("close", stop)
  try {
    let next = first ?? (await events.next())
    while (!next.done) {
      const recorded = next.value
      if (recorded.event.type === "end" && endAs === "execute") {
        const error = (recorded.event as { error?: ErrorData }).error
        if (error !== undefined) writeEvent(res, { id: recorded.seq, event: "error", data: answerOfUnknown(fromErrorData(error)).body })
        break
      }
      if (!writeEvent(res, { id: recorded.seq, event: recorded.event.type, data: endAs === "end" ? recorded : recorded.event })) break
      next = await events.next()
    }
  } catch (error) {
    writeEvent(res, { event: "error", data: answerOfUnknown(error).body })
  } finally {
    res.off("close", stop)
    stop()
    res.end()
  }
}

/** Builds the run handlers; `track` registers an open stream so the server can end it on close. */
export const runHandlers = (runtime: L02Runtime, track: (end: () => void) => () => void): Record<RunEndpoint, Handler> => ({
  listRuns: async ({ query }) => {
    const q = orThrow(decode(RunListQuery, query, "query"))
    // The runtime checks the agent id and each status (E2001 naming query.agentId, query.status).
    const runs = await runtime.runs.list({
      ...(q.agentId === undefined ? {} : { agentId: q.agentId }),
      ...(q.status === undefined ? {} : { status: q.status.split(",") as Array<RunStatus> }),
      ...(q.limit === undefined ? {} : { limit: Number(q.limit) })
    })
    return json(200, { runs })
  },
  getRun: async ({ params }) => json(200, await runtime.runs.get(orThrow(decode(RunPath, params, "path")).runId)),
  runEvents: async ({ params, query, req, res }) => {
    const { runId } = orThrow(decode(RunPath, params, "path"))
    const q = orThrow(decode(RunEventsQuery, query, "query"))
    // An unknown run answers 404 before the stream starts.
    await runtime.runs.get(runId)
    // A reconnecting client says what it saw last (Last-Event-ID), else `from`.
    const events = runtime.runs.attach(runId, { from: lastEventIdOf(req) ?? Number(q.from ?? 0) })[Symbol.asyncIterator]()
    const untrack = track(() => void events.return?.().catch(() => undefined))
    startSse(res)
    res.write(": connected\n\n")
    try {
      await streamRun(res, events, "end")
    } finally {
      untrack()
    }
    return { _tag: "Streamed" } satisfies Answer
  },
  cancelRun: async ({ params }) => json(200, await runtime.runs.cancel(orThrow(decode(RunPath, params, "path")).runId))
})
