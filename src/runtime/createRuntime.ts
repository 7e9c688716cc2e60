/**
 * The promise API for embedding the runtime in a Node process.
 *
 * Host etiquette: no process.exit, no signal handlers, no unhandled rejections; two runtimes in one
 * process share nothing. Errors are the coded Error subclasses of src/domain/Errors.ts.
 */
import { createHash, randomUUID } from "node:crypto"
import { hostname } from "node:os"
import { resolve } from "node:path"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Stream from "effect/Stream"
import type { Actor, InspectionEvent } from "xstate"
import type { agentMachine } from "../../machines/agentMachine.ts"
import type { AgentInstance, SpawnResult } from "../domain/AgentInstance.ts"
import type { AgentState } from "../domain/AgentState.ts"
import type { Checkpoint } from "../domain/Checkpoint.ts"
import type { FleetStatus } from "../domain/FleetStatus.ts"
import type { HealthStatus } from "../domain/HealthStatus.ts"
import type { PoolStatus } from "../domain/PoolStatus.ts"
import type { LifecycleEvent } from "../domain/LifecycleEvent.ts"
import type { BackendName, RuntimeConfig } from "../domain/RuntimeConfig.ts"
import type { CheckpointStore } from "../services/CheckpointStore.ts"
import * as SecretStore from "../services/SecretStore.ts"
import type { EventLog, EventQuery } from "../services/EventLog.ts"
import type { SandboxBackend } from "../services/SandboxBackend.ts"
import type { AgentFilter, FleetOperation, StateStore } from "../services/StateStore.ts"
import * as AgentRuntime from "./AgentRuntime.ts"
import { type ConfigOverrides, loadConfigSync } from "./loadConfig.ts"
import { startTracing } from "./internal/tracing.ts"
import { defaultCommandFor, liveLayer, workflowServicesInMemory } from "./liveLayer.ts"
import type { WorkflowRun, WorkflowSummary } from "../domain/WorkflowRun.ts"
import type { WorkflowFilter } from "../services/WorkflowStore.ts"
import * as Workflows from "../workflows/Workflows.ts"
import type { StartOptions, WorkflowsShape } from "../workflows/Workflows.ts"
import type { workflowMachine } from "../../machines/workflowMachine.ts"
import type { SpawnPolicy } from "./SpawnPolicy.ts"
import type { ExecutionRun, RunEvent } from "../domain/ExecutionRun.ts"
import type { RunQuery } from "../services/RunLog.ts"
import type { AttachOptions } from "./AgentRuntimeApi.ts"

/** Options of {@link createRuntime}. */
export interface RuntimeOptions {
  /** Backend to use; overrides runtime.backend. */
  readonly backend?: BackendName | undefined
  /** A YAML file with configuration overrides. */
  readonly configFile?: string | undefined
  /** Configuration overrides as data, e.g. `{ lifecycle: { max_restart_count: 3 } }`. */
  readonly config?: ConfigOverrides | undefined
  /** Environment to read `L02_<SECTION>__<KEY>` overrides from; default `process.env`. */
  readonly env?: Readonly<Record<string, string | undefined>> | undefined
  /** Data directory; overrides runtime.data_dir. */
  readonly dataDir?: string | undefined
  /** An XState inspection observer, e.g. `createBrowserInspector().inspect` or `createSkyInspector().inspect`. */
  readonly inspect?: ((event: InspectionEvent) => void) | undefined
  /** Replace the services (backend and stores) entirely, e.g. with in-memory layers in tests. */
  readonly layer?: Layer.Layer<SandboxBackend | StateStore | CheckpointStore | EventLog, unknown> | undefined
  /** Advanced: XState clock, wall clock and random source (for simulated time in tests). */
  readonly clock?: AgentRuntime.AgentRuntimeOptions["clock"]
  readonly now?: (() => number) | undefined
  readonly random?: (() => number) | undefined
  /** Fill the warm pools (default true); a short-lived runtime passes false (see AgentRuntimeOptions). */
  readonly fillWarmPools?: boolean | undefined
  /** Advanced: what gives memory back once the runtime is quiet (see AgentRuntimeOptions.reduceMemory). */
  readonly reduceMemory?: (() => void) | undefined
  /**
   * The store of the operator's secrets; default: the configuration's `secrets` (variables read from
   * `env`, files when used). An embedder with its own vault passes e.g. `SecretStore.layerMemory(values)`.
   */
  readonly secrets?: Layer.Layer<SecretStore.SecretStore> | undefined
}

/** A running L02 runtime, as returned by {@link createRuntime}. */
export interface L02Runtime {
  readonly runtimeId: string
  readonly config: RuntimeConfig
  /**
   * Spawns an agent and resolves once it runs (E2022 when it cannot). A config that came from outside
   * this process (a request, a file a user uploaded) is passed with `{ origin: "remote" }`: it may then
   * name only what the operator declared (E2004 otherwise), as over the HTTP API.
   */
  readonly spawn: (config: unknown, initialContext?: unknown, policy?: SpawnPolicy) => Promise<SpawnResult>
  /** Terminates an agent: gracefully for graceful_shutdown_seconds, then forced. */
  readonly terminate: (agentId: string, options?: AgentRuntime.TerminateOptions) => Promise<void>
  /** Suspends a running agent; resolves to the checkpoint id when `checkpoint: true`. */
  readonly suspend: (agentId: string, options?: AgentRuntime.SuspendOptions) => Promise<string | undefined>
  /** Resumes a suspended agent, from its pause or from a checkpoint. */
  readonly resume: (agentId: string, checkpointId?: string) => Promise<AgentState>
  readonly getState: (agentId: string) => Promise<AgentInstance>
  readonly list: (filter?: AgentFilter) => Promise<ReadonlyArray<AgentInstance>>
  /**
   * Sends input to the agent and streams its answer until its `done` line. The step is a durable run
   * (`done.executionId` is its id): a caller that stops reading leaves it running unless it passed
   * `cancelOnDisconnect`; `runs.attach` reads the rest.
   */
  readonly execute: (agentId: string, input: unknown, options?: AgentRuntime.ExecuteOptions) => AsyncIterable<AgentRuntime.ExecuteEvent>
  /**
   * Durable execute runs (docs/execution.md, "Runs"): `start` a step detached (resolves with its run
   * once the agent accepted it), `attach` from a sequence number (the missed events, the live ones,
   * then `end`), `get`, `list` (newest first), `cancel`.
   */
  readonly runs: {
    readonly start: (agentId: string, input: unknown, options?: AgentRuntime.ExecuteOptions) => Promise<ExecutionRun>
    readonly attach: (runId: string, options?: AttachOptions) => AsyncIterable<RunEvent>
    readonly get: (runId: string) => Promise<ExecutionRun>
    readonly list: (query?: RunQuery) => Promise<ReadonlyArray<ExecutionRun>>
    readonly cancel: (runId: string) => Promise<ExecutionRun>
  }
  /** Lifecycle events from now on, as an async iterable. */
  readonly events: () => AsyncIterable<LifecycleEvent>
  /** Lifecycle events already recorded, oldest first (after an id, of one agent, the first or newest `limit`). */
  readonly history: (query: EventQuery) => Promise<ReadonlyArray<LifecycleEvent>>
  readonly fleetStatus: () => Promise<FleetStatus>
  /** Scales a pool of agents (label `pool.l02.dev/name`) to `replicas`; recorded as a fleet operation. */
  readonly scale: (pool: string, replicas: number, options?: AgentRuntime.ScaleOptions) => Promise<FleetOperation>
  /** Terminates every agent of a pool (scale to 0). */
  readonly drain: (pool: string, reason?: string) => Promise<FleetOperation>
  /** Fleet operations, newest first. */
  readonly fleetOperations: (limit?: number) => Promise<ReadonlyArray<FleetOperation>>
  /** An agent's checkpoints, oldest first. */
  readonly checkpoints: (agentId: string) => Promise<ReadonlyArray<Checkpoint>>
  /** Liveness and readiness of an agent. */
  readonly health: (agentId: string) => Promise<HealthStatus>
  /** The warm pools (config `pools.warm`): bounds, ready and in-flight sandboxes, claims and misses. */
  readonly pools: () => Promise<ReadonlyArray<PoolStatus>>
  /** Sets a warm pool's size within its [min, max]; E2001 outside them or for an unknown pool. */
  readonly resizePool: (name: string, size: number) => Promise<PoolStatus>
  /** The live XState actor of an agent (for inspection), if it is live. */
  readonly actorOf: (agentId: string) => Actor<typeof agentMachine> | undefined
  /**
   * Multi-agent workflows (docs/workflows.md): `start` a WorkflowGraph (YAML/JSON parsed to data)
   * with an input, follow and `wait` for the run, `signal` an approval node, `cancel` a run. Runs are
   * durable: after a crash the next runtime on the same store resumes them.
   */
  readonly workflows: {
    readonly start: (graph: unknown, input?: unknown, options?: StartOptions) => Promise<WorkflowRun>
    readonly get: (workflowId: string) => Promise<WorkflowRun>
    readonly list: (filter?: WorkflowFilter) => Promise<ReadonlyArray<WorkflowSummary>>
    readonly signal: (workflowId: string, node: string, value?: unknown) => Promise<WorkflowRun>
    readonly cancel: (workflowId: string, reason?: string) => Promise<WorkflowRun>
    readonly events: (workflowId: string) => AsyncIterable<LifecycleEvent>
    readonly wait: (workflowId: string) => Promise<WorkflowRun>
    readonly actorOf: (workflowId: string) => Actor<typeof workflowMachine> | undefined
  }
  /** Stops every actor and closes the store. Agents' sandboxes keep running and are re-adopted next start. */
  readonly shutdown: () => Promise<void>
}

const runtimeIdFor = (config: RuntimeConfig): string => {
  if (config.runtime.runtime_id !== "") return config.runtime.runtime_id
  // Every runner of a fleet shares its agents, their records and their sandboxes' labels.
  if (config.cluster.enabled) return `cluster-${config.cluster.name}`
  if (config.store.url === "" && config.store.pglite === "memory") return `rt-${randomUUID().slice(0, 12)}`
  const key = `${hostname()}:${config.runtime.backend}:${resolve(config.runtime.data_dir)}:${config.store.url}`
  return `rt-${createHash("sha256").update(key).digest("hex").slice(0, 12)}`
}

/**
 * Creates a runtime: loads configuration, opens the store (running migrations), connects the backend,
 * reloads agents persisted by an earlier run, and starts supervising.
 *
 * @example
 * ```ts
 * import { createRuntime } from "l02-agent-runtime"
 * const runtime = await createRuntime({ dataDir: "./.l02" })
 * const { agentId } = await runtime.spawn({ name: "hello", trustLevel: "TRUSTED" })
 * for await (const event of runtime.execute(agentId, "hi")) console.log(event)
 * await runtime.terminate(agentId)
 * await runtime.shutdown()
 * ```
 */
export const createRuntime = async (options: RuntimeOptions = {}): Promise<L02Runtime> => {
  const config = loadConfigSync({
    file: options.configFile,
    overrides: {
      ...options.config,
      runtime: {
        ...options.config?.runtime,
        ...(options.backend === undefined ? {} : { backend: options.backend }),
        ...(options.dataDir === undefined ? {} : { data_dir: options.dataDir })
      }
    },
    env: options.env ?? process.env
  })
  const runtimeId = runtimeIdFor(config)
  // Workflow runs go to the store's own SQL database; with services of the embedder's, to memory.
  const services = options.layer === undefined ? liveLayer(config, runtimeId) : Layer.merge(options.layer, workflowServicesInMemory)
  const tracing = await startTracing(config.telemetry.traces, runtimeId)
  const layer = AgentRuntime.layer(config, {
    runtimeId,
    tracer: tracing.tracer,
    backendName: options.layer === undefined ? config.runtime.backend : "custom",
    inspect: options.inspect,
    clock: options.clock,
    now: options.now,
    random: options.random,
    // A cluster runner's spawns are routed to each agent's owner and claim no warm sandbox: it fills no pool.
    fillWarmPools: config.cluster.enabled ? false : options.fillWarmPools,
    reduceMemory: options.reduceMemory,
    defaultCommand: options.layer === undefined ? defaultCommandFor(config) : undefined,
    hosting: config.cluster.enabled ? "cluster" : "local"
  })
  // Secrets are read from the environment the configuration was read from (or the embedder's own store).
  const secrets = options.secrets ?? SecretStore.layerConfig(config.secrets, options.env ?? process.env)
  const portsLayer = Layer.merge(services, secrets)
  const localLayer = Layer.provideMerge(layer, portsLayer)
  // A cluster runner's callers reach every agent of the fleet through the routed runtime (docs/cluster.md).
  const runtimeLayer = config.cluster.enabled
    ? Layer.merge(Layer.provide(Layer.unwrap(Effect.promise(async () => (await import("../cluster/clusterRuntime.ts")).layer(config))), localLayer), portsLayer)
    : localLayer
  const runnerAddress = `${config.cluster.runner_host}:${config.cluster.runner_port}`
  const managed = ManagedRuntime.make(
    Layer.provideMerge(
      Workflows.layer({
        runnerName: runtimeId,
        inspect: options.inspect,
        hibernateAfterSeconds: config.runtime.hibernate_idle_after_seconds,
        tracer: tracing.tracer,
        maxParallelSteps: config.workflows.max_parallel_steps,
        engineTablePrefix: config.cluster.enabled ? `l02_wf_${createHash("sha256").update(runnerAddress).digest("hex").slice(0, 12)}` : undefined,
        runnerAddress: config.cluster.enabled ? runnerAddress : undefined
      }),
      runtimeLayer
    )
  )
  let core: AgentRuntime.AgentRuntimeShape
  let workflows: WorkflowsShape
  try {
    ;[core, workflows] = await managed.runPromise(Effect.all([AgentRuntime.AgentRuntime, Workflows.Workflows]))
  } catch (error) {
    await managed.dispose()
    await tracing.close()
    throw error
  }
  // The core's effects need no services (they closed over them), so they run without the managed runtime.
  const run = <A>(effect: Effect.Effect<A, unknown>) => Effect.runPromise(effect)
  let disposed: Promise<void> | undefined
  return {
    runtimeId,
    config,
    spawn: (agentConfig, initialContext, policy) => run(core.spawn(agentConfig, initialContext, policy)),
    terminate: (agentId, opts) => run(core.terminate(agentId, opts)),
    suspend: (agentId, opts) => run(core.suspend(agentId, opts)),
    resume: (agentId, checkpointId) => run(core.resume(agentId, checkpointId)),
    getState: (agentId) => run(core.getState(agentId)),
    list: (filter) => run(core.list(filter)),
    execute: (agentId, input, opts) => Stream.toAsyncIterable(core.execute(agentId, input, opts)),
    runs: {
      start: (agentId, input, opts) => run(core.runs.start(agentId, input, opts)),
      attach: (runId, opts) => Stream.toAsyncIterable(core.runs.attach(runId, opts)),
      get: (runId) => run(core.runs.get(runId)),
      list: (query) => run(core.runs.list(query)),
      cancel: (runId) => run(core.runs.cancel(runId))
    },
    events: () => Stream.toAsyncIterable(core.events),
    history: (query) => run(core.history(query)),
    fleetStatus: () => run(core.fleetStatus),
    health: (agentId) => run(core.health(agentId)),
    pools: () => run(core.pools),
    resizePool: (name, size) => run(core.resizePool(name, size)),
    scale: (pool, replicas, opts) => run(core.scale(pool, replicas, opts)),
    drain: (pool, reason) => run(core.scale(pool, 0, { reason: reason ?? `drain pool ${pool}` })),
    fleetOperations: (limit) => run(core.fleetOperations(limit)),
    checkpoints: (agentId) => run(core.checkpoints(agentId)),
    actorOf: (agentId) => {
      const found = core.actorOf(agentId)
      return found._tag === "Some" ? found.value : undefined
    },
    workflows: {
      start: (graph, input, opts) => run(workflows.start(graph, input, opts)),
      get: (workflowId) => run(workflows.get(workflowId)),
      list: (filter) => run(workflows.list(filter)),
      signal: (workflowId, node, value) => run(workflows.signal(workflowId, node, value)),
      cancel: (workflowId, reason) => run(workflows.cancel(workflowId, reason)),
      events: (workflowId) => Stream.toAsyncIterable(workflows.events(workflowId)),
      wait: (workflowId) => run(workflows.wait(workflowId)),
      actorOf: (workflowId) => {
        const found = workflows.actorOf(workflowId)
        return found._tag === "Some" ? found.value : undefined
      }
    },
    // The last spans (the shutdown's own operations included) are exported before it resolves.
    shutdown: () => (disposed ??= managed.dispose().then(() => tracing.close()))
  }
}
