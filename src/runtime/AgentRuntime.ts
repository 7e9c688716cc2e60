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
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as PubSub from "effect/PubSub"
import * as Schedule from "effect/Schedule"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Tracer from "effect/Tracer"
import { type Snapshot } from "xstate"
import { agentMachine, type AgentContext } from "../../machines/agentMachine.ts"
import { AgentConfig } from "../domain/AgentConfig.ts"
import type {  } from "../domain/AgentInstance.ts"
import type { AgentActivity, AgentState } from "../domain/AgentState.ts"
import type {  } from "../domain/ErrorCatalog.ts"
import {
  
  ConfigInvalid,
  
  
  InputInvalid,
  
  ResourceLimitsInvalid,
  
  type RuntimeError,
  
  
  
  
  toErrorData
} from "../domain/Errors.ts"
import type {  } from "../domain/Checkpoint.ts"
import type { FleetStatus } from "../domain/FleetStatus.ts"
import type {  } from "../domain/PoolStatus.ts"
import type { HealthStatus } from "../domain/HealthStatus.ts"
import {  } from "../domain/Ids.ts"
import type { LifecycleEvent } from "../domain/LifecycleEvent.ts"
import { resolveSandbox } from "../domain/resolveSandbox.ts"
import type { RuntimeConfig } from "../domain/RuntimeConfig.ts"
import type { SandboxConfiguration } from "../domain/SandboxConfiguration.ts"
import { CheckpointStore } from "../services/CheckpointStore.ts"
import { EventLog } from "../services/EventLog.ts"
import { SandboxBackend } from "../services/SandboxBackend.ts"
import { AtomicWrites, StateStore } from "../services/StateStore.ts"
import { makeActorHost, type SnapshotWrite } from "./ActorHost.ts"
import {  } from "./EffectBridge.ts"
import { makeFairAdmission } from "./internal/fairAdmission.ts"
import {  } from "./internal/heartbeats.ts"
import { makeQuietPeriods, memoryReducingGc } from "./internal/memoryReducer.ts"
import { makeWarmPools, WarmLabels, type WarmPool } from "./internal/warmPools.ts"
import type {  } from "./internal/modelExecution.ts"
import {  } from "./internal/programProtocol.ts"
import { makeSandboxEffects } from "./internal/sandboxEffects.ts"
import { makeFleetSupervision } from "./internal/fleetSupervision.ts"
import { makeDefectReporter } from "./internal/defects.ts"
import { makeAgentHeartbeats, makeReconciliation } from "./internal/liveness.ts"
import { recoverAgents } from "./internal/recovery.ts"
import { makeAgentAccess } from "./internal/agentAccess.ts"
import { makeLifecycleOperations } from "./internal/lifecycleOperations.ts"
import type { RuntimeCore } from "./internal/runtimeCore.ts"
import { makeScale } from "./internal/scaleOperation.ts"
import { makeQueries } from "./internal/queries.ts"
import { makeExecute } from "./internal/executeStep.ts"
import { activityOf, type AgentHandle, recordOf, stateOf } from "./internal/agentHandle.ts"
import type {  } from "../execution/AgentLoop.ts"
import * as TokenBudget from "../execution/TokenBudget.ts"
import { checkDeclarations, declaredResourcesOf } from "../domain/ConfigReferences.ts"
import { SecretStore } from "../services/SecretStore.ts"
import type { OperatorResources } from "./internal/modelExecution.ts"
import { checkSpawnPolicy } from "./SpawnPolicy.ts"
import { type AgentRuntimeOptions, type AgentRuntimeShape } from "./AgentRuntimeApi.ts"

export type { Clock } from "./ActorHost.ts"

export {
  type AgentRuntimeOptions,
  type AgentRuntimeShape,
  type ExecuteEvent,
  type ExecuteOptions,
  poolLabel,
  type ScaleOptions,
  type SuspendOptions,
  type TerminateOptions
} from "./AgentRuntimeApi.ts"

/** The runtime as an Effect service. */
export class AgentRuntime extends Context.Service<AgentRuntime, AgentRuntimeShape>()("l02/AgentRuntime") {}

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

    const access = makeAgentAccess({ host, store, isClosed: () => closed })

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
    const core: RuntimeCore = {
      config,
      runtimeId: options.runtimeId,
      backendName: options.backendName,
      backend,
      store,
      checkpoints,
      host,
      access,
      now,
      iso,
      publish,
      isClosed: () => closed,
      declared,
      operatorResources,
      admission,
      warm,
      tokenBudget,
      backendCanPause
    }
    const { spawn, terminate, suspend, resume } = makeLifecycleOperations(core)

    const scale = makeScale(core, { spawn, terminate })

    const { getState, list } = makeQueries(core)
    const execute = makeExecute(core, resume)

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
