/**
 * The runtime as its callers see it ({@link AgentRuntimeShape}): each operation in its span (with
 * the agent, its trust level and, on failure, the error's code), the fleet's status, the warm pools,
 * fleet operations, checkpoints and the live actors for inspection.
 */
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import type { AgentInstance, SpawnResult } from "../../domain/AgentInstance.ts"
import type { AgentState } from "../../domain/AgentState.ts"
import { InputInvalid, type RuntimeError } from "../../domain/Errors.ts"
import type { FleetStatus } from "../../domain/FleetStatus.ts"
import type { HealthStatus } from "../../domain/HealthStatus.ts"
import type { LifecycleEvent } from "../../domain/LifecycleEvent.ts"
import type { AgentFilter, FleetOperation } from "../../services/StateStore.ts"
import type { AgentRuntimeShape, ExecuteEvent, ExecuteOptions, RunsShape, ScaleOptions, SuspendOptions, TerminateOptions } from "../AgentRuntimeApi.ts"
import type { SpawnPolicy } from "../SpawnPolicy.ts"
import type { AgentHosting } from "./agentHosting.ts"
import type { AdmitAs } from "./lifecycleOperations.ts"
import type { RuntimeCore } from "./runtimeCore.ts"
import { agentIdOf, attachOptionsOf, checkpointIdOf, executeOptionsOf, runIdOf, runQueryOf, suspendOptionsOf, terminateOptionsOf } from "./callInput.ts"
import type { Spans } from "./spans.ts"

/** The operations the facade wraps. */
export interface RuntimeOperations {
  readonly spawn: (raw: unknown, initialContext?: unknown, admitAs?: AdmitAs, policy?: SpawnPolicy) => Effect.Effect<SpawnResult, RuntimeError>
  readonly terminate: (agentId: string, options?: TerminateOptions) => Effect.Effect<void, RuntimeError>
  readonly suspend: (agentId: string, options?: SuspendOptions) => Effect.Effect<string | undefined, RuntimeError>
  readonly resume: (agentId: string, checkpointId?: string) => Effect.Effect<AgentState, RuntimeError>
  readonly scale: (pool: string, replicas: number, options?: ScaleOptions) => Effect.Effect<FleetOperation, RuntimeError>
  readonly getState: (agentId: string) => Effect.Effect<AgentInstance, RuntimeError>
  readonly list: (filter?: AgentFilter) => Effect.Effect<ReadonlyArray<AgentInstance>, RuntimeError>
  readonly execute: (agentId: string, input: unknown, options?: ExecuteOptions) => Stream.Stream<ExecuteEvent, RuntimeError>
  readonly health: (agentId: string) => Effect.Effect<HealthStatus, RuntimeError>
}

/** The public shape of a runtime over its core and operations. */
export const runtimeFacade = (
  core: RuntimeCore,
  parts: {
    readonly spans: Spans
    readonly operations: RuntimeOperations
    readonly events: Stream.Stream<LifecycleEvent>
    readonly history: AgentRuntimeShape["history"]
    readonly recordEvents: AgentRuntimeShape["recordEvents"]
    readonly checkSpawn: AgentRuntimeShape["checkSpawn"]
    readonly fleetContext: () => { readonly pendingRestarts: Readonly<Record<string, unknown>>; readonly restartsTotal: number }
    readonly hosting?: AgentHosting | undefined
    readonly runs: RunsShape
  }
): AgentRuntimeShape => {
  const { host, warm, store, checkpoints } = core
  const { traced } = parts.spans
  const { spawn, terminate, suspend, resume, scale, getState, list, execute, health } = parts.operations
  const spans = parts.spans
  const fleetStatus = Effect.sync((): FleetStatus => {
    const byState: Record<string, number> = {}
    let hibernated = 0
    for (const h of host.entries()) {
      byState[h.state] = (byState[h.state] ?? 0) + 1
      if (h.actor === undefined) hibernated += 1
    }
    const fleetContext = parts.fleetContext()
    return {
      runtimeId: core.runtimeId,
      backend: core.backendName,
      total: host.size(),
      byState,
      hibernated,
      pendingRestarts: Object.keys(fleetContext.pendingRestarts).length,
      restartsTotal: fleetContext.restartsTotal
    }
  })

  const trustOf = (agentId: unknown) => (typeof agentId === "string" ? host.get(agentId.toLowerCase())?.sandbox.trustLevel : undefined) ?? "unknown"
  /** The id as a span attribute: a string as given, anything else (which is refused) as a placeholder; never a conversion that can throw. */
  const idAttribute = (agentId: unknown) => (typeof agentId === "string" ? agentId.slice(0, 100) : "(not an id)")
  /** A config field as a span attribute, the same way (the config itself is checked by spawn). */
  const textAttribute = (value: unknown) => (typeof value === "string" ? value.slice(0, 100) : "")
  /** Runs `op` with the agent id checked and canonical (E2001 for anything that is not one). */
  const withId = <A>(agentId: unknown, op: (id: string) => Effect.Effect<A, RuntimeError>) => Effect.flatMap(agentIdOf(agentId), op)
  const shape: AgentRuntimeShape = {
    runtimeId: core.runtimeId,
    spawn: (raw, initialContext, policy) =>
      spawn(raw, initialContext, undefined, policy).pipe(
        Effect.tap((r) => Effect.annotateCurrentSpan({ "l02.agent_id": r.agentId, "l02.state": r.state })),
        traced("l02.spawn", {
          "l02.agent.name": textAttribute((raw as { name?: unknown } | null)?.name),
          "l02.trust_level": textAttribute((raw as { trustLevel?: unknown } | null)?.trustLevel)
        })
      ),
    terminate: (agentId, opts) =>
      traced("l02.terminate", { "l02.agent_id": idAttribute(agentId), "l02.trust_level": trustOf(agentId), "l02.force": opts?.force === true })(
        withId(agentId, (id) => Effect.flatMap(terminateOptionsOf(opts), (o) => terminate(id, o)))
      ),
    suspend: (agentId, opts) =>
      traced("l02.suspend", { "l02.agent_id": idAttribute(agentId), "l02.trust_level": trustOf(agentId), "l02.checkpoint": opts?.checkpoint === true })(
        withId(agentId, (id) => Effect.flatMap(suspendOptionsOf(opts), (o) => suspend(id, o ?? {})))
      ),
    resume: (agentId, checkpointId) =>
      traced("l02.resume", { "l02.agent_id": idAttribute(agentId), "l02.trust_level": trustOf(agentId), ...(typeof checkpointId === "string" ? { "l02.checkpoint_id": checkpointId } : {}) })(
        withId(agentId, (id) => Effect.flatMap(checkpointIdOf(checkpointId), (c) => resume(id, c)))
      ),
    getState: (agentId) => withId(agentId, getState),
    list,
    execute: (agentId, input, opts) =>
      Stream.unwrap(withId(agentId, (id) => Effect.map(executeOptionsOf(opts), (o) => execute(id, input, o)))).pipe(
        spans.tracedStream("l02.execute", { "l02.agent_id": idAttribute(agentId), "l02.trust_level": trustOf(agentId) })
      ),
    runs: {
      start: (agentId, input, opts) =>
        traced("l02.run.start", { "l02.agent_id": idAttribute(agentId), "l02.trust_level": trustOf(agentId) })(
          withId(agentId, (id) => Effect.flatMap(executeOptionsOf(opts), (o) => parts.runs.start(id, input, o)))
        ),
      attach: (runId, opts) => Stream.unwrap(Effect.flatMap(runIdOf(runId), (id) => Effect.map(attachOptionsOf(opts), (o) => parts.runs.attach(id, o)))),
      get: (runId) => Effect.flatMap(runIdOf(runId), parts.runs.get),
      list: (query) => Effect.flatMap(runQueryOf(query), parts.runs.list),
      cancel: (runId) => traced("l02.run.cancel", { "l02.run_id": idAttribute(runId) })(Effect.flatMap(runIdOf(runId), parts.runs.cancel))
    },
    events: parts.events,
    history: parts.history,
    recordEvents: parts.recordEvents,
    checkSpawn: parts.checkSpawn,
    fleetStatus,
    health: (agentId) => withId(agentId, health),
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
    checkpoints: (agentId) => withId(agentId, (id) => Effect.andThen(getState(id), checkpoints.list(id))),
    flush: Effect.promise(host.allWritten),
    actorOf: (agentId) => {
      const h = typeof agentId === "string" ? host.get(agentId.toLowerCase()) : undefined
      return h === undefined || h.state === "terminated" ? Option.none() : Option.some(host.live(h))
    },
    hosting: parts.hosting
  }
  return shape
}
