/**
 * The Effect-native runtime: runs every agent as a root XState actor of the agent machine, supervised by
 * one fleet actor, with every side effect going through the injected services.
 *
 * Guarantees:
 * - An operation the agent's state does not accept fails with E2020 and changes nothing: the runtime
 *   asks the actor (`snapshot.can`) before sending anything.
 * - An operation's intent (a spawn's record) is written before its event is sent and before any side
 *   effect; a store that refuses it refuses the operation with E2060 and nothing changes.
 * - A transition is persisted (StateStore, EventLog) before the operation that caused it is
 *   acknowledged; a write the store refuses is tried again until it goes in.
 * - After a restart the runtime reloads its agents from the store, settles operations whose end was
 *   not written (completed or rolled back by what the sandbox shows), re-checks their sandboxes and
 *   reaps sandboxes it owns that no live agent claims.
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import { checkDeclarations, declaredResourcesOf } from "../domain/ConfigReferences.ts"
import type { RuntimeError } from "../domain/Errors.ts"
import type { HealthStatus } from "../domain/HealthStatus.ts"
import type { LifecycleEvent } from "../domain/LifecycleEvent.ts"
import type { RuntimeConfig } from "../domain/RuntimeConfig.ts"
import * as TokenBudget from "../execution/TokenBudget.ts"
import { CheckpointStore } from "../services/CheckpointStore.ts"
import { EventLog } from "../services/EventLog.ts"
import { SandboxBackend } from "../services/SandboxBackend.ts"
import { SecretStore } from "../services/SecretStore.ts"
import { AtomicWrites, StateStore } from "../services/StateStore.ts"
import type { AgentRuntimeOptions, AgentRuntimeShape } from "./AgentRuntimeApi.ts"
import { makeAgentAccess } from "./internal/agentAccess.ts"
import { recordOf } from "./internal/agentHandle.ts"
import { makeExecuteStep } from "./internal/executeStep.ts"
import { makeExecutionRuns } from "./internal/executionRuns.ts"
import { makeMemory as runLogInMemory, RunLog } from "../services/RunLog.ts"
import { makeFairAdmission } from "./internal/fairAdmission.ts"
import { makeLifecycleOperations } from "./internal/lifecycleOperations.ts"
import { makeReconciliation } from "./internal/liveness.ts"
import type { OperatorResources } from "./internal/modelExecution.ts"
import { makeQueries } from "./internal/queries.ts"
import { recoverAgents, type RecoveryDeps } from "./internal/recovery.ts"
import { makeAgentHosting } from "./internal/agentHosting.ts"
import { canPauseOf, type RuntimeCore } from "./internal/runtimeCore.ts"
import { superviseAgents } from "./internal/agentSupervision.ts"
import { makeScale } from "./internal/scaleOperation.ts"
import { makeSpans } from "./internal/spans.ts"
import { makeRuntimeEvents } from "./internal/runtimeEvents.ts"
import { runtimeFacade } from "./internal/runtimeFacade.ts"
import { makeRuntimeWarmPools } from "./internal/warmPoolSetup.ts"

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
    let closed = false
    const spans = makeSpans(options)
    const runtimeEvents = yield* makeRuntimeEvents({ config, now, iso, eventLog, checkpoints, spans, reduceMemory: options.reduceMemory })
    const { publish } = runtimeEvents
    for (const work of runtimeEvents.background) yield* Effect.forkIn(work, scope)

    // ---- the agents: hosted, their side effects provided, supervised ------------------------------------
    let suspendAgent: ((agentId: string) => Effect.Effect<unknown, RuntimeError>) | undefined
    const { host, heartbeats, heartbeatTimeoutMs, fleet, specFor, removeQuietly } = superviseAgents({
      config,
      options,
      backend,
      checkpoints,
      services,
      now,
      random,
      iso,
      record: runtimeEvents.record,
      fork: (effect) => runFork(effect),
      suspendIdle: (agentId) => {
        if (suspendAgent !== undefined) runFork(Effect.ignore(suspendAgent(agentId)))
      },
      write: (entries, events) =>
        run(
          Effect.gen(function* () {
            const appended = yield* writeBatchOf.saveAgentsAndAppend(entries.map((h) => recordOf(h, options.runtimeId)), events)
            if (appended.length > 0) publish(appended)
          })
        )
    })
    const watchHeartbeat = heartbeats.watch

    const access = makeAgentAccess({ host, store, isClosed: () => closed })

    // ---- operations --------------------------------------------------------------------------------
    const tokenBudget = yield* TokenBudget.makeMemory
    const backendCanPause = canPauseOf(backend)
    const admission = makeFairAdmission(lifecycle.max_concurrent_spawns, lifecycle.spawn_queue_limit)

    // ---- warm pools --------------------------------------------------------------------------------
    const warm = yield* makeRuntimeWarmPools({
      config, backend, declared, specFor, removeQuietly, admission, fork: (effect) => runFork(effect), backendCanPause
    })

    const core: RuntimeCore = {
      config, runtimeId: options.runtimeId, backendName: options.backendName, backend, store, checkpoints, host, access, now, iso, publish,
      isClosed: () => closed, declared, operatorResources, admission, warm, tokenBudget, backendCanPause
    }
    const { spawn, checkSpawn, terminate, suspend, resume } = makeLifecycleOperations(core)
    suspendAgent = (agentId) => suspend(agentId, {})

    const scale = makeScale(core, { spawn, terminate })

    const { getState, list } = makeQueries(core)
    /** Events of something the runtime hosts besides agents' states (runs, workflow runs): logged, then published. */
    const recordEvents = (events: ReadonlyArray<LifecycleEvent>) => Effect.tap(eventLog.append(events), (recorded) => Effect.sync(() => publish(recorded)))

    // Every execute step is a durable run (its events in the store's run log; in memory without one).
    const runLog = Option.getOrElse(yield* Effect.serviceOption(RunLog), runLogInMemory)
    const runs = makeExecutionRuns({
      runLog,
      runtimeId: options.runtimeId,
      iso,
      now,
      agentStateOf: (agentId) => host.get(agentId)?.state ?? "unknown",
      begin: makeExecuteStep(core, resume),
      scope,
      retention: { seconds: config.execution.stream_retention_seconds, runsPerAgent: config.execution.stream_retention_runs },
      maxBytes: config.execution.stream_max_bytes,
      recordEvents: (events) => void runFork(Effect.ignore(recordEvents(events)))
    })
    const execute = runs.execute
    yield* Effect.addFinalizer(() => runs.shutdown)

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

    // ---- recovery: every agent at start, or (a cluster runner) each when its shard comes here ---------
    const recovery: RecoveryDeps = {
      store, backend, checkpoints, iso, runtimeId: options.runtimeId, host, tokenBudget, onSandboxEvent, watchHeartbeat, warm, removeQuietly
    }
    const hosting = options.hosting === "cluster"
      ? makeAgentHosting({
        recovery,
        spawn,
        backendName: options.backendName,
        stopHeartbeat: heartbeats.stop,
        scaleWith: (ops) => makeScale(core, ops),
        onAdopted: (agentId) => Effect.ignore(runs.interruptStale({ agentId })),
        onReleased: runs.releaseAgent
      })
      : undefined
    if (hosting === undefined) {
      yield* recoverAgents(recovery)
      // Runs the store says are running ran in an earlier process of this runtime: they were interrupted.
      yield* runs.interruptStale({ runtimeId: options.runtimeId })
    }
    // Ended runs past their retention go at start, then every ten minutes.
    yield* Effect.ignore(runs.prune)
    yield* Effect.forkIn(Effect.forever(Effect.andThen(Effect.sleep("10 minutes"), Effect.ignore(runs.prune))), scope)

    if (options.fillWarmPools !== false) yield* warm.start
    yield* Effect.addFinalizer(() => warm.stop)
    yield* Effect.addFinalizer(() =>
      Effect.promise(async () => {
        closed = true
        heartbeats.stopAll()
        host.stop()
        fleet.stop()
        await host.allWritten()
      }).pipe(Effect.andThen(runtimeEvents.shutdown))
    )

    return runtimeFacade(core, {
      spans,
      operations: { spawn, terminate, suspend, resume, scale, getState, list, execute, health },
      runs,
      events: runtimeEvents.stream,
      history: (query) => eventLog.query(query),
      checkSpawn: (raw, policy) => Effect.asVoid(checkSpawn(raw, policy)),
      recordEvents,
      fleetContext: () => fleet.getSnapshot().context,
      hosting
    })
  })


/** The runtime as a Layer over the four ports. */
export const layer = (
  config: RuntimeConfig,
  options: AgentRuntimeOptions
): Layer.Layer<AgentRuntime, RuntimeError, SandboxBackend | StateStore | CheckpointStore | EventLog | SecretStore> =>
  Layer.effect(AgentRuntime, make(config, options))
