/**
 * The runtime as a cluster runner's callers see it: every operation on one agent goes to the agent
 * entity, which the engine delivers to the runner owning the agent's shard (this one or another),
 * and answers as a local call would (the same values, the same coded errors, execute as a stream).
 * What spans the fleet reads the shared store: list, history, fleet operations, the fleet's status
 * (counted over every agent, with how many this runner hosts) and the lifecycle events of every runner
 * (read from the event log as they are written).
 */
import { randomUUID } from "node:crypto"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Queue from "effect/Queue"
import * as Stream from "effect/Stream"
import type { AgentInstance, SpawnResult } from "../domain/AgentInstance.ts"
import type { AgentState } from "../domain/AgentState.ts"
import type { ErrorCode } from "../domain/ErrorCatalog.ts"
import { errorCatalog } from "../domain/ErrorCatalog.ts"
import { ClusterUnavailable, reviveError, type RuntimeError } from "../domain/Errors.ts"
import type { Checkpoint } from "../domain/Checkpoint.ts"
import type { HealthStatus } from "../domain/HealthStatus.ts"
import type { LifecycleEvent } from "../domain/LifecycleEvent.ts"
import type { AgentRuntimeShape, ExecuteEvent } from "../runtime/AgentRuntimeApi.ts"
import type { ExecutionRun } from "../domain/ExecutionRun.ts"
import { agentIdOf, checkpointIdOf, executeOptionsOf, suspendOptionsOf, terminateOptionsOf } from "../runtime/operationInput.ts"
import type { AgentEntity } from "./AgentEntity.ts"
import { asJson as json } from "./agentEntityLayer.ts"

type Client = Effect.Success<typeof AgentEntity.client>

/** The caller's side of a failure: a coded error from the owner rebuilt, the engine's own as E2034. */
const fromCall = (agentId: string) => (error: unknown): RuntimeError => {
  if (typeof error === "object" && error !== null && (error as { _tag?: unknown })._tag === "RemoteFailure") {
    const { code, fields } = error as { code: string; fields: Record<string, unknown> }
    if (errorCatalog.has(code as ErrorCode)) return reviveError(code as ErrorCode, fields)
  }
  const what = typeof error === "object" && error !== null ? String((error as { _tag?: unknown })._tag ?? "") : ""
  return new ClusterUnavailable({
    message: `the runner hosting agent ${agentId} could not be reached (${what || String(error)}); nothing was done, retry: a dead runner's shards move to the others within cluster.lease_seconds`,
    agentId
  })
}

/** How often a runner's event stream reads the shared event log for the others' events. */
const eventPollMs = 250
/** How many ids below the highest one sent each read looks at again (events committed late). */
const eventLookBack = 200

/** The routed shape over the local runtime and the entity's client. */
export const routedRuntime = (local: AgentRuntimeShape, client: Client): AgentRuntimeShape => {
  const call = <A>(agentId: string, f: (c: ReturnType<Client>) => Effect.Effect<unknown, unknown>): Effect.Effect<A, RuntimeError> =>
    f(client(agentId)).pipe(
      Effect.mapError(fromCall(agentId)),
      Effect.catchDefect((defect) => Effect.fail(fromCall(agentId)(defect))),
      Effect.map((value) => value as A)
    )
  const withId = <A>(agentId: unknown, op: (id: string) => Effect.Effect<A, RuntimeError>) => Effect.flatMap(agentIdOf(agentId), op)

  /**
   * Every runner's lifecycle events, from the shared event log, as they are written. Ids come from one
   * sequence but commit out of order across runners (a lower id can become visible after a higher
   * one): each read goes back `eventLookBack` ids and skips those already sent.
   */
  const fleetEvents = Stream.callback<LifecycleEvent>((queue) =>
    Effect.gen(function* () {
      const startedAfter = (yield* Effect.orElseSucceed(local.history({ latest: true, limit: 1 }), () => []))[0]?.eventId ?? 0
      let after = startedAfter
      const sent = new Set<number>()
      const poll = Effect.gen(function* () {
        for (;;) {
          const from = Math.max(0, after - eventLookBack)
          const batch = yield* Effect.orElseSucceed(local.history({ afterId: from, limit: 1000 + eventLookBack }), () => [])
          let fresh = 0
          for (const event of batch) {
            const id = event.eventId ?? 0
            // Those written before the stream began are history (runtime.history), not news.
            if (id <= startedAfter || sent.has(id)) continue
            sent.add(id)
            fresh += 1
            Queue.offerUnsafe(queue, event)
            after = Math.max(after, id)
          }
          for (const id of sent) if (id <= after - eventLookBack) sent.delete(id)
          if (fresh < 1000) yield* Effect.sleep(`${eventPollMs} millis`)
        }
      })
      yield* Effect.forkScoped(poll)
    })
  )

  const routed: AgentRuntimeShape = {
    ...local,
    events: fleetEvents,
    fleetStatus: Effect.gen(function* () {
      const here = yield* local.fleetStatus
      const agents = yield* Effect.orElseSucceed(local.list(), () => [])
      const byState: Record<string, number> = {}
      let total = 0
      for (const a of agents) {
        if (a.state === "terminated") continue
        total += 1
        byState[a.state] = (byState[a.state] ?? 0) + 1
      }
      return { ...here, total, byState, hostedHere: here.total }
    }),
    spawn: (raw, initialContext, policy) =>
      Effect.gen(function* () {
        // Refused here as on the owner (the owner checks again), before anything is sent.
        yield* local.checkSpawn(raw, policy)
        const agentId = randomUUID()
        return yield* call<SpawnResult>(agentId, (c) =>
          c.spawn({ requestId: agentId, config: json(raw), initialContext: json(initialContext), policy: json(policy) })
        )
      }),
    terminate: (agentId, opts) =>
      withId(agentId, (id) => Effect.flatMap(terminateOptionsOf(opts), (o) => Effect.asVoid(call(id, (c) => c.terminate({ requestId: randomUUID(), options: json(o ?? {}) }))))),
    suspend: (agentId, opts) =>
      withId(agentId, (id) =>
        Effect.flatMap(suspendOptionsOf(opts), (o) =>
          Effect.map(call<string | null>(id, (c) => c.suspend({ requestId: randomUUID(), options: json(o ?? {}) })), (checkpointId) => checkpointId ?? undefined)
        )
      ),
    resume: (agentId, checkpointId) =>
      withId(agentId, (id) =>
        Effect.flatMap(checkpointIdOf(checkpointId), (c) =>
          call<AgentState>(id, (client) => client.resume({ requestId: randomUUID(), ...(c === undefined ? {} : { checkpointId: c }) }))
        )
      ),
    getState: (agentId) => withId(agentId, (id) => call<AgentInstance>(id, (c) => c.getState())),
    health: (agentId) => withId(agentId, (id) => call<HealthStatus>(id, (c) => c.health())),
    checkpoints: (agentId) => withId(agentId, (id) => call<ReadonlyArray<Checkpoint>>(id, (c) => c.checkpoints())),
    execute: (agentId, input, opts) =>
      Stream.unwrap(
        withId(agentId, (id) =>
          Effect.map(executeOptionsOf(opts), (o) => {
            // A caller with a signal cancels by leaving: the owner cancels the run when this stream ends early.
            const cancelOnDisconnect = o?.cancelOnDisconnect === true || o?.signal !== undefined
            const events = client(id).execute({
              input: json(input),
              ...(o?.timeoutMs === undefined ? {} : { timeoutMs: o.timeoutMs }),
              ...(cancelOnDisconnect ? { cancelOnDisconnect } : {})
            }).pipe(
              Stream.mapError(fromCall(id)),
              Stream.catchCause((cause) => (Cause.hasDies(cause) ? Stream.fail(fromCall(id)(Cause.squash(cause))) : Stream.failCause(cause as Cause.Cause<RuntimeError>))),
              Stream.map((event) => event as ExecuteEvent)
            )
            const signal = o?.signal
            // Aborting the caller's signal ends the stream, which cancels the run on the owner.
            return signal === undefined
              ? events
              : Stream.interruptWhen(events, Effect.callback<void>((resume) => {
                if (signal.aborted) return resume(Effect.void)
                const onAbort = () => resume(Effect.void)
                signal.addEventListener("abort", onAbort, { once: true })
                return Effect.sync(() => signal.removeEventListener("abort", onAbort))
              }))
          })
        )
      ),
    runs: {
      ...local.runs,
      // A run starts on the agent's owner; its record and events are in the shared store, so get, list
      // and attach answer on any runner.
      start: (agentId, input, opts) =>
        withId(agentId, (id) =>
          Effect.flatMap(executeOptionsOf(opts), (o) =>
            call<ExecutionRun>(id, (c) => c.startRun({ input: json(input), ...(o?.timeoutMs === undefined ? {} : { timeoutMs: o.timeoutMs }) })).pipe(
              // A signal does not cross runners: its abort cancels the run through its owner.
              Effect.tap((run) =>
                Effect.sync(() => {
                  const signal = o?.signal
                  if (signal === undefined) return
                  const onAbort = () => void Effect.runFork(Effect.ignore(routed.runs.cancel(run.runId)))
                  if (signal.aborted) onAbort()
                  else signal.addEventListener("abort", onAbort, { once: true })
                })
              )
            )
          )
        ),
      cancel: (runId) =>
        Effect.gen(function* () {
          const run = yield* local.runs.get(runId)
          if (run.status !== "running") return run
          return yield* call<ExecutionRun>(run.agentId, (c) => c.cancelRun({ runId: run.runId }))
        })
    }
  }
  // A pool is the fleet's: its members are counted over every runner, its spawns and terminations
  // reach each agent's owner; the operation itself runs once, on the runner asked.
  const scale = local.hosting?.scaleWith({
    spawn: (raw, initialContext, _admitAs, policy) => routed.spawn(raw, initialContext, policy),
    terminate: (agentId, options) => routed.terminate(agentId, options),
    agents: () => local.list()
  })
  return scale === undefined ? routed : { ...routed, scale }
}
