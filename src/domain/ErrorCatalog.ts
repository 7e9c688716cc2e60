/**
 * The stable error codes of L02 Agent Runtime and what supervisors do with them.
 *
 * A code, once published in docs/errors.md, keeps its meaning forever. Supervisors decide by
 * code (through {@link errorInfo}), never by message text.
 */

/** Broad class of a failure, used for metrics and for deciding who must act. */
export type ErrorCategory = "configuration" | "lifecycle" | "sandbox" | "execution" | "store" | "backend" | "interface"

/** What the catalog knows about one code. */
export interface ErrorInfo {
  readonly code: ErrorCode
  readonly tag: string
  readonly category: ErrorCategory
  /** Whether repeating the same operation later may succeed without the caller changing anything. */
  readonly retryable: boolean
  readonly title: string
}

const entries = [
  ["E2000", "ConfigInvalid", "configuration", false, "configuration invalid"],
  ["E2001", "InputInvalid", "interface", false, "request input invalid"],
  ["E2002", "Unauthenticated", "interface", false, "no valid API key"],
  ["E2003", "Forbidden", "interface", false, "API key lacks the scope the operation needs"],
  ["E2004", "HostReferenceRefused", "interface", false, "a config from outside the process names a host resource directly"],
  ["E2005", "ReferenceUnknown", "configuration", false, "a config names an operator resource that is not declared"],
  ["E2006", "WorkflowGraphInvalid", "configuration", false, "workflow graph invalid"],
  ["E2020", "InvalidTransition", "lifecycle", false, "operation not allowed in the agent's current state"],
  ["E2021", "AgentNotFound", "lifecycle", false, "agent not found"],
  ["E2022", "SpawnFailed", "lifecycle", true, "spawn failed"],
  ["E2023", "SuspendFailed", "lifecycle", true, "suspend or checkpoint failed"],
  ["E2024", "ResumeFailed", "lifecycle", false, "resume failed"],
  ["E2025", "RestartLimitExceeded", "lifecycle", false, "restart limit exceeded"],
  ["E2026", "TerminateFailed", "lifecycle", true, "terminate failed"],
  ["E2027", "SandboxExited", "lifecycle", true, "sandbox exited unexpectedly"],
  ["E2028", "RuntimeShutDown", "lifecycle", false, "runtime is shut down"],
  ["E2029", "ExecuteFailed", "execution", true, "execute failed"],
  ["E2030", "AdmissionRejected", "lifecycle", true, "spawn queue full"],
  ["E2031", "WorkflowTransitionInvalid", "lifecycle", false, "operation not allowed in the workflow's current state"],
  ["E2032", "WorkflowNotFound", "lifecycle", false, "workflow not found"],
  ["E2033", "WorkflowNodeFailed", "execution", false, "a workflow node failed after its retries"],
  ["E2034", "ClusterUnavailable", "lifecycle", true, "the agent's owner in the cluster could not be reached"],
  ["E2035", "RunNotFound", "execution", false, "execute run not found"],
  ["E2036", "RunInterrupted", "execution", true, "execute run interrupted: its supervisor stopped or lost the agent before the step ended"],
  ["E2037", "RunCancelled", "execution", false, "execute run cancelled"],
  ["E2040", "SandboxConfigInvalid", "sandbox", false, "sandbox configuration invalid"],
  ["E2041", "RuntimeClassUnavailable", "sandbox", false, "runtime class not available on this backend"],
  ["E2042", "ResourceLimitsInvalid", "sandbox", false, "resource limits invalid or above the allowed maximum"],
  ["E2043", "NetworkPolicyUnsupported", "sandbox", false, "network policy not supported by this backend"],
  ["E2044", "SecurityContextViolation", "sandbox", false, "security context violation"],
  ["E2045", "SandboxNotFound", "sandbox", false, "sandbox not found"],
  ["E2046", "SandboxOperationFailed", "backend", true, "sandbox operation failed"],
  ["E2047", "BackendUnavailable", "backend", true, "backend unavailable"],
  ["E2048", "SandboxOomKilled", "sandbox", true, "sandbox killed for exceeding its memory limit"],
  ["E2049", "HeartbeatMissed", "sandbox", true, "the agent sent no heartbeat within its heartbeat timeout"],
  ["E2050", "SandboxProcessLimit", "sandbox", true, "the sandbox could not start a process: it reached its process limit"],
  ["E2060", "StoreFailed", "store", true, "state store operation failed"],
  ["E2061", "CheckpointNotFound", "store", false, "checkpoint not found"],
  ["E2062", "CheckpointCorrupt", "store", false, "checkpoint corrupt or expired"],
  ["E2080", "ModelRequestFailed", "execution", true, "model request failed (server error, timeout, network)"],
  ["E2081", "ModelRequestRejected", "execution", false, "model request rejected (key, model or request invalid)"],
  ["E2082", "ModelRateLimited", "execution", true, "model provider rate limit reached"],
  ["E2083", "ModelResponseInvalid", "execution", true, "model response malformed"],
  ["E2084", "TokenBudgetExceeded", "execution", true, "agent's hourly token budget exhausted"],
  ["E2085", "ContextWindowExceeded", "execution", false, "conversation does not fit the model's context window"],
  ["E2086", "ToolFailed", "execution", true, "tool failed or timed out"],
  ["E2087", "ToolInputInvalid", "execution", false, "tool input invalid"],
  ["E2088", "ToolNotAllowed", "execution", false, "tool unknown or not allowed for this agent"],
  ["E2089", "MaxStepsExceeded", "execution", false, "agent loop reached its step limit without a final answer"]
] as const

/** Every code the runtime can raise. */
export type ErrorCode = (typeof entries)[number][0]

/** The full catalog, keyed by code. */
export const errorCatalog: ReadonlyMap<ErrorCode, ErrorInfo> = new Map(
  entries.map(([code, tag, category, retryable, title]) => [code, { code, tag, category, retryable, title }])
)

/** Looks up a code; unknown codes are a programming error. */
export const errorInfo = (code: ErrorCode): ErrorInfo => {
  const info = errorCatalog.get(code)
  if (info === undefined) throw new Error(`unknown error code ${code}`)
  return info
}

/** Plain, JSON-safe form of an error, the only shape machines and snapshots carry. */
export interface ErrorData {
  readonly code: ErrorCode
  readonly message: string
  readonly retryable: boolean
}
