/**
 * The agent entity on its owner: activated when the first message for the agent reaches the runner
 * that owns its shard (or when the shard comes here after its previous owner died: the agent's
 * persisted keep-alive is redelivered), it hosts the agent in the local runtime (restored from the
 * store, its sandbox adopted) and keeps the entity alive until the agent ends. The engine closes
 * the entity when the shard leaves; the agent is then released here, its sandbox kept for the next
 * owner.
 */
import type * as Sharding from "effect/cluster/Sharding"
import * as Entity from "effect/cluster/Entity"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import type { RuntimeError } from "../domain/Errors.ts"
import { AgentRuntime } from "../runtime/AgentRuntime.ts"
import type { SuspendOptions, TerminateOptions } from "../runtime/AgentRuntimeApi.ts"
import type { SpawnPolicy } from "../runtime/SpawnPolicy.ts"
import { AgentEntity, RemoteFailure } from "./AgentEntity.ts"

/** A coded error as data for the caller's runner. */
export const toRemote = (error: RuntimeError): RemoteFailure => {
  const fields: Record<string, unknown> = { message: error.message }
  for (const [name, value] of Object.entries(error)) if (value !== undefined && typeof value !== "function") fields[name] = value
  return new RemoteFailure({ code: error.code, fields: asJson(fields) as Record<string, unknown> })
}

/** A value as the JSON it crosses runners as (undefined fields dropped). */
export const asJson = (value: unknown): unknown => (value === undefined ? null : JSON.parse(JSON.stringify(value)))

/** The entity's handlers over the local runtime (which must host with `hosting: "cluster"`). */
export const agentEntityLayer = AgentEntity.toLayer(
  Effect.gen(function* () {
    const local = yield* AgentRuntime
    const hosting = local.hosting
    if (hosting === undefined) return yield* Effect.die(new Error("the agent entity needs a runtime made with hosting: \"cluster\""))
    const agentId = (yield* Entity.CurrentAddress).entityId
    const runner = yield* Entity.CurrentRunnerAddress
    const hostedBy = `${runner.host}:${runner.port}`
    const context = yield* Effect.context<Sharding.Sharding | Entity.CurrentAddress>()
    let kept = false
    /** Kept alive (and so redelivered to the next owner) exactly while the agent is hosted here. */
    const keepAlive = Effect.suspend(() => {
      const hosted = hosting.isHosted(agentId)
      if (hosted === kept) return Effect.void
      kept = hosted
      return Entity.keepAlive(hosted).pipe(Effect.provideContext(context))
    })
    const adoption = yield* Effect.orDie(hosting.adopt(agentId))
    if (adoption === "hosted") yield* keepAlive
    yield* Effect.addFinalizer(() => hosting.release(agentId, true))
    const remote = <A>(effect: Effect.Effect<A, RuntimeError>) => effect.pipe(Effect.map(asJson), Effect.mapError(toRemote), Effect.ensuring(keepAlive))
    return AgentEntity.of({
      spawn: ({ payload }) => remote(hosting.spawnAs(agentId, payload.config, payload.initialContext ?? undefined, (payload.policy ?? undefined) as SpawnPolicy | undefined)),
      terminate: ({ payload }) =>
        remote(local.terminate(agentId, (payload.options ?? {}) as TerminateOptions).pipe(Effect.as(null))).pipe(
          // The agent ended: its entity may go idle once its end is written.
          Effect.ensuring(Effect.andThen(local.flush, keepAlive))
        ),
      suspend: ({ payload }) => remote(Effect.map(local.suspend(agentId, (payload.options ?? {}) as SuspendOptions), (checkpointId) => checkpointId ?? null)),
      resume: ({ payload }) => remote(local.resume(agentId, payload.checkpointId)),
      getState: () => remote(Effect.map(local.getState(agentId), (instance) => ({ ...instance, hostedBy }))),
      health: () => remote(local.health(agentId)),
      checkpoints: () => remote(local.checkpoints(agentId)),
      execute: ({ payload }) =>
        local
          .execute(agentId, payload.input, {
            ...(payload.timeoutMs === undefined ? {} : { timeoutMs: payload.timeoutMs }),
            ...(payload.cancelOnDisconnect === undefined ? {} : { cancelOnDisconnect: payload.cancelOnDisconnect })
          })
          .pipe(Stream.map(asJson), Stream.mapError(toRemote)),
      startRun: ({ payload }) => remote(local.runs.start(agentId, payload.input, payload.timeoutMs === undefined ? {} : { timeoutMs: payload.timeoutMs })),
      cancelRun: ({ payload }) => remote(local.runs.cancel(payload.runId))
    })
  }),
  { concurrency: "unbounded" }
)
