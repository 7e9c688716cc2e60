/**
 * The runtime's configuration schema: the keys of config/default_config.yaml.
 */
import * as Schema from "effect/Schema"
import { AgentConfig, CpuQuantity, MemoryQuantity } from "./AgentConfig.ts"

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
  scopes: Schema.Array(ApiKeyScope).check(Schema.isMinLength(1))
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
    pglite: Schema.Literals(["file", "memory"])
  }),
  sandbox: Schema.Struct({
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
