/**
 * The Effect-native runtime: runs every agent as a root XState actor of the agent machine, supervised by
 * one fleet actor, with every side effect going through the injected services.
 *
 * Guarantees:
 * - An operation the agent's state does not accept fails with E2020 and changes nothing: the runtime
 *   asks the actor (`snapshot.can`) before sending anything.
 * - A transition is persisted (StateStore, EventLog) before the operation that caused it is
 *   acknowledged, and before the side effect of the state it entered starts.
 * - After a restart the runtime reloads its agents from the store, re-checks their sandboxes and reaps
 *   sandboxes it owns that no live agent claims.
 */
import { randomUUID } from "node:crypto"
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as PubSub from "effect/PubSub"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Tracer from "effect/Tracer"
import { type Actor, type InspectionEvent, type Snapshot } from "xstate"
import { accepts, agentMachine, type AgentContext, type AgentEvent } from "../../machines/agentMachine.ts"
import { AgentConfig } from "../domain/AgentConfig.ts"
import type { AgentInstance, SpawnResult } from "../domain/AgentInstance.ts"
import type { AgentActivity, AgentOperation, AgentState } from "../domain/AgentState.ts"
import type { ErrorData } from "../domain/ErrorCatalog.ts"
import {
  AgentNotFound,
  ConfigInvalid,
  ExecuteFailed,
  fromErrorData,
  InputInvalid,
  InvalidTransition,
  ResourceLimitsInvalid,
  RuntimeClassUnavailable,
  type RuntimeError,
  RuntimeShutDown,
  AdmissionRejected,
  SandboxConfigInvalid,
  StoreFailed,
  toErrorData
} from "../domain/Errors.ts"
import type { Checkpoint } from "../domain/Checkpoint.ts"
import type { FleetStatus } from "../domain/FleetStatus.ts"
import type { PoolStatus } from "../domain/PoolStatus.ts"
import type { HealthStatus } from "../domain/HealthStatus.ts"
import {  } from "../domain/Ids.ts"
import type { LifecycleEvent } from "../domain/LifecycleEvent.ts"
import { resolveSandbox } from "../domain/resolveSandbox.ts"
import type { RuntimeConfig } from "../domain/RuntimeConfig.ts"
import type { SandboxConfiguration } from "../domain/SandboxConfiguration.ts"
import { CheckpointStore } from "../services/CheckpointStore.ts"
import { EventLog } from "../services/EventLog.ts"
import { SandboxBackend } from "../services/SandboxBackend.ts"
import { type AgentFilter, AtomicWrites, type FleetOperation, StateStore } from "../services/StateStore.ts"
import { type Clock, makeActorHost, type SnapshotWrite } from "./ActorHost.ts"
import {  } from "./EffectBridge.ts"
import { type AdmissionPriority, makeFairAdmission } from "./internal/fairAdmission.ts"
import {  } from "./internal/heartbeats.ts"
import { makeQuietPeriods, memoryReducingGc } from "./internal/memoryReducer.ts"
import { makeWarmPools, WarmLabels, type WarmPool } from "./internal/warmPools.ts"
import type { ModelExecuteEvent } from "./internal/modelExecution.ts"
import { type ProgramExecuteEvent, runProgramStep } from "./internal/programProtocol.ts"
import { makeSandboxEffects } from "./internal/sandboxEffects.ts"
import { makeFleetSupervision } from "./internal/fleetSupervision.ts"
import { makeDefectReporter } from "./internal/defects.ts"
import { makeAgentHeartbeats, makeReconciliation } from "./internal/liveness.ts"
import { recoverAgents } from "./internal/recovery.ts"
import { activityOf, type AgentHandle, instanceOf, instanceOfRecord, newAgentHandle, recordOf, stateOf } from "./internal/agentHandle.ts"
import type {  } from "../execution/AgentLoop.ts"
import * as TokenBudget from "../execution/TokenBudget.ts"
import { checkDeclarations, declaredResourcesOf } from "../domain/ConfigReferences.ts"
import { SecretStore } from "../services/SecretStore.ts"
import type { OperatorResources } from "./internal/modelExecution.ts"
import { checkSpawnPolicy, type SpawnPolicy } from "./SpawnPolicy.ts"

export type { Clock } from "./ActorHost.ts"

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

/** Options of `execute`. */
export interface ExecuteOptions {
  /** How long to wait for the agent's `done` line; default 300 s. */
  readonly timeoutMs?: number | undefined
  /** Aborting it cancels the step: the model request, running tools, the wait for the agent's answer. */
  readonly signal?: AbortSignal | undefined
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
  readonly terminate: (agentId: string, options?: TerminateOptions) => Effect.Effect<void, RuntimeError>
  readonly suspend: (agentId: string, options?: SuspendOptions) => Effect.Effect<string | undefined, RuntimeError>
  readonly resume: (agentId: string, checkpointId?: string) => Effect.Effect<AgentState, RuntimeError>
  readonly getState: (agentId: string) => Effect.Effect<AgentInstance, RuntimeError>
  readonly list: (filter?: AgentFilter) => Effect.Effect<ReadonlyArray<AgentInstance>, RuntimeError>
  readonly execute: (agentId: string, input: unknown, options?: ExecuteOptions) => Stream.Stream<ExecuteEvent, RuntimeError>
  /** Lifecycle events as they happen (state changes and supervision decisions). */
  readonly events: Stream.Stream<LifecycleEvent>
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
}

/** The runtime as an Effect service. */
export class AgentRuntime extends Context.Service<AgentRuntime, AgentRuntimeShape>()("l02/AgentRuntime") {}

const decodeConfig = (raw: unknown): Effect.Effect<AgentConfig, InputInvalid | ResourceLimitsInvalid | SandboxConfigInvalid> => {
  const exit = Schema.decodeUnknownExit(AgentConfig)(raw, { errors: "all", onExcessProperty: "error" })
  if (Exit.isSuccess(exit)) return Effect.succeed(exit.value)
  const failure = exit.cause.reasons.find(Cause.isFailReason)
  const text = failure === undefined ? "invalid agent config" : String((failure.error as { message?: unknown }).message ?? failure.error)
  const path = [...text.matchAll(/at \[([^\]]+)\]/g)].map((m) => m[1]!.replaceAll('"', "").replaceAll("][", ".")).find(() => true) ?? ""
  const message = `agent config ${path === "" ? "" : `key ${path} `}is invalid: ${text.replace(/\n\s*at \[.*$/s, "").replaceAll("\n", "; ")}`
  if (path.startsWith("resources")) return Effect.fail(new ResourceLimitsInvalid({ message, key: path }))
  if (path.startsWith("trustLevel")) return Effect.fail(new SandboxConfigInvalid({ message, key: path }))
  return Effect.fail(new InputInvalid({ message, key: path }))
}

const backendsFor = (runtimeClass: string): string =>
  runtimeClass === "runc"
    ? "the process, docker or kubernetes backend"
    : `the docker backend with a runtime mapped to ${runtimeClass} (docker.runtimes), or the kubernetes backend with RuntimeClass ${runtimeClass}`

/** Builds the runtime; its scope owns every actor and background fiber. */
export const make = (
  config: RuntimeConfig,
  options: AgentRuntimeOptions
): Effect.Effect<AgentRuntimeShape, RuntimeError, SandboxBackend | StateStore | CheckpointStore | EventLog | SecretStore | Scope.Scope> =>
  Effect.gen(function* () {
    const backend = yield* SandboxBackend
    const declared = declaredResourcesOf(config)
    const operatorResources: OperatorResources = { declared, secrets: yield* SecretStore }
    const undeclared = checkDeclarations(config, operatorResources.secrets.names)
    if (undeclared !== undefined) return yield* undeclared
    const store = yield* StateStore
    const checkpoints = yield* CheckpointStore
    const eventLog = yield* EventLog
    // A store whose records and events share a database writes a batch of both in one atomic step;
    // otherwise records, then events.
    const writeBatchOf = Option.getOrElse(yield* Effect.serviceOption(AtomicWrites), () =>
      AtomicWrites.of({
        saveAgentsAndAppend: (records, events) =>
          Effect.andThen(store.saveAgents(records), events.length === 0 ? Effect.succeed([]) : eventLog.append(events))
      })
    )
    const services = yield* Effect.context<SandboxBackend | StateStore | CheckpointStore | EventLog>()
    const run = Effect.runPromiseWith(services)
    const runFork = Effect.runForkWith(services)
    const scope = yield* Effect.scope
    const now = options.now ?? Date.now
    const random = options.random ?? Math.random
    const iso = () => new Date(now()).toISOString()
    const lifecycle = config.lifecycle
        const hub = yield* PubSub.unbounded<LifecycleEvent>()
    let closed = false

    // Lifecycle activity marks the runtime busy; once quiet for a while, the memory of the busy period goes back.
    const quiet = makeQuietPeriods(config.runtime.reduce_memory_after_idle_seconds * 1000, now)
    const publish = (events: ReadonlyArray<LifecycleEvent>) => {
      for (const event of events) PubSub.publishUnsafe(hub, event)
      quiet.touch()
    }
    const reduceMemory = config.runtime.reduce_memory_after_idle_seconds > 0 ? (options.reduceMemory ?? memoryReducingGc()) : undefined
    if (reduceMemory !== undefined) {
      const every = Math.max(250, Math.floor((config.runtime.reduce_memory_after_idle_seconds * 1000) / 4))
      yield* Effect.sync(() => {
        if (quiet.due()) reduceMemory()
      }).pipe(Effect.repeat(Schedule.spaced(`${every} millis`)), Effect.forkIn(scope))
    }

    const flushed = (h: AgentHandle): Effect.Effect<void, StoreFailed> =>
      Effect.promise(() => host.persisted(h)).pipe(
        Effect.flatMap(() => (h.persistError === undefined ? Effect.void : Effect.fail(h.persistError)))
      )

    // ---- traces ------------------------------------------------------------------------------------
    const spanBase = { "l02.runtime_id": options.runtimeId, "l02.backend": options.backendName }
    const background = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
      options.tracer === undefined ? effect : Effect.withTracer(effect, options.tracer)
    /** A span around a lifecycle operation, with the agent and, on failure, the error's code. */
    const traced =
      (name: string, attributes: Record<string, unknown>) =>
      <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
        effect.pipe(
          Effect.tapError((error) => Effect.annotateCurrentSpan("l02.error.code", (error as { code?: unknown } | undefined)?.code ?? "unknown")),
          Effect.withSpan(name, { attributes: { ...spanBase, ...attributes } }),
          background
        )

    // ---- heartbeats --------------------------------------------------------------------------------
    const heartbeatTimeoutMs = (c: AgentConfig) => (c.heartbeatTimeoutSeconds ?? lifecycle.heartbeat_timeout_seconds) * 1000
    const heartbeats = makeAgentHeartbeats({
      backend,
      fork: (effect) => runFork(effect),
      now,
      clock: options.clock,
      timeoutMsOf: heartbeatTimeoutMs,
      agent: (agentId) => host.get(agentId),
      send: (h, event) => host.sendIfAccepted(h, event)
    })
    const watchHeartbeat = heartbeats.watch

    // Every supervision decision is a lifecycle event, and a span when traces are on.
    const fleetEvent = (agentId: string, type: string, data: unknown) =>
      Effect.runFork(
        background(
          eventLog.append([{ agentId, type, data, at: iso() }]).pipe(
            Effect.tap((events) => Effect.sync(() => publish(events))),
            Effect.ignore,
            Effect.withSpan(`l02.${type}`, { attributes: { ...spanBase, "l02.agent_id": agentId, ...(data === undefined ? {} : { "l02.decision": JSON.stringify(data) }) } })
          )
        )
      )
    const { fleet, supervise: superviseFleet } = makeFleetSupervision({
      lifecycle,
      backoffJitter: options.backoffJitter ?? 0.1,
      now,
      random,
      inspect: options.inspect,
      clock: options.clock,
      agent: (agentId) => host.get(agentId),
      send: (h, event) => host.live(h).send(event),
      suspendIdle: (agentId) => runFork(Effect.ignore(suspend(agentId, {}))),
      record: fleetEvent,
      onError: (error) => reportDefect("fleet", error)
    })

    // Actor errors are bugs of this runtime: logged and recorded as lifecycle events, bounded.
    const reportDefect = makeDefectReporter({
      record: (who, data) => fleetEvent(who.startsWith("agent:") ? who.slice("agent:".length) : "", "runtime.defect", { actor: who, ...data })
    })

    // ---- side effects of the agent machine ------------------------------------------------------------
    const { specFor, removeQuietly, writeMayWait, machine: provided } = makeSandboxEffects({
      backend,
      checkpoints,
      services,
      runtimeId: options.runtimeId,
      lifecycle,
      now,
      defaultCommand: options.defaultCommand,
      heartbeatTimeoutMs,
      handleOf: (agentId) => host.get(agentId),
      persisted: (h) => host.persisted(h)
    })

    // ---- actors ------------------------------------------------------------------------------------
    /** An agent's transition: its record and a state event to write, then what the fleet hears of it. */
    const onSnapshot = (h: AgentHandle, snapshot: Snapshot<unknown> & { value: unknown; context: AgentContext }, initial: boolean): SnapshotWrite | undefined => {
      const state = stateOf(snapshot.value)
      const activity = activityOf(snapshot.value)
      const context = snapshot.context
      if (initial) {
        h.state = state
        h.activity = activity
        h.lastContext = context
        return undefined
      }
      if (state === h.state && activity === h.activity && context === h.lastContext) return undefined
      const from = h.state
      const fromActivity = h.activity
      const previousContext = h.lastContext
      h.state = state
      h.activity = activity
      h.lastContext = context
      h.updatedAt = iso()
      if (state === "terminated" && h.terminatedAt === undefined) h.terminatedAt = h.updatedAt
      const events: Array<LifecycleEvent> = []
      if (from !== state) {
        events.push({
          agentId: h.agentId,
          type: "agent.state",
          fromState: from,
          toState: state,
          data: context.lastError === undefined || context.lastError === previousContext.lastError ? undefined : { error: context.lastError },
          at: h.updatedAt
        })
      }
      return {
        events,
        // Only the pause and unpause paths leave these states without waiting for the write (see `provided`).
        defer: from !== state && writeMayWait(state, snapshot, h),
        then: () => {
          watchHeartbeat(h)
          supervise(h, from, fromActivity)
        }
      }
    }

    /** What the fleet hears of an agent's transition; a terminated agent leaves the host once written. */
    const supervise = (h: AgentHandle, from: AgentState, fromActivity: AgentActivity | undefined) => {
      superviseFleet(h, from, fromActivity)
      if (h.state === "terminated") void h.persisted.then(() => host.remove(h))
    }

    // Idle agents (no invoked actor, no execute step) hibernate: only their persisted snapshot is kept,
    // so thousands of idle agents cost little memory; any operation or event wakes them.
    const host = makeActorHost<typeof agentMachine, AgentHandle>({
      logic: provided,
      idOf: (h) => h.agentId,
      systemIdOf: (h) => `agent:${h.agentId}`,
      input: (h) => ({ agentId: h.agentId, spawnTimeoutMs: lifecycle.spawn_timeout_seconds * 1000, graceMs: lifecycle.graceful_shutdown_seconds * 1000 }),
      write: (entries, events) =>
        run(
          Effect.gen(function* () {
            const appended = yield* writeBatchOf.saveAgentsAndAppend(entries.map((h) => recordOf(h, options.runtimeId)), events)
            if (appended.length > 0) publish(appended)
          })
        ),
      onSnapshot: (h, snapshot, initial) => onSnapshot(h, snapshot as never, initial),
      onError: (h, error) => reportDefect(`agent:${h.agentId}`, error),
      mayHibernate: (h) => h.activity !== "busy",
      hibernateAfterMs: config.runtime.hibernate_idle_after_seconds * 1000,
      noun: "agent",
      describe: (h) => ({ state: h.state, where: h.activity === undefined ? h.state : `${h.state} (${h.activity})` }),
      now,
      inspect: options.inspect,
      clock: options.clock
    })

    const waitFor = (h: AgentHandle, done: (state: AgentState) => boolean): Effect.Effect<AgentState> =>
      Effect.map(host.waitFor(h, () => done(h.state)), () => h.state)

    const live = (agentId: string): Effect.Effect<AgentHandle, AgentNotFound | RuntimeShutDown> =>
      Effect.suspend((): Effect.Effect<AgentHandle, AgentNotFound | RuntimeShutDown> => {
        if (closed) return Effect.fail(new RuntimeShutDown({ message: "the runtime was shut down; create a new one", agentId }))
        const h = host.get(agentId)
        return h === undefined
          ? Effect.fail(new AgentNotFound({ message: `no live agent ${agentId}; list agents with list() or check the id`, agentId }))
          : Effect.succeed(h)
      })

    const liveOrTerminated = (
      agentId: string,
      operation: AgentOperation
    ): Effect.Effect<AgentHandle, AgentNotFound | RuntimeShutDown | InvalidTransition | StoreFailed> =>
      live(agentId).pipe(
        Effect.catchTag("AgentNotFound", (notFound): Effect.Effect<never, AgentNotFound | InvalidTransition | StoreFailed> =>
          store.getAgent(agentId).pipe(
            Effect.flatMap((found): Effect.Effect<never, AgentNotFound | InvalidTransition> =>
              Option.isSome(found)
                ? Effect.fail(
                    new InvalidTransition({
                      message: `cannot ${operation} agent ${agentId}: it is ${found.value.state}`,
                      agentId,
                      state: found.value.state,
                      operation
                    })
                  )
                : Effect.fail(notFound)
            )
          )
        )
      )

    const sendChecked = (h: AgentHandle, event: AgentEvent, operation: AgentOperation) => host.send(h, event, operation)

    const failIfError = (h: AgentHandle, state: AgentState, ok: ReadonlyArray<AgentState>, since: ErrorData | undefined) =>
      Effect.suspend(() => {
        if (ok.includes(state)) return Effect.void
        const error = h.lastContext.lastError
        return Effect.fail(
          fromErrorData(
            error !== undefined && error !== since ? error : { code: "E2046", message: `agent ended in state ${state}`, retryable: false },
            h.agentId
          )
        )
      })

    // ---- operations --------------------------------------------------------------------------------
    const tokenBudget = yield* TokenBudget.makeMemory
    // Whether the backend can pause is fixed for its life: ask once it answers, then remember.
    let canPauseKnown: boolean | undefined
    const backendCanPause = Effect.suspend(() =>
      canPauseKnown !== undefined
        ? Effect.succeed(canPauseKnown)
        : Effect.map(backend.capabilities, (caps) => (canPauseKnown = caps.pause !== false))
    )
    const admission = makeFairAdmission(lifecycle.max_concurrent_spawns, lifecycle.spawn_queue_limit)

    // ---- warm pools --------------------------------------------------------------------------------
    const warmConfigs = config.pools.warm
    const poolSandboxes = new Map<string, SandboxConfiguration>()
    if (warmConfigs.length > 0) {
      const caps = yield* backend.capabilities
      for (const [i, pool] of warmConfigs.entries()) {
        const sandbox = resolveSandbox(pool.template, config)
        const key = `pools.warm[${i}].template`
        if (sandbox instanceof ResourceLimitsInvalid) return yield* new ConfigInvalid({ message: `warm pool ${pool.name}: ${sandbox.message}`, key })
        if (!caps.runtimeClasses.includes(sandbox.runtimeClass)) {
          return yield* new ConfigInvalid({
            message: `warm pool ${pool.name}: trust level ${sandbox.trustLevel} needs runtime class ${sandbox.runtimeClass}, which the ${caps.name} backend does not have (it has: ${caps.runtimeClasses.join(", ") || "none"})`,
            key
          })
        }
        const unknown = checkSpawnPolicy(pool.template, sandbox.trustLevel, declared, undefined)
        if (unknown !== undefined) return yield* new ConfigInvalid({ message: `warm pool ${pool.name}: ${unknown.message}`, key: `${key}.${unknown.key ?? ""}` })
        poolSandboxes.set(pool.name, sandbox)
      }
    }
    const warm = makeWarmPools(warmConfigs, {
      make: (pool: WarmPool, paused: boolean) =>
        Effect.gen(function* () {
          const agent = { agentId: randomUUID(), sessionId: randomUUID(), config: pool.template, sandbox: poolSandboxes.get(pool.name)! }
          const created = yield* backend.provision(specFor(agent, { [WarmLabels.pool]: pool.name, [WarmLabels.template]: pool.templateHash }))
          const ready = Effect.andThen(backend.start(created.sandboxId), paused ? backend.pause(created.sandboxId) : Effect.void)
          yield* ready.pipe(Effect.onError(() => Effect.ignore(removeQuietly(created.sandboxId))))
          return { pool: pool.name, agentId: agent.agentId, sessionId: agent.sessionId, sandboxId: created.sandboxId, paused }
        }).pipe(Effect.mapError(toErrorData)),
      unpause: (sandboxId) => backend.unpause(sandboxId).pipe(Effect.mapError(toErrorData)),
      remove: (sandboxId) => Effect.ignore(removeQuietly(sandboxId)),
      // Refills yield to every spawn waiting: a warm sandbox is for later, a spawn is for now.
      admit: (pool) => Effect.promise(() => admission.acquire(`pool:${pool.name}`, "low")),
      fork: (effect) => runFork(effect),
      canPause: warmConfigs.length > 0 && (yield* backendCanPause),
      concurrency: lifecycle.max_concurrent_spawns
    })

    // Expired checkpoints are collected in the background.
    if (lifecycle.checkpoint_ttl_seconds > 0) {
      const every = Math.min(lifecycle.checkpoint_ttl_seconds, 300)
      yield* checkpoints.removeExpired(iso()).pipe(
        Effect.flatMap((removed) => (removed > 0 ? Effect.sync(() => publish([{ agentId: "", type: "checkpoints.expired", data: { removed }, at: iso() }])) : Effect.void)),
        Effect.ignore,
        Effect.repeat(Schedule.spaced(`${every} seconds`)),
        Effect.forkIn(scope)
      )
    }
    /** How a spawn waits for admission: a fleet operation's spawns queue as one session, at its priority. */
    interface AdmitAs {
      readonly session: string
      readonly priority: AdmissionPriority
    }
    const spawn = (raw: unknown, initialContext?: unknown, admitAs?: AdmitAs, policy?: SpawnPolicy): Effect.Effect<SpawnResult, RuntimeError> =>
      Effect.gen(function* () {
        if (closed) return yield* new RuntimeShutDown({ message: "the runtime was shut down; create a new one" })
        const config = yield* decodeConfig(raw)
        const sandbox = resolveSandbox(config, config_)
        if (sandbox instanceof ResourceLimitsInvalid) return yield* sandbox
        const refused = checkSpawnPolicy(config, sandbox.trustLevel, declared, policy)
        if (refused !== undefined) return yield* refused
        const caps = yield* backend.capabilities
        if (!caps.runtimeClasses.includes(sandbox.runtimeClass)) {
          return yield* new RuntimeClassUnavailable({
            message: `trust level ${sandbox.trustLevel} needs runtime class ${sandbox.runtimeClass}, which the ${caps.name} backend does not have (it has: ${caps.runtimeClasses.join(", ") || "none"}); use ${backendsFor(sandbox.runtimeClass)}, or pick another trust level`,
            runtimeClass: sandbox.runtimeClass,
            key: "trustLevel"
          })
        }
        const admittedAs = config.sessionId ?? randomUUID()
        const release = yield* Effect.promise(() => admission.acquire(admitAs?.session ?? admittedAs, admitAs?.priority))
        if (release === undefined) {
          return yield* new AdmissionRejected({
            message: `${admission.waiting()} spawns are already waiting (lifecycle.spawn_queue_limit ${lifecycle.spawn_queue_limit}); retry later or raise the limit`
          })
        }
        yield* Effect.addFinalizer(() => Effect.sync(release))
        // A warm sandbox made from this very config becomes this agent's, with the id it was made for.
        const claim = warm.claim(config)
        const sessionId = config.sessionId ?? claim?.sessionId ?? admittedAs
        const at = iso()
        const h = newAgentHandle({
          agentId: claim?.agentId ?? randomUUID(),
          sessionId,
          claim,
          config,
          sandbox,
          initialContext: initialContext ?? null,
          createdAt: at,
          updatedAt: at,
          state: "pending"
        })
        host.add(h)
        host.start(h)
        // The record is first written with the spawning intent, in one batch with its creation, before
        // the backend is asked for anything (provisionSandbox waits for that write).
        host.persist(h, [{ agentId: h.agentId, type: "agent.created", toState: "pending", data: { name: config.name }, at }], claim !== undefined)
        yield* sendChecked(h, { type: "agent.spawn" }, "spawn")
        const state = yield* waitFor(h, (s) => s === "running" || s === "failed" || s === "terminated")
        yield* flushed(h)
        yield* failIfError(h, state, ["running"], undefined)
        return {
          agentId: h.agentId,
          sessionId: h.sessionId,
          state,
          ...(h.lastContext.sandboxId === undefined ? {} : { sandboxId: h.lastContext.sandboxId }),
          sandbox,
          backend: options.backendName
        }
      }).pipe(Effect.scoped)

    const terminate = (agentId: string, opts: TerminateOptions = {}): Effect.Effect<void, RuntimeError> =>
      Effect.gen(function* () {
        const h = yield* liveOrTerminated(agentId, "terminate")
        yield* sendChecked(h, { type: "agent.terminate", reason: opts.reason, force: opts.force }, "terminate")
        const state = yield* waitFor(h, (s) => s === "terminated" || s === "failed")
        yield* flushed(h)
        yield* failIfError(h, state, ["terminated"], undefined)
      })

    const suspend = (agentId: string, opts: SuspendOptions): Effect.Effect<string | undefined, RuntimeError> =>
      Effect.gen(function* () {
        const h = yield* liveOrTerminated(agentId, "suspend")
        if (!lifecycle.enable_suspend) {
          return yield* new InvalidTransition({
            message: "suspend is disabled by lifecycle.enable_suspend: false",
            agentId,
            state: h.state,
            operation: "suspend"
          })
        }
        const before = h.lastContext.lastError
        // Where sandboxes cannot be paused (Kubernetes), every suspend is a checkpoint.
        const canPause = yield* backendCanPause
        yield* sendChecked(h, { type: "agent.suspend", checkpoint: opts.checkpoint === true || !canPause }, "suspend")
        const state = yield* waitFor(h, (s) => s !== "suspending")
        yield* flushed(h)
        yield* failIfError(h, state, ["suspended"], before)
        return h.lastContext.checkpointId
      })

    const resume = (agentId: string, checkpointId?: string): Effect.Effect<AgentState, RuntimeError> =>
      Effect.gen(function* () {
        const h = yield* liveOrTerminated(agentId, "resume")
        const before = h.lastContext.lastError
        yield* sendChecked(h, { type: "agent.resume", checkpointId }, "resume")
        const state = yield* waitFor(h, (s) => s !== "resuming")
        yield* flushed(h)
        yield* failIfError(h, state, ["running"], before)
        return state
      })

    const poolName = /^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/
    const scale = (pool: string, replicas: number, opts: ScaleOptions = {}): Effect.Effect<FleetOperation, RuntimeError> =>
      Effect.gen(function* () {
        if (!poolName.test(pool)) {
          return yield* new InputInvalid({ message: `pool name ${JSON.stringify(pool)} must be 1-63 letters, digits, '-', '_' or '.'`, key: "pool" })
        }
        if (!Number.isInteger(replicas) || replicas < 0 || replicas > 10_000) {
          return yield* new InputInvalid({ message: `replicas must be a whole number from 0 to 10000, got ${replicas}`, key: "replicas" })
        }
        const members = [...host.entries()].filter(
          (h) => h.config.labels?.[poolLabel] === pool && h.state !== "terminated" && h.state !== "terminating"
        )
        let template: AgentConfig | undefined
        if (opts.template !== undefined) template = yield* decodeConfig(opts.template)
        else template = members[0]?.config
        if (replicas > members.length && template === undefined) {
          return yield* new InputInvalid({ message: `pool ${pool} has no agents to copy; pass a template to grow it`, key: "template" })
        }
        if (replicas > members.length) {
          // Refused before the operation is recorded: the caller may spawn neither this template nor its trust level.
          const sandbox = resolveSandbox(template!, config_)
          if (sandbox instanceof ResourceLimitsInvalid) return yield* sandbox
          const refused = checkSpawnPolicy(template!, sandbox.trustLevel, declared, opts.policy)
          if (refused !== undefined) return yield* refused
        }
        const operation: FleetOperation = {
          operationId: randomUUID(),
          operationType: replicas === 0 ? "drain" : "scale",
          targetReplicas: replicas,
          status: "running",
          reason: opts.reason ?? `scale pool ${pool} from ${members.length} to ${replicas}`,
          priority: opts.priority ?? "normal",
          createdAt: iso()
        }
        yield* store.saveFleetOperation(operation)
        const outcome = yield* Effect.gen(function* () {
          if (replicas > members.length) {
            const base = template!
            yield* Effect.forEach(
              Array.from({ length: replicas - members.length }, (_, i) => i),
              (i) =>
                spawn(
                  {
                    ...base,
                    name: `${base.name.slice(0, 50)}-${randomUUID().slice(0, 8)}`.replace(/-+$/, ""),
                    labels: { ...base.labels, [poolLabel]: pool }
                  },
                  { pool, replica: members.length + i },
                  { session: base.sessionId ?? `fleet:${operation.operationId}`, priority: opts.priority ?? "normal" },
                  opts.policy
                ),
              // As many waiting as running (within the queue's limit): a freed slot goes to the operation's
              // next spawn at its priority.
              { concurrency: lifecycle.max_concurrent_spawns + Math.min(lifecycle.max_concurrent_spawns, lifecycle.spawn_queue_limit), discard: true }
            )
          } else if (replicas < members.length) {
            const order = (h: AgentHandle) => (h.state === "failed" ? 0 : 1)
            const victims = [...members].sort((a, b) => order(a) - order(b) || b.createdAt.localeCompare(a.createdAt)).slice(0, members.length - replicas)
            yield* Effect.forEach(victims, (h) => terminate(h.agentId, { reason: `pool ${pool} scaled to ${replicas}` }), {
              concurrency: 16,
              discard: true
            })
          }
        }).pipe(Effect.exit)
        const done: FleetOperation = {
          ...operation,
          status: Exit.isSuccess(outcome) ? "completed" : "failed",
          ...(Exit.isSuccess(outcome) ? {} : { reason: `${operation.reason}; failed: ${String(Cause.squash(outcome.cause))}` }),
          completedAt: iso()
        }
        yield* store.saveFleetOperation(done)
        publish([{ agentId: "", type: "fleet.operation", data: done, at: done.completedAt! }])
        if (Exit.isFailure(outcome)) return yield* Effect.failCause(outcome.cause)
        return done
      })

    /** Live CPU and memory of a running agent's sandbox, with its token usage; the stored usage otherwise. */
    const usageOf = (h: AgentHandle): Effect.Effect<AgentInstance["resourceUsage"]> => {
      const tokensUsed = h.conversation === undefined ? undefined : h.conversation.usage.inputTokens + h.conversation.usage.outputTokens
      const base = tokensUsed === undefined ? {} : { tokensUsed }
      const sandboxId = h.lastContext.sandboxId
      if (sandboxId === undefined || h.state !== "running") return Effect.succeed(tokensUsed === undefined ? undefined : base)
      return backend.stats(sandboxId).pipe(
        Effect.map((st) => ({ ...base, cpuPercent: st.cpuPercent, memoryBytes: st.memoryBytes, sampledAt: iso() })),
        Effect.timeoutOption("2 seconds"),
        Effect.map(Option.getOrElse(() => base)),
        Effect.catchCause(() => Effect.succeed(base))
      )
    }

    const getState = (agentId: string) =>
      Effect.suspend(() => {
        const h = host.get(agentId)
        if (h !== undefined) {
          return usageOf(h).pipe(
            Effect.map((usage) => {
              const instance = instanceOf(h, options.backendName)
              return usage === undefined ? instance : { ...instance, resourceUsage: usage }
            })
          )
        }
        return store.getAgent(agentId).pipe(
          Effect.flatMap((found) =>
            Option.isSome(found)
              ? Effect.succeed(instanceOfRecord(found.value, options.backendName))
              : Effect.fail(new AgentNotFound({ message: `no agent ${agentId}; list agents with list() or check the id`, agentId }))
          )
        )
      })

    const matches = (i: AgentInstance, filter: AgentFilter) => {
      if (filter.state !== undefined) {
        const states = typeof filter.state === "string" ? [filter.state] : filter.state
        if (!states.includes(i.state)) return false
      }
      if (filter.sessionId !== undefined && i.sessionId !== filter.sessionId) return false
      if (filter.labels !== undefined) {
        for (const [k, v] of Object.entries(filter.labels)) if (i.config.labels?.[k] !== v) return false
      }
      return true
    }

    const list = (filter: AgentFilter = {}) =>
      Effect.gen(function* () {
        const stored = yield* store.listAgents({ ...filter, runtimeId: options.runtimeId })
        const out = new Map<string, AgentInstance>()
        for (const r of stored) out.set(r.agentId, instanceOfRecord(r, options.backendName))
        for (const h of host.entries()) out.set(h.agentId, instanceOf(h, options.backendName))
        return [...out.values()].filter((i) => matches(i, filter))
      })

    const execute = (agentId: string, input: unknown, opts: ExecuteOptions = {}): Stream.Stream<ExecuteEvent, RuntimeError> =>
      Stream.unwrap(
        Effect.gen(function* () {
          const h = yield* live(agentId)
          // An agent suspended (by a user or for idleness) is resumed for the step.
          if (h.state === "suspended") yield* resume(agentId)
          const sandboxId = h.lastContext.sandboxId
          yield* sendChecked(h, { type: "agent.busy" }, "execute")
          yield* Effect.addFinalizer(() =>
            Effect.sync(() => {
              const actor = host.live(h)
              if (accepts(actor.getSnapshot(), { type: "agent.idle" })) actor.send({ type: "agent.idle" })
            })
          )
          yield* flushed(h)
          if (sandboxId === undefined) return yield* new ExecuteFailed({ message: "the agent has no sandbox", agentId })
          if (h.config.model !== undefined) {
            const model = h.config.model
            // The agent loop (providers, tokenizer, MCP) is loaded by the first agent that has a model.
            const { prepareModel, runModelLoop } = yield* Effect.promise(() => import("./internal/modelExecution.ts"))
            h.model ??= yield* prepareModel(model, operatorResources)
            const caps = yield* backend.capabilities
            const executionId = randomUUID()
            return runModelLoop({
              agentId,
              input,
              model,
              prepared: h.model,
              resources: operatorResources,
              budget: tokenBudget,
              tokensPerHour: h.sandbox.resources.tokensPerHour,
              backend,
              sandboxId,
              dialect: caps.name === "memory" ? "memory" : "posix",
              conversation: h.conversation,
              onConversation: (conversation) =>
                Effect.gen(function* () {
                  h.conversation = conversation
                  h.tokenUsage = yield* tokenBudget.usage(agentId)
                  host.persist(h, [])
                })
            }).pipe(
              Stream.mapEffect((event): Effect.Effect<ExecuteEvent, RuntimeError> =>
                event.type === "done"
                  ? Effect.as(flushed(h), { type: "done", executionId, data: { reason: event.reason, text: event.text } })
                  : Effect.succeed(event)
              )
            )
          }
          return yield* runProgramStep({ backend, agentId, sandboxId, input, timeoutMs: opts.timeoutMs ?? 300_000, now })
        })
      ).pipe(
        Stream.scoped,
        Stream.interruptWhen(
          Effect.callback<void>((resume) => {
            const signal = opts.signal
            if (signal === undefined) return
            if (signal.aborted) return resume(Effect.void)
            const onAbort = () => resume(Effect.void)
            signal.addEventListener("abort", onAbort, { once: true })
            return Effect.sync(() => signal.removeEventListener("abort", onAbort))
          })
        )
      ) as Stream.Stream<ExecuteEvent, RuntimeError>

    // ---- backend events and liveness ------------------------------------------------------------------
    const liveness = makeReconciliation({
      backend,
      runtimeId: options.runtimeId,
      iso,
      agents: () => host.entries(),
      agent: (agentId) => host.get(agentId),
      send: (h, event) => host.sendIfAccepted(h, event),
      warm,
      removeQuietly: (sandboxId) => runFork(Effect.ignore(removeQuietly(sandboxId))),
      removeNow: removeQuietly
    })
    const onSandboxEvent = liveness.onSandboxEvent
    // Subscribed before the runtime is handed out, so no event of its sandboxes falls in between.
    yield* Effect.forkIn(liveness.followEvents, scope, { startImmediately: true })
    if (lifecycle.health_check_interval_seconds > 0) {
      yield* Effect.forkIn(liveness.checkEvery(lifecycle.health_check_interval_seconds), scope)
    }

    const health = (agentId: string): Effect.Effect<HealthStatus, RuntimeError> =>
      Effect.map(getState(agentId), (instance) => liveness.healthOf(instance, heartbeats, heartbeatTimeoutMs(instance.config)))

    // ---- recovery ----------------------------------------------------------------------------------
    yield* recoverAgents({
      store,
      backend,
      runtimeId: options.runtimeId,
      host,
      tokenBudget,
      onSandboxEvent,
      watchHeartbeat,
      warm,
      removeQuietly
    })

    if (options.fillWarmPools !== false) yield* warm.start
    yield* Effect.addFinalizer(() => warm.stop)
    yield* Effect.addFinalizer(() =>
      Effect.promise(async () => {
        closed = true
        heartbeats.stopAll()
        host.stop()
        fleet.stop()
        await host.allWritten()
      }).pipe(Effect.andThen(PubSub.shutdown(hub)))
    )

    const fleetStatus = Effect.sync((): FleetStatus => {
      const byState: Record<string, number> = {}
      let hibernated = 0
      for (const h of host.entries()) {
        byState[h.state] = (byState[h.state] ?? 0) + 1
        if (h.actor === undefined) hibernated += 1
      }
      const fleetContext = fleet.getSnapshot().context
      return {
        runtimeId: options.runtimeId,
        backend: options.backendName,
        total: host.size(),
        byState,
        hibernated,
        pendingRestarts: Object.keys(fleetContext.pendingRestarts).length,
        restartsTotal: fleetContext.restartsTotal
      }
    })

    const config_ = config
    const trustOf = (agentId: string) => host.get(agentId)?.sandbox.trustLevel ?? "unknown"
    const shape: AgentRuntimeShape = {
      runtimeId: options.runtimeId,
      spawn: (raw, initialContext, policy) =>
        spawn(raw, initialContext, undefined, policy).pipe(
          Effect.tap((r) => Effect.annotateCurrentSpan({ "l02.agent_id": r.agentId, "l02.state": r.state })),
          traced("l02.spawn", {
            "l02.agent.name": String((raw as { name?: unknown } | null)?.name ?? ""),
            "l02.trust_level": String((raw as { trustLevel?: unknown } | null)?.trustLevel ?? "")
          })
        ),
      terminate: (agentId, opts) => traced("l02.terminate", { "l02.agent_id": agentId, "l02.trust_level": trustOf(agentId), "l02.force": opts?.force === true })(terminate(agentId, opts)),
      suspend: (agentId, opts = {}) =>
        traced("l02.suspend", { "l02.agent_id": agentId, "l02.trust_level": trustOf(agentId), "l02.checkpoint": opts.checkpoint === true })(suspend(agentId, opts)),
      resume: (agentId, checkpointId) =>
        traced("l02.resume", { "l02.agent_id": agentId, "l02.trust_level": trustOf(agentId), ...(checkpointId === undefined ? {} : { "l02.checkpoint_id": checkpointId }) })(
          resume(agentId, checkpointId)
        ),
      getState,
      list,
      execute: (agentId, input, opts) =>
        execute(agentId, input, opts).pipe(
          Stream.withSpan("l02.execute", { attributes: { ...spanBase, "l02.agent_id": agentId, "l02.trust_level": trustOf(agentId) } }),
          (stream) => (options.tracer === undefined ? stream : Stream.provideService(stream, Tracer.Tracer, options.tracer))
        ),
      events: Stream.fromPubSub(hub),
      fleetStatus,
      health,
      pools: Effect.sync(() => warm.status()),
      resizePool: (name, size) =>
        Effect.gen(function* () {
          const resized = warm.resize(name, size)
          if (resized === undefined) {
            return yield* new InputInvalid({ message: `no warm pool named ${JSON.stringify(name)}; the pools are ${[...warm.pools.keys()].join(", ") || "none (config pools.warm)"}`, key: "name" })
          }
          if (typeof resized === "string") return yield* new InputInvalid({ message: resized, key: "size" })
          yield* warm.trim(name)
          return warm.status().find((p) => p.name === name)!
        }),
      scale: (pool, replicas, opts) => traced("l02.scale", { "l02.pool": pool, "l02.replicas": replicas })(scale(pool, replicas, opts)),
      fleetOperations: (limit) => store.listFleetOperations(limit),
      checkpoints: (agentId) => Effect.andThen(getState(agentId), checkpoints.list(agentId)),
      flush: Effect.promise(host.allWritten),
      actorOf: (agentId) => {
        const h = host.get(agentId)
        return h === undefined || h.state === "terminated" ? Option.none() : Option.some(host.live(h))
      }
    }
    return shape
  })


/** The runtime as a Layer over the four ports. */
export const layer = (
  config: RuntimeConfig,
  options: AgentRuntimeOptions
): Layer.Layer<AgentRuntime, RuntimeError, SandboxBackend | StateStore | CheckpointStore | EventLog | SecretStore> =>
  Layer.effect(AgentRuntime, make(config, options))
