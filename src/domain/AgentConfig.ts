/**
 * What a user asks for when spawning an agent, and the schemas that check it.
 */
import * as Schema from "effect/Schema"
import { parseCpuMillis, parseMemoryBytes } from "./Quantity.ts"

/** How far an agent's code is trusted; decides runtime class, network policy and security context. */
export const TrustLevel = Schema.Literals(["TRUSTED", "STANDARD", "UNTRUSTED", "CONFIDENTIAL"])
/** @see TrustLevel */
export type TrustLevel = typeof TrustLevel.Type

/** Every trust level, most trusted first. */
export const trustLevels: ReadonlyArray<TrustLevel> = ["TRUSTED", "STANDARD", "UNTRUSTED", "CONFIDENTIAL"]

/** A CPU quantity such as "500m" or "2". */
export const CpuQuantity = Schema.String.check(
  Schema.makeFilter((s: string) => parseCpuMillis(s) !== undefined || `a CPU quantity such as "500m" or "2", got ${JSON.stringify(s)}`)
)

/** A memory quantity such as "512Mi" or "2Gi". */
export const MemoryQuantity = Schema.String.check(
  Schema.makeFilter(
    (s: string) => parseMemoryBytes(s) !== undefined || `a memory quantity such as "512Mi" or "2Gi", got ${JSON.stringify(s)}`
  )
)

/** Requested resources; omitted fields take the configured sandbox defaults. */
export const ResourceRequest = Schema.Struct({
  cpu: Schema.optional(CpuQuantity),
  memory: Schema.optional(MemoryQuantity),
  tokensPerHour: Schema.optional(Schema.Number.check(Schema.isInt(), Schema.isGreaterThanOrEqualTo(0))),
  pids: Schema.optional(Schema.Number.check(Schema.isInt(), Schema.isGreaterThanOrEqualTo(1)))
})
/** @see ResourceRequest */
export type ResourceRequest = typeof ResourceRequest.Type

const labelKey = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/
const labelValue = /^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$/

/** Labels in the form Kubernetes accepts, so they can be carried to every backend unchanged. */
export const Labels = Schema.Record(Schema.String, Schema.String).check(
  Schema.makeFilter((labels: Readonly<Record<string, string>>) => {
    for (const [k, v] of Object.entries(labels)) {
      if (!labelKey.test(k) || k.startsWith("l02.dev/")) {
        return `a label key of at most 63 name characters with an optional DNS prefix, not under l02.dev/, got ${JSON.stringify(k)}`
      }
      if (!labelValue.test(v)) return `label ${k}: a value of at most 63 alphanumerics, '-', '_' or '.', got ${JSON.stringify(v)}`
    }
    return true
  })
)

/** An agent name: a DNS-1123 label, so it can name a container or a Pod. */
export const AgentName = Schema.String.check(
  Schema.makeFilter(
    (s: string) =>
      /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(s) ||
      `a lowercase name of 1-63 letters, digits or '-', starting and ending with a letter or digit, got ${JSON.stringify(s)}`
  )
)

const envName = /^[A-Za-z_][A-Za-z0-9_]*$/

/** An agent's own restart policy; omitted fields take lifecycle.* from the configuration. */
export const RestartPolicy = Schema.Struct({
  maxRestarts: Schema.optional(Schema.Number.check(Schema.isInt(), Schema.isGreaterThanOrEqualTo(0))),
  windowSeconds: Schema.optional(Schema.Number.check(Schema.isInt(), Schema.isGreaterThanOrEqualTo(1))),
  backoffInitialMs: Schema.optional(Schema.Number.check(Schema.isInt(), Schema.isGreaterThanOrEqualTo(0))),
  backoffFactor: Schema.optional(Schema.Number.check(Schema.isGreaterThanOrEqualTo(1))),
  backoffMaxMs: Schema.optional(Schema.Number.check(Schema.isInt(), Schema.isGreaterThanOrEqualTo(0))),
  jitter: Schema.optional(Schema.Number.check(Schema.isGreaterThanOrEqualTo(0), Schema.isLessThanOrEqualTo(1)))
})
/** @see RestartPolicy */
export type RestartPolicy = typeof RestartPolicy.Type

/** One scripted model turn (provider `scripted`): text and/or tool calls, for tests and demos. */
export const ScriptedTurnConfig = Schema.Struct({
  text: Schema.optional(Schema.String),
  toolCalls: Schema.optional(Schema.Array(Schema.Struct({ name: Schema.String, arguments: Schema.Unknown }))),
  usage: Schema.optional(Schema.Struct({ inputTokens: Schema.Number, outputTokens: Schema.Number }))
})

/**
 * How an agent reaches one MCP server: a stdio program started **inside the agent's sandbox**
 * (through the backend, as the sandbox user, under its trust level's isolation and network policy),
 * or a streamable HTTP server at a URL. An `http` URL from outside the process must be listed in
 * `execution.allowed_urls`.
 */
export const McpTransport = Schema.Union([
  Schema.Struct({
    type: Schema.Literal("stdio"),
    command: Schema.String.check(Schema.isMinLength(1)),
    args: Schema.optional(Schema.Array(Schema.String)),
    /** The program's environment inside the sandbox (added to the sandbox's own). */
    env: Schema.optional(Schema.Record(Schema.String, Schema.String)),
    /** Working directory inside the sandbox; the workspace when absent. */
    cwd: Schema.optional(Schema.String.check(Schema.isMinLength(1)))
  }),
  Schema.Struct({ type: Schema.Literal("http"), url: Schema.String, headers: Schema.optional(Schema.Record(Schema.String, Schema.String)) })
])

/**
 * An MCP server whose tools an agent's model may call: its own `transport` (a stdio server runs in
 * the agent's sandbox), or `server`, the name of one the operator declared (`execution.mcp_servers`),
 * exactly one.
 */
export const McpServerConfig = Schema.Struct({
  name: Schema.String.check(Schema.isMinLength(1)),
  transport: Schema.optional(McpTransport),
  /** An MCP server declared by the operator in `execution.mcp_servers`. */
  server: Schema.optional(Schema.String.check(Schema.isMinLength(1))),
  /** Only these of the server's tools (names or `prefix*`); all when absent. */
  allowlist: Schema.optional(Schema.Array(Schema.String)),
  /** Expose the tools as `<name>__<tool>`. */
  prefix: Schema.optional(Schema.Boolean),
  timeoutMs: Schema.optional(Schema.Number.check(Schema.isInt(), Schema.isGreaterThanOrEqualTo(1)))
}).check(
  Schema.makeFilter(
    (m: { readonly transport?: unknown; readonly server?: unknown }) =>
      (m.transport === undefined) !== (m.server === undefined) ||
      "an MCP server names exactly one of transport (its own: stdio runs in the sandbox, or an http url) or server (one declared in execution.mcp_servers)"
  )
)
/** @see McpServerConfig */
export type McpServerConfig = typeof McpServerConfig.Type

/**
 * The model an agent runs its loop with. With a model, `execute` runs the runtime's agent loop (model ->
 * tools in the sandbox -> model ...); without, it speaks the JSON-lines protocol to the agent's program.
 */
export const ModelConfig = Schema.Struct({
  /** A model endpoint the operator declared (`execution.models.<name>`): its provider, URL and key. */
  endpoint: Schema.optional(Schema.String.check(Schema.isMinLength(1))),
  /** The provider kind of an explicit endpoint (with `baseUrl`), or `scripted`; not with `endpoint`. */
  provider: Schema.optional(Schema.Literals(["openai-chat", "openai-responses", "anthropic", "scripted"])),
  /** The model id; with `endpoint`, one it allows (its default when omitted). */
  model: Schema.optional(Schema.String.check(Schema.isMinLength(1))),
  /**
   * An explicit API base URL (e.g. https://api.openai.com/v1), for `provider` other than `scripted`.
   * From outside the process (HTTP) only a URL listed in `execution.allowed_urls`.
   */
  baseUrl: Schema.optional(Schema.String),
  /** Embedding code only: the supervisor's environment variable holding the API key. Refused from HTTP. */
  apiKeyEnv: Schema.optional(Schema.String),
  /** Embedding code only: a file on the supervisor's host holding the API key. Refused from HTTP. */
  apiKeyFile: Schema.optional(Schema.String),
  system: Schema.optional(Schema.String),
  maxSteps: Schema.optional(Schema.Number.check(Schema.isInt(), Schema.isGreaterThanOrEqualTo(1), Schema.isLessThanOrEqualTo(100))),
  maxTokens: Schema.optional(Schema.Number.check(Schema.isInt(), Schema.isGreaterThanOrEqualTo(1))),
  contextWindow: Schema.optional(Schema.Number.check(Schema.isInt(), Schema.isGreaterThanOrEqualTo(256))),
  /** Allowed tools by name (shell, read_file, write_file, list_files); all built-in tools when absent. */
  tools: Schema.optional(Schema.Array(Schema.String)),
  /** The turns of a `scripted` model, played in order. */
  script: Schema.optional(Schema.Array(ScriptedTurnConfig)),
  /** MCP servers whose tools the model may call, connected for each execute step. */
  mcp: Schema.optional(Schema.Array(McpServerConfig))
}).check(
  Schema.makeFilter(
    (m: { readonly endpoint?: string | undefined; readonly provider?: string | undefined; readonly model?: string | undefined; readonly baseUrl?: string | undefined; readonly apiKeyEnv?: string | undefined; readonly apiKeyFile?: string | undefined }) => {
      if (m.endpoint !== undefined) {
        const extra = (["provider", "baseUrl", "apiKeyEnv", "apiKeyFile"] as const).find((k) => m[k] !== undefined)
        return extra === undefined || `model.${extra} cannot be given with model.endpoint: the endpoint ${JSON.stringify(m.endpoint)} declares it`
      }
      if (m.provider === undefined) return "a model names endpoint (one declared in execution.models) or provider"
      if (m.model === undefined) return `model.model is required with provider ${m.provider}`
      return true
    }
  )
)
/** @see ModelConfig */
export type ModelConfig = typeof ModelConfig.Type

/** The full request to spawn an agent. */
export const AgentConfig = Schema.Struct({
  name: AgentName,
  /** Container image (Docker, Kubernetes); ignored by the process backend. */
  image: Schema.optional(Schema.String.check(Schema.isMinLength(1))),
  /** The agent's entry point; the backend's default agent program when omitted. */
  command: Schema.optional(Schema.Array(Schema.String).check(Schema.isMinLength(1))),
  env: Schema.optional(
    Schema.Record(Schema.String, Schema.String).check(
      Schema.makeFilter((env: Readonly<Record<string, string>>) => {
        const bad = Object.keys(env).find((k) => !envName.test(k) || k.startsWith("L02_"))
        return bad === undefined || `environment variable names are letters, digits and '_' and not L02_*, got ${JSON.stringify(bad)}`
      })
    )
  ),
  trustLevel: Schema.optional(TrustLevel),
  resources: Schema.optional(ResourceRequest),
  sessionId: Schema.optional(Schema.String.check(Schema.isUUID())),
  labels: Schema.optional(Labels),
  restartPolicy: Schema.optional(RestartPolicy),
  /**
   * Seconds a running agent may go without a `{"type":"heartbeat"}` line before it is restarted (E2049);
   * 0 requires none. Omitted: lifecycle.heartbeat_timeout_seconds.
   */
  heartbeatTimeoutSeconds: Schema.optional(Schema.Number.check(Schema.isInt(), Schema.isGreaterThanOrEqualTo(0), Schema.isLessThanOrEqualTo(86_400))),
  model: Schema.optional(ModelConfig)
})
/** @see AgentConfig */
export type AgentConfig = typeof AgentConfig.Type
