/**
 * Schema-backed tagged errors, one class per stable code (see docs/errors.md).
 *
 * Every class is an `Error` subclass with `_tag`, `code` and `retryable`, so the promise API can
 * throw them as they are and Effect code can match them with `Effect.catchTag`.
 */
import * as Schema from "effect/Schema"
import { type ErrorCode, type ErrorData, errorInfo } from "./ErrorCatalog.ts"

const fields = {
  message: Schema.String,
  /** The agent concerned, when there is one. */
  agentId: Schema.optional(Schema.String),
  /** The configuration key or input path concerned, when there is one. */
  key: Schema.optional(Schema.String)
}

/** E2000: a configuration value is invalid; `key` names it. */
export class ConfigInvalid extends Schema.TaggedError<ConfigInvalid>()("ConfigInvalid", fields) {
  readonly code = "E2000" as const
}
/** E2001: request input (an AgentConfig, an id, an option) is invalid; `key` names the path. */
export class InputInvalid extends Schema.TaggedError<InputInvalid>()("InputInvalid", fields) {
  readonly code = "E2001" as const
}
/** E2002: the HTTP request carried no API key, or one the server does not know. */
export class Unauthenticated extends Schema.TaggedError<Unauthenticated>()("Unauthenticated", fields) {
  readonly code = "E2002" as const
}
/** E2003: the API key is valid but lacks the scope the operation needs; `key` names the scope. */
export class Forbidden extends Schema.TaggedError<Forbidden>()("Forbidden", fields) {
  readonly code = "E2003" as const
}
/**
 * E2004: an agent config from outside the process (HTTP) names a host resource directly: a file path,
 * an environment variable of the supervisor, or a URL not in `execution.allowed_urls`. `key` names the
 * field; nothing was created.
 */
export class HostReferenceRefused extends Schema.TaggedError<HostReferenceRefused>()("HostReferenceRefused", fields) {
  readonly code = "E2004" as const
}
/**
 * E2005: an agent config names an operator resource (a model endpoint, an MCP server, a secret) that
 * the configuration does not declare, or a model id its endpoint does not allow. `key` names the field.
 */
export class ReferenceUnknown extends Schema.TaggedError<ReferenceUnknown>()("ReferenceUnknown", fields) {
  readonly code = "E2005" as const
}
/** E2020: the operation is not accepted in the agent's current state; nothing was changed. */
export class InvalidTransition extends Schema.TaggedError<InvalidTransition>()("InvalidTransition", {
  ...fields,
  state: Schema.String,
  operation: Schema.String
}) {
  readonly code = "E2020" as const
}
/** E2021: no agent with this id is known to the runtime. */
export class AgentNotFound extends Schema.TaggedError<AgentNotFound>()("AgentNotFound", fields) {
  readonly code = "E2021" as const
}
/** E2022: the sandbox could not be provisioned or started (including spawn timeout). */
export class SpawnFailed extends Schema.TaggedError<SpawnFailed>()("SpawnFailed", fields) {
  readonly code = "E2022" as const
}
/** E2023: suspending or checkpointing failed. */
export class SuspendFailed extends Schema.TaggedError<SuspendFailed>()("SuspendFailed", fields) {
  readonly code = "E2023" as const
}
/** E2024: resume failed: checkpoint missing, expired or corrupt, or the sandbox could not come back. */
export class ResumeFailed extends Schema.TaggedError<ResumeFailed>()("ResumeFailed", fields) {
  readonly code = "E2024" as const
}
/** E2025: the agent failed more than max_restart_count times within the restart window. */
export class RestartLimitExceeded extends Schema.TaggedError<RestartLimitExceeded>()("RestartLimitExceeded", fields) {
  readonly code = "E2025" as const
}
/** E2026: stopping or removing the sandbox failed. */
export class TerminateFailed extends Schema.TaggedError<TerminateFailed>()("TerminateFailed", fields) {
  readonly code = "E2026" as const
}
/** E2027: the agent's sandbox exited without being asked to. */
export class SandboxExited extends Schema.TaggedError<SandboxExited>()("SandboxExited", fields) {
  readonly code = "E2027" as const
}
/** E2028: the runtime was shut down; no further operations are accepted. */
export class RuntimeShutDown extends Schema.TaggedError<RuntimeShutDown>()("RuntimeShutDown", fields) {
  readonly code = "E2028" as const
}
/** E2029: sending input to the agent or reading its output failed. */
export class ExecuteFailed extends Schema.TaggedError<ExecuteFailed>()("ExecuteFailed", fields) {
  readonly code = "E2029" as const
}
/** E2030: too many spawns are already waiting (lifecycle.spawn_queue_limit); nothing was created. */
export class AdmissionRejected extends Schema.TaggedError<AdmissionRejected>()("AdmissionRejected", fields) {
  readonly code = "E2030" as const
}
/** E2040: the sandbox configuration is invalid. */
export class SandboxConfigInvalid extends Schema.TaggedError<SandboxConfigInvalid>()("SandboxConfigInvalid", fields) {
  readonly code = "E2040" as const
}
/** E2041: the runtime class the trust level needs is not available on this backend. */
export class RuntimeClassUnavailable extends Schema.TaggedError<RuntimeClassUnavailable>()("RuntimeClassUnavailable", {
  ...fields,
  runtimeClass: Schema.String
}) {
  readonly code = "E2041" as const
}
/** E2042: resource limits are malformed or above the configured maximum. */
export class ResourceLimitsInvalid extends Schema.TaggedError<ResourceLimitsInvalid>()("ResourceLimitsInvalid", fields) {
  readonly code = "E2042" as const
}
/** E2043: the backend cannot enforce the requested network policy. */
export class NetworkPolicyUnsupported extends Schema.TaggedError<NetworkPolicyUnsupported>()(
  "NetworkPolicyUnsupported",
  fields
) {
  readonly code = "E2043" as const
}
/** E2044: the requested security context is weaker than the trust level allows. */
export class SecurityContextViolation extends Schema.TaggedError<SecurityContextViolation>()(
  "SecurityContextViolation",
  fields
) {
  readonly code = "E2044" as const
}
/** E2045: the backend has no sandbox with this id. */
export class SandboxNotFound extends Schema.TaggedError<SandboxNotFound>()("SandboxNotFound", fields) {
  readonly code = "E2045" as const
}
/** E2046: a sandbox operation failed in the backend. */
export class SandboxOperationFailed extends Schema.TaggedError<SandboxOperationFailed>()("SandboxOperationFailed", fields) {
  readonly code = "E2046" as const
}
/** E2047: the backend (Docker engine, Kubernetes API) cannot be reached. */
export class BackendUnavailable extends Schema.TaggedError<BackendUnavailable>()("BackendUnavailable", fields) {
  readonly code = "E2047" as const
}
/** E2048: the sandbox was killed for exceeding its memory limit. */
export class SandboxOomKilled extends Schema.TaggedError<SandboxOomKilled>()("SandboxOomKilled", fields) {
  readonly code = "E2048" as const
}
/** E2049: the agent sent no heartbeat within its heartbeat timeout; the fleet restarts it per policy. */
export class HeartbeatMissed extends Schema.TaggedError<HeartbeatMissed>()("HeartbeatMissed", fields) {
  readonly code = "E2049" as const
}
/** E2050: the sandbox could not start a process (fork refused): it reached its process limit (`resources.pids`). */
export class SandboxProcessLimit extends Schema.TaggedError<SandboxProcessLimit>()("SandboxProcessLimit", fields) {
  readonly code = "E2050" as const
}
/** E2060: the state store failed (connection, query, migration). */
export class StoreFailed extends Schema.TaggedError<StoreFailed>()("StoreFailed", fields) {
  readonly code = "E2060" as const
}
/** E2061: no checkpoint with this id exists. */
export class CheckpointNotFound extends Schema.TaggedError<CheckpointNotFound>()("CheckpointNotFound", fields) {
  readonly code = "E2061" as const
}
/** E2062: the checkpoint failed its integrity check or has expired. */
export class CheckpointCorrupt extends Schema.TaggedError<CheckpointCorrupt>()("CheckpointCorrupt", fields) {
  readonly code = "E2062" as const
}

/** E2080: the model request failed after its retries: server error (5xx), timeout or network; `status` when HTTP. */
export class ModelRequestFailed extends Schema.TaggedError<ModelRequestFailed>()("ModelRequestFailed", {
  ...fields,
  status: Schema.optional(Schema.Number)
}) {
  readonly code = "E2080" as const
}
/** E2081: the provider refused the request (401/403 key, 404 model, 400/422 request); retrying will not help. */
export class ModelRequestRejected extends Schema.TaggedError<ModelRequestRejected>()("ModelRequestRejected", {
  ...fields,
  status: Schema.optional(Schema.Number)
}) {
  readonly code = "E2081" as const
}
/** E2082: the provider's rate limit (429) held after the retries; `retryAfterMs` is the provider's hint. */
export class ModelRateLimited extends Schema.TaggedError<ModelRateLimited>()("ModelRateLimited", {
  ...fields,
  retryAfterMs: Schema.optional(Schema.Number)
}) {
  readonly code = "E2082" as const
}
/** E2083: the provider's answer could not be understood (malformed stream, tool arguments not JSON). */
export class ModelResponseInvalid extends Schema.TaggedError<ModelResponseInvalid>()("ModelResponseInvalid", fields) {
  readonly code = "E2083" as const
}
/** E2084: the call would exceed the agent's tokens_per_hour; refused before it was sent. */
export class TokenBudgetExceeded extends Schema.TaggedError<TokenBudgetExceeded>()("TokenBudgetExceeded", {
  ...fields,
  retryAfterMs: Schema.optional(Schema.Number),
  /** False for a call larger than the whole hourly budget: waiting never makes it fit. */
  retryable: Schema.optional(Schema.Boolean)
}) {
  readonly code = "E2084" as const
}
/** E2085: even the system prompt and the latest turn do not fit the model's context window. */
export class ContextWindowExceeded extends Schema.TaggedError<ContextWindowExceeded>()("ContextWindowExceeded", fields) {
  readonly code = "E2085" as const
}
/** E2086: a tool failed to run or timed out (sandbox error, MCP server unreachable); `key` names the tool. */
export class ToolFailed extends Schema.TaggedError<ToolFailed>()("ToolFailed", fields) {
  readonly code = "E2086" as const
}
/** E2087: a tool's input does not match its schema, or names a path outside /workspace; `key` names the tool. */
export class ToolInputInvalid extends Schema.TaggedError<ToolInputInvalid>()("ToolInputInvalid", fields) {
  readonly code = "E2087" as const
}
/** E2088: the model called a tool that does not exist or is not on the agent's allowlist; `key` names it. */
export class ToolNotAllowed extends Schema.TaggedError<ToolNotAllowed>()("ToolNotAllowed", fields) {
  readonly code = "E2088" as const
}
/** E2089: the agent loop took `maxSteps` model turns without reaching a final answer. */
export class MaxStepsExceeded extends Schema.TaggedError<MaxStepsExceeded>()("MaxStepsExceeded", fields) {
  readonly code = "E2089" as const
}

/** E2006: a workflow graph is invalid (unknown node, cycle, a reference to a node that cannot have run); `node` names it. Nothing ran. */
export class WorkflowGraphInvalid extends Schema.TaggedError<WorkflowGraphInvalid>()("WorkflowGraphInvalid", {
  ...fields,
  node: Schema.optional(Schema.String)
}) {
  readonly code = "E2006" as const
}
/** E2031: the operation is not accepted in the workflow's current state (e.g. a signal to a node that is not waiting). Nothing changed. */
export class WorkflowTransitionInvalid extends Schema.TaggedError<WorkflowTransitionInvalid>()("WorkflowTransitionInvalid", {
  ...fields,
  workflowId: Schema.optional(Schema.String),
  state: Schema.String,
  operation: Schema.String
}) {
  readonly code = "E2031" as const
}
/** E2032: no workflow with this id is known to the runtime. */
export class WorkflowNotFound extends Schema.TaggedError<WorkflowNotFound>()("WorkflowNotFound", {
  ...fields,
  workflowId: Schema.optional(Schema.String)
}) {
  readonly code = "E2032" as const
}
/** E2033: a workflow node failed after its retries; `node` names it, the message carries its last error. */
export class WorkflowNodeFailed extends Schema.TaggedError<WorkflowNodeFailed>()("WorkflowNodeFailed", {
  ...fields,
  workflowId: Schema.optional(Schema.String),
  node: Schema.optional(Schema.String)
}) {
  readonly code = "E2033" as const
}

/**
 * E2034: the operation could not be delivered to the runner that hosts the agent (its shard is
 * between owners, the runner is unreachable, or the cluster's message storage refused it); nothing
 * was done. Retry: a shard whose owner died moves to a survivor within the lease.
 */
export class ClusterUnavailable extends Schema.TaggedError<ClusterUnavailable>()("ClusterUnavailable", fields) {
  readonly code = "E2034" as const
}

/** E2035: no execute run with this id is in the store (never started, or removed by `execution.stream_retention_*`). */
export class RunNotFound extends Schema.TaggedError<RunNotFound>()("RunNotFound", {
  ...fields,
  runId: Schema.optional(Schema.String)
}) {
  readonly code = "E2035" as const
}
/**
 * E2036: the run's supervisor stopped (shutdown, kill -9) or lost the agent (its shard moved, the agent
 * was terminated) before the step ended; the events recorded before it stay, `lastSeq` says how many.
 */
export class RunInterrupted extends Schema.TaggedError<RunInterrupted>()("RunInterrupted", {
  ...fields,
  runId: Schema.optional(Schema.String),
  lastSeq: Schema.optional(Schema.Number)
}) {
  readonly code = "E2036" as const
}
/** E2037: a client cancelled the run (`runs.cancel`, `l02 cancel`, or a disconnect with cancelOnDisconnect). */
export class RunCancelled extends Schema.TaggedError<RunCancelled>()("RunCancelled", {
  ...fields,
  runId: Schema.optional(Schema.String)
}) {
  readonly code = "E2037" as const
}

/** Any expected failure of the runtime. */
export type RuntimeError =
  | ClusterUnavailable
  | RunNotFound
  | RunInterrupted
  | RunCancelled
  | ConfigInvalid
  | InputInvalid
  | Unauthenticated
  | Forbidden
  | HostReferenceRefused
  | ReferenceUnknown
  | WorkflowGraphInvalid
  | InvalidTransition
  | AgentNotFound
  | SpawnFailed
  | SuspendFailed
  | ResumeFailed
  | RestartLimitExceeded
  | TerminateFailed
  | SandboxExited
  | RuntimeShutDown
  | ExecuteFailed
  | AdmissionRejected
  | WorkflowTransitionInvalid
  | WorkflowNotFound
  | WorkflowNodeFailed
  | SandboxConfigInvalid
  | RuntimeClassUnavailable
  | ResourceLimitsInvalid
  | NetworkPolicyUnsupported
  | SecurityContextViolation
  | SandboxNotFound
  | SandboxOperationFailed
  | BackendUnavailable
  | SandboxOomKilled
  | HeartbeatMissed
  | SandboxProcessLimit
  | StoreFailed
  | CheckpointNotFound
  | CheckpointCorrupt
  | ModelRequestFailed
  | ModelRequestRejected
  | ModelRateLimited
  | ModelResponseInvalid
  | TokenBudgetExceeded
  | ContextWindowExceeded
  | ToolFailed
  | ToolInputInvalid
  | ToolNotAllowed
  | MaxStepsExceeded

/** Errors a sandbox backend may raise. */
export type SandboxError =
  | SandboxConfigInvalid
  | RuntimeClassUnavailable
  | ResourceLimitsInvalid
  | NetworkPolicyUnsupported
  | SecurityContextViolation
  | SandboxNotFound
  | SandboxOperationFailed
  | BackendUnavailable
  | SandboxProcessLimit
  | SpawnFailed

/** True when `u` is one of the runtime's coded errors. */
export const isRuntimeError = (u: unknown): u is RuntimeError => {
  const code: unknown = u instanceof Error ? (u as { code?: unknown }).code : undefined
  return typeof code === "string" && /^E20\d\d$/.test(code)
}

/** The JSON-safe form of an error that machines carry in events and context. */
export const toErrorData = (error: RuntimeError): ErrorData => ({
  code: error.code,
  message: error.message,
  // A code's catalog entry says whether retrying can help, unless the error itself knows better.
  retryable: "retryable" in error && typeof error.retryable === "boolean" ? error.retryable : errorInfo(error.code).retryable
})

const constructors: Record<ErrorCode, (data: { message: string; agentId?: string }) => RuntimeError> = {
  E2000: (d) => new ConfigInvalid(d),
  E2001: (d) => new InputInvalid(d),
  E2002: (d) => new Unauthenticated(d),
  E2003: (d) => new Forbidden(d),
  E2004: (d) => new HostReferenceRefused(d),
  E2005: (d) => new ReferenceUnknown(d),
  E2006: (d) => new WorkflowGraphInvalid(d),
  E2020: (d) => new InvalidTransition({ ...d, state: "unknown", operation: "unknown" }),
  E2021: (d) => new AgentNotFound(d),
  E2022: (d) => new SpawnFailed(d),
  E2023: (d) => new SuspendFailed(d),
  E2024: (d) => new ResumeFailed(d),
  E2025: (d) => new RestartLimitExceeded(d),
  E2026: (d) => new TerminateFailed(d),
  E2027: (d) => new SandboxExited(d),
  E2028: (d) => new RuntimeShutDown(d),
  E2029: (d) => new ExecuteFailed(d),
  E2030: (d) => new AdmissionRejected(d),
  E2031: (d) => new WorkflowTransitionInvalid({ ...d, state: "unknown", operation: "unknown" }),
  E2032: (d) => new WorkflowNotFound(d),
  E2033: (d) => new WorkflowNodeFailed(d),
  E2034: (d) => new ClusterUnavailable(d),
  E2035: (d) => new RunNotFound(d),
  E2036: (d) => new RunInterrupted(d),
  E2037: (d) => new RunCancelled(d),
  E2040: (d) => new SandboxConfigInvalid(d),
  E2041: (d) => new RuntimeClassUnavailable({ ...d, runtimeClass: "unknown" }),
  E2042: (d) => new ResourceLimitsInvalid(d),
  E2043: (d) => new NetworkPolicyUnsupported(d),
  E2044: (d) => new SecurityContextViolation(d),
  E2045: (d) => new SandboxNotFound(d),
  E2046: (d) => new SandboxOperationFailed(d),
  E2047: (d) => new BackendUnavailable(d),
  E2048: (d) => new SandboxOomKilled(d),
  E2049: (d) => new HeartbeatMissed(d),
  E2050: (d) => new SandboxProcessLimit(d),
  E2060: (d) => new StoreFailed(d),
  E2061: (d) => new CheckpointNotFound(d),
  E2062: (d) => new CheckpointCorrupt(d),
  E2080: (d) => new ModelRequestFailed(d),
  E2081: (d) => new ModelRequestRejected(d),
  E2082: (d) => new ModelRateLimited(d),
  E2083: (d) => new ModelResponseInvalid(d),
  E2084: (d) => new TokenBudgetExceeded(d),
  E2085: (d) => new ContextWindowExceeded(d),
  E2086: (d) => new ToolFailed(d),
  E2087: (d) => new ToolInputInvalid(d),
  E2088: (d) => new ToolNotAllowed(d),
  E2089: (d) => new MaxStepsExceeded(d)
}

/** Rebuilds a throwable error from its plain data (e.g. from a machine's context). */
export const fromErrorData = (data: ErrorData, agentId?: string): RuntimeError =>
  constructors[data.code](agentId === undefined ? { message: data.message } : { message: data.message, agentId })

/**
 * Rebuilds a coded error from its code and fields (message, agentId, key and the code's own, such
 * as E2020's state and operation), e.g. one raised on another cluster runner and sent as data.
 */
export const reviveError = (code: ErrorCode, fields: Readonly<Record<string, unknown>>): RuntimeError => {
  const { message, agentId } = fields as { message?: unknown; agentId?: unknown }
  const error = constructors[code](typeof agentId === "string" ? { message: String(message ?? code), agentId } : { message: String(message ?? code) })
  for (const [name, value] of Object.entries(fields)) {
    if (name !== "_tag" && name !== "code" && name !== "stack" && value !== undefined) (error as unknown as Record<string, unknown>)[name] = value
  }
  return error
}
