/**
 * The execute-run routes of the HTTP API (docs/execution.md, "Runs"): list and read runs, follow a
 * run's events as Server-Sent Events from any sequence number, cancel a run.
 */
import * as Schema from "effect/Schema"
import { HttpApiEndpoint, HttpApiGroup, HttpApiSchema, OpenApi } from "effect/http-api"
import { runStatuses } from "../domain/ExecutionRun.ts"

const ErrorData = Schema.Struct({ code: Schema.String, message: Schema.String, retryable: Schema.Boolean })

/** One execute run, as answered. */
export const ExecutionRunSchema = Schema.Struct({
  runId: Schema.String,
  agentId: Schema.String,
  runtimeId: Schema.String,
  status: Schema.Literals(runStatuses),
  startedAt: Schema.String,
  endedAt: Schema.optional(Schema.String),
  lastSeq: Schema.Number.annotate({ description: "The sequence number of the run's last recorded event." }),
  error: Schema.optional(ErrorData)
}).annotate({ identifier: "ExecutionRun" })

/** One event of a run: its sequence number, when, in which agent state, and the execute event (or `end`). */
export const RunEventSchema = Schema.Struct({
  runId: Schema.String,
  seq: Schema.Number,
  at: Schema.String,
  agentState: Schema.String,
  event: Schema.Unknown.annotate({
    description: "An ExecuteEvent (output, text, tool.call, tool.result, usage, error, done), or the run's last event {\"type\":\"end\",\"status\",\"error\"?}."
  })
}).annotate({ identifier: "RunEvent" })

/** Path parameters of routes about one run. */
export const RunPath = Schema.Struct({ runId: Schema.String.annotate({ description: "The run's id (a UUID; the done event's executionId)." }) })

/** Query of GET /v1/runs. */
export const RunListQuery = Schema.Struct({
  agentId: Schema.optional(Schema.String.annotate({ description: "Only the runs of this agent." })),
  status: Schema.optional(Schema.String.annotate({ description: `Comma-separated statuses: ${runStatuses.join(", ")}.` })),
  limit: Schema.optional(Schema.String.check(Schema.isPattern(/^\d{1,4}$/)).annotate({ description: "At most this many (1-1000, default 100)." }))
})

/** Query of GET /v1/runs/{runId}/events. */
export const RunEventsQuery = Schema.Struct({
  from: Schema.optional(
    Schema.String.check(Schema.isPattern(/^\d{1,15}$/)).annotate({ description: "Deliver the events after this sequence number (as Last-Event-ID does); default 0, all of them." })
  )
})

/** Answer of GET /v1/runs. */
export const RunList = Schema.Struct({ runs: Schema.Array(ExecutionRunSchema) }).annotate({ identifier: "RunList" })

/** The run endpoints; `errors` are the API's shared error answers. */
export const makeRunsGroup = (errors: ReadonlyArray<Schema.Top>) =>
  HttpApiGroup.make("runs")
    .add(
      HttpApiEndpoint.get("listRuns", "/v1/runs", { query: RunListQuery, success: RunList, error: [...errors] as never }).annotateMerge(
        OpenApi.annotations({ summary: "List execute runs, newest first" })
      )
    )
    .add(
      HttpApiEndpoint.get("getRun", "/v1/runs/:runId", { params: RunPath, success: ExecutionRunSchema, error: [...errors] as never }).annotateMerge(
        OpenApi.annotations({ summary: "One execute run: its agent, status, last sequence number and error" })
      )
    )
    .add(
      HttpApiEndpoint.get("runEvents", "/v1/runs/:runId/events", {
        params: RunPath,
        query: RunEventsQuery,
        success: HttpApiSchema.StreamSse({ data: RunEventSchema }),
        error: [...errors] as never
      }).annotateMerge(
        OpenApi.annotations({
          summary: "A run's events as Server-Sent Events: the recorded ones after `from` (or Last-Event-ID), then the live ones, ending with its end event",
          description: "Each event is `id: <seq>`, `event: <type>` and `data: <RunEvent JSON>`; the last is `event: end` with the run's status. Reconnecting with Last-Event-ID delivers each event once, in order."
        })
      )
    )
    .add(
      HttpApiEndpoint.post("cancelRun", "/v1/runs/:runId/cancel", { params: RunPath, success: ExecutionRunSchema, error: [...errors] as never }).annotateMerge(
        OpenApi.annotations({ summary: "Cancel a running run: the step stops, the agent goes back to idle, the run ends cancelled (E2037); an ended run is answered as it is" })
      )
    )
