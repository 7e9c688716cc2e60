/**
 * The runtime's public API as types: the operations of {@link AgentRuntimeShape} and their options.
 * `AgentRuntime.ts` builds it; the promise API in `createRuntime.ts` wraps it.
 */
import type * as Effect from "effect/Effect"
import type * as Option from "effect/Option"
import type * as Stream from "effect/Stream"
import type * as Tracer from "effect/Tracer"
import type { Actor, InspectionEvent } from "xstate"
import type { agentMachine } from "../../machines/agentMachine.ts"
import type { AgentConfig } from "../domain/AgentConfig.ts"
import type { AgentInstance, SpawnResult } from "../domain/AgentInstance.ts"
import type { AgentState } from "../domain/AgentState.ts"
import type { Checkpoint } from "../domain/Checkpoint.ts"
import type { RuntimeError, StoreFailed } from "../domain/Errors.ts"
import type { FleetStatus } from "../domain/FleetStatus.ts"
import type { HealthStatus } from "../domain/HealthStatus.ts"
import type { LifecycleEvent } from "../domain/LifecycleEvent.ts"
import type { PoolStatus } from "../domain/PoolStatus.ts"
import type { AgentFilter, FleetOperation } from "../services/StateStore.ts"
import type { Clock } from "./ActorHost.ts"
import type { AgentHosting } from "./internal/agentHosting.ts"
import type { ModelExecuteEvent } from "./internal/modelExecution.ts"
import type { ProgramExecuteEvent } from "./internal/programProtocol.ts"
import type { SpawnPolicy } from "./SpawnPolicy.ts"
import type { EventQuery } from "../services/EventLog.ts"
import type { ExecutionRun, RunEvent } from "../domain/ExecutionRun.ts"
import type { RunQuery } from "../services/RunLog.ts"

/** Options of `suspend`. */
export interface SuspendOptions {
  /** Take a checkpoint (actor state and workspace) and remove the sandbox, instead of pausing it. */
  readonly checkpoint?: boolean | undefined
}

/** Options of `terminate`. */
export interface TerminateOptions {
  readonly reason?: string | undefined
  /** Skip the graceful stop and kill at once. */
  readonly force?: boolean | undefined
}

/** Options of `scale`. */
export interface ScaleOptions {
  /** The AgentConfig new replicas are spawned from (its name gets a replica suffix). */
  readonly template?: unknown
  readonly reason?: string | undefined
  /**
   * Where the operation's spawns queue for admission when spawns wait (`lifecycle.max_concurrent_spawns`):
   * high before normal before low (warm-pool refills are low). Default normal. Recorded on the operation.
   */
  readonly priority?: "low" | "normal" | "high" | undefined
  /** Who asks: a `template` from outside the process is checked like a remote spawn's config. */
  readonly policy?: SpawnPolicy | undefined
}

/** The label that names an agent's pool. */
export const poolLabel = "pool.l02.dev/name"

/** Options of `execute` and `runs.start`. */
export interface ExecuteOptions {
  /** How long to wait for the agent's `done` line; default 300 s. */
  readonly timeoutMs?: number | undefined
  /** Aborting it cancels the step (its run ends cancelled, E2037): the model request, running tools, the wait for the agent's answer. */
  readonly signal?: AbortSignal | undefined
  /**
   * `execute` only: cancel the step when the caller stops reading its stream. Default false: the step
   * goes on as a durable run, and `runs.attach` reads the rest.
   */
  readonly cancelOnDisconnect?: boolean | undefined
}

/** Options of `runs.attach`. */
export interface AttachOptions {
  /** Deliver the events after this sequence number (default 0: all of them), then the live ones. */
  readonly from?: number | undefined
}

/**
 * Durable execute runs (docs/execution.md, "Runs"): every execute step is one, its events kept in the
 * store with a sequence number; any caller can attach from any sequence, after a disconnect or a
 * supervisor restart, and reads each event once, in order, then the run's `end`.
 */
export interface RunsShape {
  /** Begins a step detached: resolves with its run once the agent accepted it (E2020/E2021 otherwise, nothing recorded). */
  readonly start: (agentId: string, input: unknown, options?: ExecuteOptions) => Effect.Effect<ExecutionRun, RuntimeError>
  /** The run's events after `from`, then the live ones, ending with its `end` event (E2035 for an unknown run). */
  readonly attach: (runId: string, options?: AttachOptions) => Stream.Stream<RunEvent, RuntimeError>
  /** One run (E2035 when unknown). */
  readonly get: (runId: string) => Effect.Effect<ExecutionRun, RuntimeError>
  /** Runs, newest first. */
  readonly list: (query?: RunQuery) => Effect.Effect<ReadonlyArray<ExecutionRun>, RuntimeError>
  /** Cancels a running run (it ends cancelled, E2037, the agent goes back to idle); an ended run is answered as it is. */
  readonly cancel: (runId: string) => Effect.Effect<ExecutionRun, RuntimeError>
}

/**
 * What `execute` streams, then `done`: for agents with a model, the loop's text, tool calls, tool
 * results, usage and coded errors; for agents without, their program's output lines.
 */
export type ExecuteEvent = ProgramExecuteEvent | ModelExecuteEvent

/** Runtime-level options that are not part of the configuration file. */
export interface AgentRuntimeOptions {
  readonly runtimeId: string
  readonly backendName: string
  /** An XState inspection observer (e.g. from @statelyai/inspect), attached to every actor. */
  readonly inspect?: ((event: InspectionEvent) => void) | undefined
  /** XState clock for delays (spawn timeout, grace period, backoff); a SimulatedClock in tests. */
  readonly clock?: Clock | undefined
  /** Wall clock in milliseconds, used for failure windows and timestamps. */
  readonly now?: (() => number) | undefined
  /** Random source in [0, 1), used for backoff jitter. */
  readonly random?: (() => number) | undefined
  /** The command of an agent whose config names none (backend-specific; may depend on its image). */
  readonly defaultCommand?: ((config: AgentConfig) => ReadonlyArray<string> | undefined) | undefined
  /** Backoff jitter fraction for restarts (default 0.1). */
  readonly backoffJitter?: number | undefined
  /**
   * Whether this runtime fills its warm pools (default true). A short-lived runtime (a one-shot CLI
   * command) passes false: it still adopts ready sandboxes and spawns still claim them, but it makes none.
   */
  readonly fillWarmPools?: boolean | undefined
  /**
   * The tracer of the runtime's spans (operations and background work: restarts, escalations, idle
   * suspensions), e.g. the OTLP tracer of `telemetry.traces`. Omitted: the tracer of whoever runs them.
   */
  readonly tracer?: Tracer.Tracer | undefined
  /**
   * `cluster`: a runner of a fleet on Effect Cluster hosts the agents of the shards it owns, one at a
   * time through {@link AgentRuntimeShape.hosting}; it recovers nothing at start. Default `local`:
   * every agent of the runtime id is restored at start.
   */
  readonly hosting?: "local" | "cluster" | undefined
  /**
   * What gives memory back once the runtime is quiet (`runtime.reduce_memory_after_idle_seconds`).
   * Omitted: V8's memory-reducing full collection (src/runtime/internal/memoryReducer.ts).
   */
  readonly reduceMemory?: (() => void) | undefined
}

/** The Effect-native runtime API. */
export interface AgentRuntimeShape {
  readonly runtimeId: string
  /**
   * Spawns an agent. `policy.origin: "remote"` marks a config from outside the process (the HTTP API
   * passes it): it may then not name a host file, variable or unlisted URL (E2004).
   */
  readonly spawn: (config: unknown, initialContext?: unknown, policy?: SpawnPolicy) => Effect.Effect<SpawnResult, RuntimeError>
  /** Checks a config as `spawn` would under the policy (E2000-E2005, E2040-E2044), creating nothing. */
  readonly checkSpawn: (config: unknown, policy?: SpawnPolicy) => Effect.Effect<void, RuntimeError>
  readonly terminate: (agentId: string, options?: TerminateOptions) => Effect.Effect<void, RuntimeError>
  readonly suspend: (agentId: string, options?: SuspendOptions) => Effect.Effect<string | undefined, RuntimeError>
  readonly resume: (agentId: string, checkpointId?: string) => Effect.Effect<AgentState, RuntimeError>
  readonly getState: (agentId: string) => Effect.Effect<AgentInstance, RuntimeError>
  readonly list: (filter?: AgentFilter) => Effect.Effect<ReadonlyArray<AgentInstance>, RuntimeError>
  /**
   * Runs a step as a durable run and streams its events until `done` (a failed, cancelled or
   * interrupted run fails the stream with its coded error). `done.executionId` is the run's id.
   */
  readonly execute: (agentId: string, input: unknown, options?: ExecuteOptions) => Stream.Stream<ExecuteEvent, RuntimeError>
  /** Durable execute runs: start detached, attach from a sequence number, get, list, cancel. */
  readonly runs: RunsShape
  /** Lifecycle events as they happen (state changes and supervision decisions). */
  readonly events: Stream.Stream<LifecycleEvent>
  /**
   * Lifecycle events already recorded, oldest first: after an event id, of one agent, the first or
   * (`latest`) the newest `limit` of them.
   */
  readonly history: (query: EventQuery) => Effect.Effect<ReadonlyArray<LifecycleEvent>, StoreFailed>
  /**
   * Records events of something the runtime hosts besides agents (a workflow run: `agentId` is the
   * run's id): written to the event log, then published on `events`. Resolves to them with their ids.
   */
  readonly recordEvents: (events: ReadonlyArray<LifecycleEvent>) => Effect.Effect<ReadonlyArray<LifecycleEvent>, StoreFailed>
  readonly fleetStatus: Effect.Effect<FleetStatus>
  /**
   * Scales the pool of agents labelled `pool.l02.dev/name=<pool>` to `replicas`: spawns from `template`
   * (or the config of a current member) or terminates the newest, failed ones first. Recorded as a fleet
   * operation; resolves with it once done.
   */
  readonly scale: (pool: string, replicas: number, options?: ScaleOptions) => Effect.Effect<FleetOperation, RuntimeError>
  /** Fleet operations, newest first. */
  readonly fleetOperations: (limit?: number) => Effect.Effect<ReadonlyArray<FleetOperation>, RuntimeError>
  /** An agent's checkpoints, oldest first. */
  readonly checkpoints: (agentId: string) => Effect.Effect<ReadonlyArray<Checkpoint>, RuntimeError>
  /** Liveness (its sandbox exists and runs or is paused) and readiness (running and idle) of an agent. */
  readonly health: (agentId: string) => Effect.Effect<HealthStatus, RuntimeError>
  /** The warm pools (config `pools.warm`): bounds, ready and in-flight sandboxes, claims. */
  readonly pools: Effect.Effect<ReadonlyArray<PoolStatus>>
  /**
   * Sets a warm pool's size within its [min, max] (E2001 outside them, E2021-like InputInvalid for an
   * unknown pool); a larger pool fills in the background, a smaller one removes ready sandboxes at once.
   */
  readonly resizePool: (name: string, size: number) => Effect.Effect<PoolStatus, RuntimeError>
  /** Resolves once every accepted transition has been written to the store. */
  readonly flush: Effect.Effect<void>
  /** The live agent actor, for inspection and tests. */
  readonly actorOf: (agentId: string) => Option.Option<Actor<typeof agentMachine>>
  /** With `hosting: "cluster"`: how the runner hosts and releases single agents (internal to the cluster layer). */
  readonly hosting?: AgentHosting | undefined
}

