/**
 * The HTTP API of L02 Agent Runtime, declared once with Effect's `HttpApi`: every route with its
 * request and response Schemas, the status of every coded error, and the scope each route needs.
 *
 * The server (`serve.ts`) routes by reflecting over this declaration and decodes requests with these
 * Schemas, and the OpenAPI document is generated from it, so routes, validation and docs cannot drift.
 */
import * as Schema from "effect/Schema"
import { HttpApi as Api, HttpApiEndpoint, HttpApiGroup, HttpApiSchema, OpenApi } from "effect/http-api"
import { AgentConfig } from "../domain/AgentConfig.ts"
import { AgentInstance, SpawnResult } from "../domain/AgentInstance.ts"
import { AgentState } from "../domain/AgentState.ts"
import { Checkpoint } from "../domain/Checkpoint.ts"
import { FleetStatus } from "../domain/FleetStatus.ts"
import { HealthStatus } from "../domain/HealthStatus.ts"
import { PoolStatus } from "../domain/PoolStatus.ts"
import { AgentId, CheckpointId } from "../domain/Ids.ts"
import { LifecycleEvent } from "../domain/LifecycleEvent.ts"
import { type ApiKeyScope, PoolName } from "../domain/RuntimeConfig.ts"
import { ExecutionRunSchema, makeRunsGroup } from "./RunsApi.ts"
import { makeWorkflowsGroup } from "./WorkflowsApi.ts"

/** The body of every error answer: the stable code, the error's tag and a message saying what to fix. */
export const ErrorBody = Schema.Struct({
  error: Schema.Struct({
    code: Schema.String,
    tag: Schema.String,
    message: Schema.String,
    key: Schema.optional(Schema.String),
    agentId: Schema.optional(Schema.String)
  })
}).annotate({ identifier: "ErrorBody", description: "A coded error (see docs/errors.md)." })
/** @see ErrorBody */
export type ErrorBody = typeof ErrorBody.Type

const errorAt = (status: number, description: string) =>
  ErrorBody.pipe(HttpApiSchema.status(status)).annotate({ description })

/** 400: malformed JSON, wrong types, unknown fields, an invalid AgentConfig or WorkflowGraph (E2001, E2004-E2006, E2040-E2044). */
export const BadRequest = errorAt(400, "The request is invalid (E2001, E2004-E2006, E2040-E2044); nothing was changed.")
/** 401: no API key, or an unknown one (E2002). */
export const Unauthorized = errorAt(401, "No valid API key (E2002).")
/** 403: the API key lacks the route's scope (E2003). */
export const Forbidden = errorAt(403, "The API key lacks the scope this route needs (E2003).")
/** 404: no such agent, checkpoint, workflow run or route (E2021, E2061, E2032, E2001). */
export const NotFound = errorAt(404, "No such agent, checkpoint, workflow run or route (E2021, E2061, E2032, E2001).")
/** 409: the agent's or run's state does not accept the operation, or it failed in a way the caller must resolve. */
export const Conflict = errorAt(409, "The agent's or workflow run's state does not allow the operation (E2020, E2031), or it needs a decision: resume failed, restart limit reached, checkpoint corrupt (E2024, E2025, E2062).")
/** 502: the sandbox backend failed while doing what was asked (E2022, E2023, E2026, E2027, E2029, E2045, E2046, E2048, E2049). */
export const BadGateway = errorAt(502, "The sandbox backend failed (E2022, E2023, E2026, E2027, E2029, E2045, E2046, E2048, E2049).")
/** 503: the runtime cannot serve now: shut down, spawn queue full, backend or store unreachable (E2028, E2030, E2047, E2060). */
export const ServiceUnavailable = errorAt(503, "The runtime cannot serve now: shut down, spawn queue full, backend or store unreachable (E2028, E2030, E2047, E2060); retry later.")

const commonErrors = [BadRequest, Unauthorized, Forbidden, ServiceUnavailable] as const
const agentErrors = [...commonErrors, NotFound, Conflict, BadGateway] as const

/** Path parameters of routes about one agent. */
export const AgentPath = Schema.Struct({ agentId: AgentId.annotate({ description: "The agent's id (a UUID)." }) })

/** Body of POST /v1/agents. */
export const SpawnRequest = Schema.Struct({
  config: AgentConfig,
  initialContext: Schema.optional(Schema.Unknown.annotate({ description: "Any JSON, kept with the agent and its checkpoints." }))
}).annotate({ identifier: "SpawnRequest" })

/** Query of GET /v1/agents: every filter is optional and they combine with AND. */
export const ListQuery = Schema.Struct({
  state: Schema.optional(Schema.String.annotate({ description: "Comma-separated agent states, e.g. running,failed." })),
  sessionId: Schema.optional(Schema.String.annotate({ description: "Only agents of this session." })),
  label: Schema.optional(Schema.String.annotate({ description: "Comma-separated key=value label selectors, e.g. team=search,tier=1." }))
})

/** Answer of GET /v1/agents. */
export const AgentList = Schema.Struct({ agents: Schema.Array(AgentInstance) }).annotate({ identifier: "AgentList" })

/** Body of POST /v1/agents/{agentId}/suspend. */
export const SuspendRequest = Schema.Struct({
  checkpoint: Schema.optional(
    Schema.Boolean.annotate({ description: "Take a checkpoint (actor state and workspace) and remove the sandbox, instead of pausing it." })
  )
}).annotate({ identifier: "SuspendRequest" })

/** Body of POST /v1/agents/{agentId}/resume. */
export const ResumeRequest = Schema.Struct({
  checkpointId: Schema.optional(CheckpointId.annotate({ description: "Resume from this checkpoint; default: the agent's own pause or last checkpoint." }))
}).annotate({ identifier: "ResumeRequest" })

/** Query (or JSON body) of DELETE /v1/agents/{agentId}. */
export const TerminateQuery = Schema.Struct({
  force: Schema.optional(Schema.Literals(["true", "false"]).annotate({ description: "Skip the graceful stop and kill at once." })),
  reason: Schema.optional(Schema.String.check(Schema.isMaxLength(1024)).annotate({ description: "Recorded with the lifecycle event." }))
})

/** The JSON-body form of the terminate options (`{"force": true, "reason": "..."}`). */
export const TerminateRequest = Schema.Struct({
  force: Schema.optional(Schema.Boolean),
  reason: Schema.optional(Schema.String.check(Schema.isMaxLength(1024)))
}).annotate({ identifier: "TerminateRequest" })

/** Answer of every lifecycle operation: the agent and the state it reached. */
export const OperationResult = Schema.Struct({
  agentId: Schema.String,
  state: AgentState,
  checkpointId: Schema.optional(Schema.String)
}).annotate({ identifier: "OperationResult" })

/** Body of POST /v1/agents/{agentId}/execute. */
export const ExecuteRequest = Schema.Struct({
  input: Schema.Unknown.annotate({ description: "Any JSON; sent to the agent as {\"type\":\"input\",\"id\",\"input\"}." }),
  timeoutMs: Schema.optional(
    Schema.Number.check(Schema.isInt(), Schema.isBetween({ minimum: 1, maximum: 3_600_000 })).annotate({
      description: "How long to wait for the agent's done line; default 300000."
    })
  ),
  detach: Schema.optional(
    Schema.Boolean.annotate({ description: "Answer 202 with the run at once (follow it with GET /v1/runs/{runId}/events) instead of streaming it." })
  ),
  cancelOnDisconnect: Schema.optional(
    Schema.Boolean.annotate({ description: "Cancel the step when this client disconnects; default false: the run goes on and can be attached to again." })
  )
}).annotate({ identifier: "ExecuteRequest" })

/**
 * One event of an execute stream, then `done`: an output line of the agent's program (agents without a
 * model), or the agent loop's text, tool calls, tool results, usage and coded errors (agents with one).
 */
export const ExecuteEvent = Schema.Union([
  Schema.Struct({
    type: Schema.Literal("output"),
    stream: Schema.Literals(["stdout", "stderr"]),
    line: Schema.String,
    data: Schema.optional(Schema.Unknown)
  }),
  Schema.Struct({ type: Schema.Literal("text"), text: Schema.String }),
  Schema.Struct({ type: Schema.Literal("tool.call"), id: Schema.String, name: Schema.String, arguments: Schema.String }),
  Schema.Struct({
    type: Schema.Literal("tool.result"),
    toolCallId: Schema.String,
    name: Schema.String,
    content: Schema.String,
    isError: Schema.Boolean
  }),
  Schema.Struct({ type: Schema.Literal("usage"), inputTokens: Schema.Number, outputTokens: Schema.Number }),
  Schema.Struct({
    type: Schema.Literal("error"),
    error: Schema.Struct({ code: Schema.String, message: Schema.String, retryable: Schema.Boolean })
  }),
  Schema.Struct({ type: Schema.Literal("done"), executionId: Schema.String, data: Schema.optional(Schema.Unknown) })
]).annotate({ identifier: "ExecuteEvent" })

/** Query of GET /v1/events. */
export const EventsQuery = Schema.Struct({
  agentId: Schema.optional(AgentId.annotate({ description: "Only events of this agent." })),
  after: Schema.optional(
    Schema.String.check(Schema.isPattern(/^\d{1,15}$/)).annotate({
      description: "Replay the recorded events after this event id first (as the Last-Event-ID header does), then the live ones."
    })
  ),
  recent: Schema.optional(
    Schema.String.check(Schema.isPattern(/^\d{1,4}$/)).annotate({ description: "Replay the newest N recorded events first (at most 1000), then the live ones." })
  )
})

/** Answer of GET /healthz. */
export const Health = Schema.Struct({ status: Schema.Literal("ok"), runtimeId: Schema.String }).annotate({ identifier: "Health" })

const sse = <S extends Schema.Constraint>(data: S) => HttpApiSchema.StreamSse({ data })

/** Agent lifecycle operations. */
export const AgentsGroup = HttpApiGroup.make("agents")
  .add(
    HttpApiEndpoint.post("spawn", "/v1/agents", {
      payload: SpawnRequest,
      success: SpawnResult.pipe(HttpApiSchema.status(201)),
      error: [...agentErrors]
    }).annotateMerge(OpenApi.annotations({ summary: "Spawn an agent; answers once it runs" }))
  )
  .add(
    HttpApiEndpoint.get("list", "/v1/agents", { query: ListQuery, success: AgentList, error: [...commonErrors] }).annotateMerge(
      OpenApi.annotations({ summary: "List the agents of this runtime" })
    )
  )
  .add(
    HttpApiEndpoint.get("get", "/v1/agents/:agentId", { params: AgentPath, success: AgentInstance, error: [...agentErrors] }).annotateMerge(
      OpenApi.annotations({ summary: "Get one agent" })
    )
  )
  .add(
    HttpApiEndpoint.post("suspend", "/v1/agents/:agentId/suspend", {
      params: AgentPath,
      payload: SuspendRequest,
      success: OperationResult,
      error: [...agentErrors]
    }).annotateMerge(OpenApi.annotations({ summary: "Suspend a running agent (pause, or checkpoint and remove the sandbox)" }))
  )
  .add(
    HttpApiEndpoint.post("resume", "/v1/agents/:agentId/resume", {
      params: AgentPath,
      payload: ResumeRequest,
      success: OperationResult,
      error: [...agentErrors]
    }).annotateMerge(OpenApi.annotations({ summary: "Resume a suspended agent" }))
  )
  .add(
    HttpApiEndpoint.delete("terminate", "/v1/agents/:agentId", {
      params: AgentPath,
      query: TerminateQuery,
      success: OperationResult,
      error: [...agentErrors]
    }).annotateMerge(
      OpenApi.annotations({
        summary: "Terminate an agent",
        description: "Options as query parameters, or as a JSON body {\"force\": true, \"reason\": \"...\"}; not both."
      })
    )
  )
  .add(
    HttpApiEndpoint.post("execute", "/v1/agents/:agentId/execute", {
      params: AgentPath,
      payload: ExecuteRequest,
      success: [sse(ExecuteEvent), ExecutionRunSchema.pipe(HttpApiSchema.status(202))],
      error: [...agentErrors]
    }).annotateMerge(
      OpenApi.annotations({
        summary: "Send input to the agent as a durable run and stream its answer as Server-Sent Events (or, with detach, answer 202 with the run)",
        description:
          "Errors before the stream starts answer with a status and ErrorBody. Once streaming (header L02-Run-Id names the run), each event is `id: <seq>` and `data: <ExecuteEvent JSON>`; a failure mid-stream is `event: error` with an ErrorBody, and ends the stream. A client that disconnects leaves the run going (unless cancelOnDisconnect); GET /v1/runs/{runId}/events with Last-Event-ID reads the rest."
      })
    )
  )

/** Answer of GET /v1/agents/{agentId}/checkpoints. */
export const CheckpointList = Schema.Struct({ checkpoints: Schema.Array(Checkpoint) }).annotate({ identifier: "CheckpointList" })

/** A fleet operation (scale, drain), as recorded in the store. */
export const FleetOperation = Schema.Struct({
  operationId: Schema.String,
  operationType: Schema.String,
  targetReplicas: Schema.optional(Schema.Number),
  status: Schema.Literals(["pending", "running", "completed", "failed"]),
  reason: Schema.optional(Schema.String),
  priority: Schema.optional(Schema.String),
  createdAt: Schema.String,
  completedAt: Schema.optional(Schema.String)
}).annotate({ identifier: "FleetOperation" })

/** Body of POST /v1/fleet/scale. */
export const ScaleRequest = Schema.Struct({
  pool: PoolName.annotate({ description: "The pool: agents labelled pool.l02.dev/name=<pool>." }),
  replicas: Schema.Number.check(Schema.isInt(), Schema.isBetween({ minimum: 0, maximum: 10_000 })),
  template: Schema.optional(AgentConfig.annotate({ description: "The config new replicas are spawned from; default: a current member's." })),
  reason: Schema.optional(Schema.String.check(Schema.isMaxLength(1024))),
  priority: Schema.optional(Schema.Literals(["low", "normal", "high"]))
}).annotate({ identifier: "ScaleRequest" })

/** Query of GET /v1/fleet/operations. */
export const OperationsQuery = Schema.Struct({
  limit: Schema.optional(Schema.String.check(Schema.isPattern(/^[1-9][0-9]{0,3}$/)).annotate({ description: "At most this many (1-9999), newest first." }))
})

/** Answer of GET /v1/fleet/operations. */
export const OperationList = Schema.Struct({ operations: Schema.Array(FleetOperation) }).annotate({ identifier: "OperationList" })

/** Answer of GET /v1/pools. */
export const PoolList = Schema.Struct({ pools: Schema.Array(PoolStatus) }).annotate({ identifier: "PoolList" })

/** Path parameters of routes about one warm pool. */
export const PoolPath = Schema.Struct({ name: PoolName.annotate({ description: "The warm pool's name (config pools.warm)." }) })

/** Body of PUT /v1/pools/{name}. */
export const ResizeRequest = Schema.Struct({
  size: Schema.Number.check(Schema.isInt(), Schema.isGreaterThanOrEqualTo(0)).annotate({ description: "The new size, within the pool's [min, max]." })
}).annotate({ identifier: "ResizeRequest" })

/** An agent's checkpoints and health. */
export const AgentDetailsGroup = HttpApiGroup.make("agentDetails")
  .add(
    HttpApiEndpoint.get("checkpoints", "/v1/agents/:agentId/checkpoints", { params: AgentPath, success: CheckpointList, error: [...agentErrors] }).annotateMerge(
      OpenApi.annotations({ summary: "An agent's checkpoints, oldest first" })
    )
  )
  .add(
    HttpApiEndpoint.get("agentHealth", "/v1/agents/:agentId/health", { params: AgentPath, success: HealthStatus, error: [...agentErrors] }).annotateMerge(
      OpenApi.annotations({ summary: "An agent's liveness (sandbox, heartbeats) and readiness" })
    )
  )

/** Warm pools: sandboxes made ahead of time for spawns of a template (docs/pools.md). */
export const PoolsGroup = HttpApiGroup.make("pools")
  .add(
    HttpApiEndpoint.get("pools", "/v1/pools", { success: PoolList, error: [...commonErrors] }).annotateMerge(
      OpenApi.annotations({ summary: "The warm pools: bounds, ready and in-flight sandboxes, claims" })
    )
  )
  .add(
    HttpApiEndpoint.put("resizePool", "/v1/pools/:name", { params: PoolPath, payload: ResizeRequest, success: PoolStatus, error: [...commonErrors] }).annotateMerge(
      OpenApi.annotations({ summary: "Set a warm pool's size within its [min, max]" })
    )
  )

/** The fleet, its lifecycle events and the server itself. */
export const FleetGroup = HttpApiGroup.make("fleet")
  .add(
    HttpApiEndpoint.get("fleet", "/v1/fleet", { success: FleetStatus, error: [...commonErrors] }).annotateMerge(
      OpenApi.annotations({ summary: "Agents counted by state, restarts" })
    )
  )
  .add(
    HttpApiEndpoint.post("scale", "/v1/fleet/scale", { payload: ScaleRequest, success: FleetOperation, error: [...agentErrors] }).annotateMerge(
      OpenApi.annotations({ summary: "Scale a pool of agents to N replicas; answers once done, with the recorded operation" })
    )
  )
  .add(
    HttpApiEndpoint.get("operations", "/v1/fleet/operations", { query: OperationsQuery, success: OperationList, error: [...commonErrors] }).annotateMerge(
      OpenApi.annotations({ summary: "Fleet operations, newest first" })
    )
  )
  .add(
    HttpApiEndpoint.get("events", "/v1/events", { query: EventsQuery, success: sse(LifecycleEvent), error: [...commonErrors] }).annotateMerge(
      OpenApi.annotations({
        summary: "Lifecycle events as Server-Sent Events (id: the event id): from now on, or replayed from the log first (after, recent, Last-Event-ID)",
        description: "Each event is `id: <eventId>` and `data: <LifecycleEvent JSON>`; a comment line keeps idle connections open."
      })
    )
  )
  .add(
    HttpApiEndpoint.get("metrics", "/metrics", {
      success: Schema.String.pipe(HttpApiSchema.asText({ contentType: "text/plain; version=0.0.4" })),
      error: [...commonErrors]
    }).annotateMerge(OpenApi.annotations({ summary: "Prometheus metrics" }))
  )
  .add(
    HttpApiEndpoint.get("health", "/healthz", { success: Health }).annotateMerge(
      OpenApi.annotations({ summary: "Liveness: answers while the server and runtime run" })
    )
  )

/** Every endpoint's identifier. */
export type EndpointName =
  | "spawn"
  | "list"
  | "get"
  | "suspend"
  | "resume"
  | "terminate"
  | "execute"
  | "checkpoints"
  | "agentHealth"
  | "pools"
  | "resizePool"
  | "fleet"
  | "scale"
  | "operations"
  | "events"
  | "metrics"
  | "health"
  | "startWorkflow"
  | "listWorkflows"
  | "getWorkflow"
  | "signalWorkflow"
  | "cancelWorkflow"
  | "workflowEvents"
  | "listRuns"
  | "getRun"
  | "runEvents"
  | "cancelRun"

/** The scope each endpoint needs (`admin` has them all); `public` endpoints need no key. */
export const endpointScopes: Readonly<Record<EndpointName, ApiKeyScope | "public">> = {
  spawn: "operate",
  list: "read",
  get: "read",
  suspend: "operate",
  resume: "operate",
  terminate: "operate",
  execute: "operate",
  checkpoints: "read",
  agentHealth: "read",
  pools: "read",
  resizePool: "operate",
  fleet: "read",
  scale: "operate",
  operations: "read",
  events: "read",
  metrics: "read",
  health: "public",
  startWorkflow: "operate",
  listWorkflows: "read",
  getWorkflow: "read",
  signalWorkflow: "operate",
  cancelWorkflow: "operate",
  workflowEvents: "read",
  listRuns: "read",
  getRun: "read",
  // A step's output is its caller's (execute needs operate): following it needs operate too.
  runEvents: "operate",
  cancelRun: "operate"
}

/** The whole API. */
export const L02Api = Api.make("l02")
  .add(AgentsGroup)
  .add(AgentDetailsGroup)
  .add(PoolsGroup)
  .add(FleetGroup)
  .add(makeWorkflowsGroup(agentErrors))
  .add(makeRunsGroup(agentErrors))
  .annotateMerge(
    OpenApi.annotations({
      title: "L02 Agent Runtime",
      version: "0.1.0",
      description:
        "Runs AI agents as supervised actors inside sandboxes. Authenticate with `Authorization: Bearer <API key>`; every error answers with an ErrorBody carrying a stable code (docs/errors.md)."
    })
  )
