/**
 * The runtime's configuration schema: the keys of config/default_config.yaml.
 */
import { Schema } from "effect"
import { CpuQuantity, MemoryQuantity } from "./AgentConfig.ts"

const PositiveInt = Schema.Number.check(Schema.isInt(), Schema.isGreaterThanOrEqualTo(1))
const NonNegativeInt = Schema.Number.check(Schema.isInt(), Schema.isGreaterThanOrEqualTo(0))

/** Which sandbox backend the runtime uses. */
export const BackendName = Schema.Literals(["process", "docker", "kubernetes", "memory"])
/** @see BackendName */
export type BackendName = typeof BackendName.Type

/** The complete, validated configuration. */
export const RuntimeConfig = Schema.Struct({
  runtime: Schema.Struct({
    backend: BackendName,
    runtime_id: Schema.String,
    data_dir: Schema.String.check(Schema.isMinLength(1))
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
    suspend_idle_after_seconds: NonNegativeInt
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
    default_image: Schema.String
  })
})
/** @see RuntimeConfig */
export type RuntimeConfig = typeof RuntimeConfig.Type
