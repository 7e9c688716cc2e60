/**
 * The workflow routes of the HTTP API (docs/workflows.md): start a WorkflowGraph, list and read runs,
 * signal an approval node, cancel, and follow a run's events as Server-Sent Events.
 */
import * as Schema from "effect/Schema"
import { HttpApiEndpoint, HttpApiGroup, HttpApiSchema, OpenApi } from "effect/http-api"
import { LifecycleEvent } from "../domain/LifecycleEvent.ts"

const ErrorData = Schema.Struct({ code: Schema.String, message: Schema.String, retryable: Schema.Boolean })

/** One node of a run, as answered. */
export const NodeRunSchema = Schema.Struct({
  state: Schema.Literals(["pending", "running", "waiting", "completed", "failed", "skipped", "cancelled", "compensated"]),
  attempts: Schema.Number,
  output: Schema.optional(Schema.Unknown),
  error: Schema.optional(ErrorData),
  agentId: Schema.optional(Schema.String),
  startedAt: Schema.optional(Schema.String),
  finishedAt: Schema.optional(Schema.String),
  compensation: Schema.optional(Schema.Literals(["running", "completed", "failed"]))
}).annotate({ identifier: "NodeRun" })

const runFields = {
  workflowId: Schema.String,
  parentId: Schema.optional(Schema.String),
  name: Schema.String,
  state: Schema.Literals(["pending", "running", "waiting", "cancelling", "completed", "failed", "cancelled"]),
  input: Schema.Unknown,
  origin: Schema.Literals(["embedding", "remote"]),
  hostedBy: Schema.optional(Schema.String),
  nodes: Schema.Record(Schema.String, NodeRunSchema),
  output: Schema.optional(Schema.Unknown),
  error: Schema.optional(ErrorData),
  createdAt: Schema.String,
  updatedAt: Schema.String
}

/** A run with its graph. */
export const WorkflowRunSchema = Schema.Struct({ ...runFields, graph: Schema.Unknown, snapshot: Schema.optional(Schema.Unknown) }).annotate({ identifier: "WorkflowRun" })
/** A run as lists show it. */
export const WorkflowSummarySchema = Schema.Struct(runFields).annotate({ identifier: "WorkflowSummary" })

/** Body of POST /v1/workflows. The graph itself is checked by the runtime (E2006 naming the node). */
export const StartWorkflowRequest = Schema.Struct({
  graph: Schema.Unknown.annotate({ description: "A WorkflowGraph document (docs/workflows.md)." }),
  input: Schema.optional(Schema.Unknown.annotate({ description: "The run's input, read by templates as {{ input.<path> }}." }))
}).annotate({ identifier: "StartWorkflowRequest" })

/** Path parameters of routes about one run. */
export const WorkflowPath = Schema.Struct({ workflowId: Schema.String.annotate({ description: "The run's id (a UUID)." }) })

/** Query of GET /v1/workflows. */
export const WorkflowListQuery = Schema.Struct({
  state: Schema.optional(Schema.String.annotate({ description: "Comma-separated run states, e.g. running,waiting." })),
  parentId: Schema.optional(Schema.String.annotate({ description: "The sub-workflow runs of this run (default: top-level runs)." }))
})

/** Answer of GET /v1/workflows. */
export const WorkflowList = Schema.Struct({ workflows: Schema.Array(WorkflowSummarySchema) }).annotate({ identifier: "WorkflowList" })

/** Body of POST /v1/workflows/{workflowId}/signal. */
export const SignalRequest = Schema.Struct({
  node: Schema.String.annotate({ description: "The approval node that waits." }),
  value: Schema.optional(Schema.Unknown.annotate({ description: "The node's output, e.g. {\"approved\": true}." }))
}).annotate({ identifier: "SignalRequest" })

/** Body of POST /v1/workflows/{workflowId}/cancel. */
export const CancelRequest = Schema.Struct({ reason: Schema.optional(Schema.String.check(Schema.isMaxLength(1024))) }).annotate({ identifier: "CancelRequest" })

/** The workflow endpoints; `errors` are the API's shared error answers. */
export const makeWorkflowsGroup = (errors: ReadonlyArray<Schema.Top>) =>
  HttpApiGroup.make("workflows")
    .add(
      HttpApiEndpoint.post("startWorkflow", "/v1/workflows", { payload: StartWorkflowRequest, success: WorkflowRunSchema.pipe(HttpApiSchema.status(201)), error: [...errors] as never }).annotateMerge(
        OpenApi.annotations({
          summary: "Start a workflow run; answers once its record is written (the run goes on in the background)",
          description: "The graph is a WorkflowGraph (docs/workflows.md), checked before anything runs: E2006 names the node at fault. Its agent configs are remote ones: they may name only what the operator declared (E2004, E2005)."
        })
      )
    )
    .add(
      HttpApiEndpoint.get("listWorkflows", "/v1/workflows", { query: WorkflowListQuery, success: WorkflowList, error: [...errors] as never }).annotateMerge(
        OpenApi.annotations({ summary: "List workflow runs, oldest first" })
      )
    )
    .add(
      HttpApiEndpoint.get("getWorkflow", "/v1/workflows/:workflowId", { params: WorkflowPath, success: WorkflowRunSchema, error: [...errors] as never }).annotateMerge(
        OpenApi.annotations({ summary: "One run: its graph, state and every node's state and output" })
      )
    )
    .add(
      HttpApiEndpoint.post("signalWorkflow", "/v1/workflows/:workflowId/signal", { params: WorkflowPath, payload: SignalRequest, success: WorkflowRunSchema, error: [...errors] as never }).annotateMerge(
        OpenApi.annotations({ summary: "Complete a waiting approval node with a value (E2031 when it does not wait)" })
      )
    )
    .add(
      HttpApiEndpoint.post("cancelWorkflow", "/v1/workflows/:workflowId/cancel", { params: WorkflowPath, payload: CancelRequest, success: WorkflowRunSchema, error: [...errors] as never }).annotateMerge(
        OpenApi.annotations({ summary: "Cancel a run: running nodes stop, their agents are terminated, compensations run" })
      )
    )
    .add(
      HttpApiEndpoint.get("workflowEvents", "/v1/workflows/:workflowId/events", {
        params: WorkflowPath,
        success: HttpApiSchema.StreamSse({ data: LifecycleEvent }),
        error: [...errors] as never
      }).annotateMerge(
        OpenApi.annotations({
          summary: "A run's events as Server-Sent Events: those recorded so far, then the live ones, ending with the run's end",
          description: "Each event is `id: <eventId>` and `data: <LifecycleEvent JSON>`; Last-Event-ID skips the ones already seen."
        })
      )
    )
