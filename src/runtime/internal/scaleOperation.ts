/**
 * Scaling a pool of agents (label `pool.l02.dev/name`): a fleet operation recorded before it starts
 * and when it ends. Growing spawns from a template (or a member's config), queued for admission as
 * one session at the operation's priority; shrinking terminates failed agents first, then the newest.
 * A template the caller may not spawn is refused before the operation is recorded.
 */
import { randomUUID } from "node:crypto"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type { AgentConfig } from "../../domain/AgentConfig.ts"
import type { SpawnResult } from "../../domain/AgentInstance.ts"
import { InputInvalid, ResourceLimitsInvalid, type RuntimeError } from "../../domain/Errors.ts"
import { resolveSandbox } from "../../domain/resolveSandbox.ts"
import type { FleetOperation } from "../../services/StateStore.ts"
import { poolLabel, type ScaleOptions, type TerminateOptions } from "../AgentRuntimeApi.ts"
import { checkSpawnPolicy, type SpawnPolicy } from "../SpawnPolicy.ts"
import { type AdmitAs, decodeConfig } from "./lifecycleOperations.ts"
import type { RuntimeCore } from "./runtimeCore.ts"

/** A pool's member as scaling sees it. */
export interface PoolMember {
  readonly agentId: string
  readonly config: AgentConfig
  readonly state: string
  readonly createdAt: string
}

/** What scaling spawns, terminates and counts with. */
export interface ScaleOps {
  readonly spawn: (raw: unknown, initialContext?: unknown, admitAs?: AdmitAs, policy?: SpawnPolicy) => Effect.Effect<SpawnResult, RuntimeError>
  readonly terminate: (agentId: string, options?: TerminateOptions) => Effect.Effect<void, RuntimeError>
  /**
   * The agents of the fleet (default: those this runtime hosts); a cluster runner counts the whole
   * fleet's from the store, and spawns and terminates through the agents' owners.
   */
  readonly agents?: (() => Effect.Effect<ReadonlyArray<PoolMember>, RuntimeError>) | undefined
}

/** The scale operation over the runtime's core and its spawn and terminate. */
export const makeScale = (core: RuntimeCore, ops: ScaleOps) => {
  const { host, store, iso, declared, publish } = core
  const { spawn, terminate } = ops
  const agents = ops.agents ?? (() => Effect.sync((): ReadonlyArray<PoolMember> => [...host.entries()]))
  const lifecycle = core.config.lifecycle
  const poolName = /^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/
  const scale = (pool: string, replicas: number, opts: ScaleOptions = {}): Effect.Effect<FleetOperation, RuntimeError> =>
    Effect.gen(function* () {
      if (!poolName.test(pool)) {
        return yield* new InputInvalid({ message: `pool name ${JSON.stringify(pool)} must be 1-63 letters, digits, '-', '_' or '.'`, key: "pool" })
      }
      if (!Number.isInteger(replicas) || replicas < 0 || replicas > 10_000) {
        return yield* new InputInvalid({ message: `replicas must be a whole number from 0 to 10000, got ${replicas}`, key: "replicas" })
      }
      const members = (yield* agents()).filter(
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
        const sandbox = resolveSandbox(template!, core.config)
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
          const order = (h: PoolMember) => (h.state === "failed" ? 0 : 1)
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
  return scale
}
