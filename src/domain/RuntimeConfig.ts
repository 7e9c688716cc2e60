/**
 * The runtime's configuration schema: the keys of config/default_config.yaml.
 */
import * as Schema from "effect/Schema"
import { AgentConfig, CpuQuantity, MemoryQuantity, TrustLevel } from "./AgentConfig.ts"
import { parseUidRange } from "./UidRange.ts"

const PositiveInt = Schema.Number.check(Schema.isInt(), Schema.isGreaterThanOrEqualTo(1))
const NonNegativeInt = Schema.Number.check(Schema.isInt(), Schema.isGreaterThanOrEqualTo(0))

/** Which sandbox backend the runtime uses. */
export const BackendName = Schema.Literals(["process", "docker", "kubernetes", "memory"])
/** @see BackendName */
export type BackendName = typeof BackendName.Type

/** What an HTTP API key may do: `read` (GET), `operate` (lifecycle and execute), `admin` (everything). */
export const ApiKeyScope = Schema.Literals(["read", "operate", "admin"])
/** @see ApiKeyScope */
export type ApiKeyScope = typeof ApiKeyScope.Type

/**
 * One API key of the HTTP API. The key itself never appears in configuration: either the name of the
 * environment variable holding it (`key_env`) or its SHA-256 as lowercase hex (`key_sha256`), exactly one.
 */
export const ApiKeyConfig = Schema.Struct({
  key_env: Schema.optional(Schema.String.check(Schema.isPattern(/^[A-Za-z_][A-Za-z0-9_]*$/))),
  key_sha256: Schema.optional(Schema.String.check(Schema.isPattern(/^[0-9a-f]{64}$/))),
  scopes: Schema.Array(ApiKeyScope).check(Schema.isMinLength(1)),
  /**
   * The trust levels this key may spawn. Default: every level but TRUSTED for operate keys (a TRUSTED
   * agent on the process backend is a program on the supervisor's host); every level for admin keys.
   */
  trust_levels: Schema.optional(Schema.Array(TrustLevel).check(Schema.isMinLength(1)))
}).check(
  Schema.makeFilter(
    (k: { readonly key_env?: string | undefined; readonly key_sha256?: string | undefined }) =>
      (k.key_env === undefined) !== (k.key_sha256 === undefined) ||
      "an API key names exactly one of key_env (an environment variable holding the key) or key_sha256 (the key's SHA-256, lowercase hex)"
  )
)
/** @see ApiKeyConfig */
export type ApiKeyConfig = typeof ApiKeyConfig.Type

/** Names of warm pools (and of fleet pools): 1-63 letters, digits, '-', '_' or '.'. */
export const PoolName = Schema.String.check(Schema.isPattern(/^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/))

/**
 * A warm pool: sandboxes made ahead of time from `template` and claimed by spawns whose config equals
 * it (sessionId aside). The pool refills to `size` when fewer than `min` are ready; `size` may be
 * changed at run time within [`min`, `max`]. `paused` keeps ready sandboxes paused (no CPU while they
 * wait; a claim then unpauses) where the backend can pause.
 */
export const WarmPoolConfig = Schema.Struct({
  name: PoolName,
  template: AgentConfig,
  size: NonNegativeInt,
  min: Schema.optional(NonNegativeInt),
  max: Schema.optional(NonNegativeInt),
  paused: Schema.optional(Schema.Boolean),
  /** Of a paused pool's ready sandboxes, how many are kept running so a claim skips the unpause (default 1). */
  thawed: Schema.optional(NonNegativeInt)
}).check(
  Schema.makeFilter(
    (p: { readonly size: number; readonly min?: number | undefined; readonly max?: number | undefined }) =>
      ((p.min ?? p.size) <= p.size && p.size <= (p.max ?? p.size)) || `a warm pool needs min <= size <= max, got min ${p.min ?? p.size}, size ${p.size}, max ${p.max ?? p.size}`
  )
)
/** @see WarmPoolConfig */
export type WarmPoolConfig = typeof WarmPoolConfig.Type

/** Names of operator-declared resources (secrets, model endpoints, MCP servers): 1-63 letters, digits, '-', '_' or '.'. */
export const ResourceName = Schema.String.check(Schema.isPattern(/^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/))

const HttpUrl = Schema.String.check(
  Schema.makeFilter((s: string) => {
    try {
      const url = new URL(s)
      return (url.protocol === "http:" || url.protocol === "https:") && url.username === "" && url.password === "" ||
        `an http(s) URL without credentials, got ${JSON.stringify(s)}`
    } catch {
      return `an http(s) URL, got ${JSON.stringify(s)}`
    }
  })
)

/**
 * Where a secret of the operator's comes from: an environment variable of the supervisor (`env`) or a
 * file (`file`, e.g. a mounted Kubernetes or Docker secret), exactly one. Read when it is used; its value
 * never appears in records, events, checkpoints, traces, logs, errors or API answers.
 */
export const SecretSource = Schema.Struct({
  env: Schema.optional(Schema.String.check(Schema.isPattern(/^[A-Za-z_][A-Za-z0-9_]*$/))),
  file: Schema.optional(Schema.String.check(Schema.isMinLength(1)))
}).check(
  Schema.makeFilter(
    (s: { readonly env?: string | undefined; readonly file?: string | undefined }) =>
      (s.env === undefined) !== (s.file === undefined) || "a secret names exactly one of env (a variable of the supervisor) or file (a path on its host)"
  )
)
/** @see SecretSource */
export type SecretSource = typeof SecretSource.Type

/**
 * A model endpoint the operator declares (`execution.models.<name>`): agent configs name it as
 * `model.endpoint` and never see its URL or key.
 */
export const ModelEndpointConfig = Schema.Struct({
  provider: Schema.Literals(["openai-chat", "openai-responses", "anthropic"]),
  base_url: HttpUrl,
  /** The model id used when an agent config names none. */
  model: Schema.optional(Schema.String.check(Schema.isMinLength(1))),
  /** The model ids an agent config may choose; any when absent. */
  models: Schema.optional(Schema.Array(Schema.String.check(Schema.isMinLength(1)))),
  /** The secret (`secrets.<name>`) holding the API key; none for local servers that need no key. */
  api_key_secret: Schema.optional(ResourceName),
  /** Extra request headers (not secret, e.g. an organisation id). */
  headers: Schema.optional(Schema.Record(Schema.String, Schema.String)),
  /** Time until the answer's headers arrive, per attempt (default 60000). */
  timeout_ms: Schema.optional(PositiveInt)
})
/** @see ModelEndpointConfig */
export type ModelEndpointConfig = typeof ModelEndpointConfig.Type

/**
 * An MCP server on the supervisor's side that the operator declares (`execution.mcp_servers.<name>`):
 * a program started on the host (`command`) or a streamable HTTP server (`url`), exactly one. Agent
 * configs name it as `{ name, server: "<name>" }`.
 */
export const HostMcpServerConfig = Schema.Struct({
  command: Schema.optional(Schema.Array(Schema.String.check(Schema.isMinLength(1))).check(Schema.isMinLength(1))),
  cwd: Schema.optional(Schema.String.check(Schema.isMinLength(1))),
  env: Schema.optional(Schema.Record(Schema.String, Schema.String)),
  /** Environment variables of the program taken from secrets: variable -> secret name. */
  env_secrets: Schema.optional(Schema.Record(Schema.String, ResourceName)),
  url: Schema.optional(HttpUrl),
  headers: Schema.optional(Schema.Record(Schema.String, Schema.String)),
  /** A secret sent as `Authorization: Bearer <value>` to the `url`. */
  bearer_secret: Schema.optional(ResourceName)
}).check(
  Schema.makeFilter(
    (m: { readonly command?: unknown; readonly url?: unknown }) =>
      (m.command === undefined) !== (m.url === undefined) || "an MCP server names exactly one of command (a program on the supervisor's host) or url"
  )
)
/** @see HostMcpServerConfig */
export type HostMcpServerConfig = typeof HostMcpServerConfig.Type

/** A uid range such as "800000-899999", or "" for none. */
const UidRangeText = Schema.String.check(
  Schema.makeFilter((text: string) => {
    try {
      parseUidRange(text)
      return true
    } catch (error) {
      return (error as Error).message
    }
  })
)

/** The complete, validated configuration. */
export const RuntimeConfig = Schema.Struct({
  runtime: Schema.Struct({
    backend: BackendName,
    runtime_id: Schema.String,
    data_dir: Schema.String.check(Schema.isMinLength(1)),
    hibernate_idle_after_seconds: NonNegativeInt,
    /** After lifecycle activity, seconds of quiet before one memory-reducing collection; 0 = never. */
    reduce_memory_after_idle_seconds: NonNegativeInt
  }),
  store: Schema.Struct({
    url: Schema.String,
    pglite: Schema.Literals(["file", "memory"]),
    /** The embedded engine when there is no url: auto (SQLite, or PGlite where a PGlite database already is), sqlite, pglite. */
    embedded: Schema.Literals(["auto", "sqlite", "pglite"])
  }),
  sandbox: Schema.Struct({
    /** The trust level of an agent config that names none (the specification's strict default: STANDARD). */
    default_trust_level: TrustLevel,
    default_runtime_class: Schema.String.check(Schema.isMinLength(1)),
    default_cpu: CpuQuantity,
    default_memory: MemoryQuantity,
    default_tokens_per_hour: NonNegativeInt,
    default_pids: PositiveInt,
    max_cpu: CpuQuantity,
    max_memory: MemoryQuantity,
    available_runtimes: Schema.Array(Schema.String),
    trust_runtime_classes: Schema.Struct({
      TRUSTED: Schema.String,
      STANDARD: Schema.String,
      UNTRUSTED: Schema.String,
      CONFIDENTIAL: Schema.String
    })
  }),
  lifecycle: Schema.Struct({
    spawn_timeout_seconds: PositiveInt,
    graceful_shutdown_seconds: NonNegativeInt,
    max_restart_count: NonNegativeInt,
    restart_window_seconds: PositiveInt,
    restart_backoff_initial_ms: NonNegativeInt,
    restart_backoff_factor: Schema.Number.check(Schema.isGreaterThanOrEqualTo(1)),
    restart_backoff_max_ms: NonNegativeInt,
    enable_suspend: Schema.Boolean,
    suspend_idle_after_seconds: NonNegativeInt,
    max_concurrent_spawns: PositiveInt,
    spawn_queue_limit: NonNegativeInt,
    checkpoint_ttl_seconds: NonNegativeInt,
    health_check_interval_seconds: NonNegativeInt,
    heartbeat_timeout_seconds: NonNegativeInt
  }),
  process: Schema.Struct({
    /** Each process sandbox's own uid comes from this range when the host is root; "" = all share runAsUser. */
    uid_range: UidRangeText,
    /** Host-wide directory of uid claims, shared by every runtime on the host. */
    uid_claims_dir: Schema.String.check(Schema.isMinLength(1))
  }),
  docker: Schema.Struct({
    socket_path: Schema.String,
    default_image: Schema.String,
    runtimes: Schema.Record(Schema.String, Schema.String),
    network_fallback: Schema.Literals(["stricter", "fail"])
  }),
  kubernetes: Schema.Struct({
    namespace: Schema.String,
    kubeconfig: Schema.String,
    context: Schema.String,
    default_image: Schema.String,
    /** Runtime class -> RuntimeClass name on the cluster; "" runs on the default handler. */
    runtime_classes: Schema.Record(Schema.String, Schema.String),
    /** CIDRs the restricted network policy may reach besides DNS. */
    egress_allow_cidrs: Schema.Array(Schema.String),
    /** Labels of the cluster's DNS Pods: a restricted agent's DNS goes to them only. */
    dns_pod_labels: Schema.Record(Schema.String, Schema.String),
    workspace: Schema.Struct({
      volume: Schema.Literals(["emptyDir", "persistentVolumeClaim"]),
      size: Schema.String,
      storage_class: Schema.String,
      retain_on_remove: Schema.Boolean
    }),
    termination_grace_seconds: Schema.Number.check(Schema.isInt(), Schema.isBetween({ minimum: 0, maximum: 3600 })),
    image_pull_policy: Schema.Literals(["Always", "IfNotPresent", "Never"]),
    service_account: Schema.String
  }),
  pools: Schema.Struct({
    warm: Schema.Array(WarmPoolConfig)
  }),
  /** The operator's secrets, by name (docs/security.md). */
  secrets: Schema.Record(ResourceName, SecretSource),
  execution: Schema.Struct({
    /** Model endpoints agent configs may name (`model.endpoint`). */
    models: Schema.Record(ResourceName, ModelEndpointConfig),
    /** MCP servers on the supervisor's side agent configs may name (`mcp[].server`). */
    mcp_servers: Schema.Record(ResourceName, HostMcpServerConfig),
    /**
     * URLs an agent config from outside the process (HTTP) may name as `model.baseUrl` or an MCP server's
     * `url`: a URL matches an entry with the same scheme, host and port whose path is a prefix of its own.
     */
    allowed_urls: Schema.Array(HttpUrl),
    /** How long an ended execute run and its events are kept (docs/execution.md, "Runs"). */
    stream_retention_seconds: PositiveInt,
    /** How many ended runs of one agent are kept (the newest). */
    stream_retention_runs: PositiveInt,
    /** How much output one run may record (characters of its events' lines and texts); beyond it the step fails with E2029. */
    stream_max_bytes: PositiveInt
  }),
  workflows: Schema.Struct({
    /** How many agent steps of one run may run at once; the others of a wide fan-out wait their turn. */
    max_parallel_steps: PositiveInt
  }),
  cluster: Schema.Struct({
    /**
     * Several supervisors share one fleet on Effect Cluster (docs/cluster.md): each is a runner, every
     * agent hosted by the owner of its shard. Needs PostgreSQL (`store.url`). Off: one runner in process.
     */
    enabled: Schema.Boolean,
    /** The fleet's name: supervisors of one store with the same name share its agents. */
    name: Schema.String.check(Schema.isPattern(/^[a-z0-9][a-z0-9-]{0,40}$/)),
    /** The host other runners reach this runner at (its address in the runner storage). */
    runner_host: Schema.String.check(Schema.isMinLength(1)),
    /** The port of the runner-to-runner transport (TCP sockets). */
    runner_port: Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 65535 })),
    /** The address to listen on; empty: `runner_host`. */
    listen_host: Schema.String,
    /** Shards of the agents' group; every runner of a fleet must agree on it. */
    shards: PositiveInt,
    /** Seconds a runner's shard lease lasts without a refresh: after that its shards move to the others. */
    lease_seconds: PositiveInt,
    /** Seconds between lease refreshes; below `lease_seconds`. */
    lease_refresh_seconds: PositiveInt,
    /** How runners tell that another is gone: `ping` over the transport, or `k8s` (its Pod, by the API). */
    health: Schema.Literals(["ping", "k8s"]),
    /** With `health: k8s`: the namespace and label selector of the supervisors' Pods. */
    k8s_namespace: Schema.String,
    k8s_label_selector: Schema.String
  }),
  telemetry: Schema.Struct({
    /** OpenTelemetry traces of lifecycle operations; `none` (the default) exports nothing. */
    traces: Schema.Struct({
      exporter: Schema.Literals(["none", "otlp"]),
      /** OTLP/HTTP traces endpoint (JSON), e.g. http://127.0.0.1:4318/v1/traces. */
      endpoint: Schema.String.check(Schema.isPattern(/^https?:\/\/[^\s]+$/)),
      service_name: Schema.String.check(Schema.isMinLength(1)),
      /** Extra request headers (e.g. an API key for a hosted collector); never logged. */
      headers: Schema.Record(Schema.String, Schema.String),
      export_interval_ms: PositiveInt
    })
  }),
  http: Schema.Struct({
    host: Schema.String.check(Schema.isMinLength(1)),
    port: Schema.Number.check(Schema.isInt(), Schema.isBetween({ minimum: 0, maximum: 65535 })),
    api_keys: Schema.Array(ApiKeyConfig),
    max_body_bytes: PositiveInt
  })
})
/** @see RuntimeConfig */
export type RuntimeConfig = typeof RuntimeConfig.Type
