/**
 * Hosting one agent at a time, for a cluster runner: the agents of the shards it owns are hosted
 * here (restored from the store, their sandboxes adopted) and released when the shards go. The
 * runtime itself then recovers nothing at start: which agents it hosts is the cluster's business.
 */
import { randomUUID } from "node:crypto"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type { SpawnResult } from "../../domain/AgentInstance.ts"
import type { RuntimeError, SandboxError, StoreFailed } from "../../domain/Errors.ts"
import type { FleetOperation } from "../../services/StateStore.ts"
import type { ScaleOptions } from "../AgentRuntimeApi.ts"
import type { SpawnPolicy } from "../SpawnPolicy.ts"
import type { ScaleOps } from "./scaleOperation.ts"
import type { AdmitAs } from "./lifecycleOperations.ts"
import { recoverAgent, type RecoveryDeps } from "./recovery.ts"

/** What an agent's owner found of it when it took it. */
export type Adoption = "hosted" | "absent" | "terminated"

/** How a cluster runner hosts and releases single agents. */
export interface AgentHosting {
  /**
   * Hosts the stored agent here unless it already is: restored from its persisted snapshot, an
   * operation whose end was not written settled, its sandbox made to agree with its state. "absent"
   * when the store does not know it, "terminated" when it ended.
   */
  readonly adopt: (agentId: string) => Effect.Effect<Adoption, StoreFailed | SandboxError>
  /**
   * Stops hosting the agent here; its sandbox keeps running for the next owner. `handOver`: its
   * queued writes reach the store first (a shard handed over on shutdown); without (the shard was
   * lost), they are dropped, so nothing is written over the new owner's state.
   */
  readonly release: (agentId: string, handOver: boolean) => Effect.Effect<void>
  /** Spawns with the id the runner that accepted the spawn chose; a second call with it spawns nothing. */
  readonly spawnAs: (agentId: string, raw: unknown, initialContext: unknown, policy: SpawnPolicy | undefined) => Effect.Effect<SpawnResult, RuntimeError>
  /** Whether the agent is hosted here now. */
  readonly isHosted: (agentId: string) => boolean
  /** The scale operation over the fleet's agents and spawns and terminations that reach their owners. */
  readonly scaleWith: (ops: ScaleOps) => (pool: string, replicas: number, options?: ScaleOptions) => Effect.Effect<FleetOperation, RuntimeError>
}

/** The hosting of one runtime over its recovery, spawn and heartbeats. */
export const makeAgentHosting = (deps: {
  readonly recovery: RecoveryDeps
  readonly spawn: (raw: unknown, initialContext: unknown, admitAs: AdmitAs, policy: SpawnPolicy | undefined) => Effect.Effect<SpawnResult, RuntimeError>
  readonly backendName: string
  readonly stopHeartbeat: (agentId: string) => void
  readonly scaleWith: AgentHosting["scaleWith"]
  /** After an agent came here: what its former owner left running (its execute runs) is ended. */
  readonly onAdopted: (agentId: string) => Effect.Effect<void>
  /** Before an agent leaves: what runs here for it (its execute runs) is ended. */
  readonly onReleased: (agentId: string) => Effect.Effect<void>
}): AgentHosting => {
  // Each hosting of an agent claims a token of its own in the store and writes with it: the writes of
  // an earlier hosting (a runner paused past its lease, an actor released here) change nothing.
  const newToken = () => randomUUID()
  const { host, store } = deps.recovery
  // One adoption per agent at a time: a second caller waits for the first's.
  const adopting = new Map<string, Deferred.Deferred<Adoption, StoreFailed | SandboxError>>()

  const adoptOnce = (agentId: string): Effect.Effect<Adoption, StoreFailed | SandboxError> =>
    Effect.gen(function* () {
      if (host.has(agentId)) return "hosted" as const
      const found = yield* store.getAgent(agentId)
      if (Option.isNone(found)) return "absent" as const
      if (found.value.state === "terminated") return "terminated" as const
      if (host.has(agentId)) return "hosted" as const
      // Claimed first: from now on the former owner (paused past its lease, say) writes nothing over it.
      const token = newToken()
      yield* store.claimAgent(agentId, token)
      const settled = yield* recoverAgent(deps.recovery, { ...found.value, hostToken: token })
      if (settled) yield* Effect.promise(() => host.written(agentId).catch(() => undefined))
      yield* deps.onAdopted(agentId)
      return "hosted" as const
    })

  return {
    adopt: (agentId) =>
      Effect.suspend(() => {
        const running = adopting.get(agentId)
        if (running !== undefined) return Deferred.await(running)
        const done = Deferred.makeUnsafe<Adoption, StoreFailed | SandboxError>()
        adopting.set(agentId, done)
        return Effect.flatMap(Effect.exit(adoptOnce(agentId)), (exit) => {
          adopting.delete(agentId)
          Deferred.doneUnsafe(done, exit)
          return exit
        })
      }),
    release: (agentId, handOver) =>
      Effect.gen(function* () {
        const h = host.get(agentId)
        if (h === undefined) return
        yield* deps.onReleased(agentId)
        if (handOver) yield* Effect.promise(() => host.persisted(h))
        deps.stopHeartbeat(agentId)
        host.forget(h)
      }),
    spawnAs: (agentId, raw, initialContext, policy) =>
      Effect.gen(function* () {
        // Accepted twice (the accepting runner retried, or the message was redelivered after a crash):
        // the agent that exists is the answer.
        const adoption = yield* adoptOnce(agentId)
        if (adoption !== "absent") {
          // A spawn its previous owner had begun goes on here (recovery starts a pending one): its answer
          // is where it ends, as the first delivery's would have been.
          const begun = host.get(agentId)
          if (begun !== undefined) yield* host.waitFor(begun, () => begun.state !== "pending" && begun.state !== "spawning")
          const h = host.get(agentId)
          const stored = h === undefined ? Option.getOrUndefined(yield* store.getAgent(agentId)) : undefined
          const state = h?.state ?? stored?.state ?? "terminated"
          const sandboxId = h?.lastContext.sandboxId ?? stored?.sandboxId
          const sandbox = h?.sandbox ?? stored!.sandbox
          return {
            agentId,
            sessionId: h?.sessionId ?? stored!.sessionId,
            state,
            ...(sandboxId === undefined ? {} : { sandboxId }),
            sandbox,
            backend: deps.backendName
          } satisfies SpawnResult
        }
        return yield* deps.spawn(raw, initialContext, { session: agentId, priority: "normal", agentId, hostToken: newToken() }, policy)
      }),
    isHosted: (agentId) => host.has(agentId),
    scaleWith: deps.scaleWith
  }
}
