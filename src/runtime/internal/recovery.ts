/**
 * Recovery at start: every agent this runtime id left in the store (not terminated) is restored
 * from its persisted snapshot (an operation whose end was not written settled first, see
 * intentRecovery), and its sandbox made to agree with its state: a paused sandbox of a
 * running agent is unpaused, a running sandbox of a suspended agent paused, a gone sandbox reported
 * as an exit (the fleet restarts it per policy), a step that died with the previous process ended,
 * and a spawn accepted but not started, started. Then every sandbox this runtime owns that no agent
 * claims is reaped, except warm ones, which go back to their pool.
 */
import { randomUUID } from "node:crypto"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type { agentMachine } from "../../../machines/agentMachine.ts"
import type { SandboxError, StoreFailed } from "../../domain/Errors.ts"
import { OwnershipLabels } from "../../domain/Ids.ts"
import type { Conversation } from "../../execution/AgentLoop.ts"
import type * as TokenBudget from "../../execution/TokenBudget.ts"
import type { CheckpointStoreShape } from "../../services/CheckpointStore.ts"
import type { SandboxBackendShape, SandboxEvent, SandboxInfo } from "../../services/SandboxBackend.ts"
import type { AgentRecord, StateStoreShape } from "../../services/StateStore.ts"
import type { ActorHost } from "../ActorHost.ts"
import { type AgentHandle, newAgentHandle, restorableMachineOf } from "./agentHandle.ts"
import { settleIntent } from "./intentRecovery.ts"
import { WarmLabels } from "./warmPools.ts"

/** What recovery restores into and reconciles against. */
export interface RecoveryDeps {
  readonly store: StateStoreShape
  readonly backend: SandboxBackendShape
  readonly checkpoints: CheckpointStoreShape
  readonly iso: () => string
  readonly runtimeId: string
  readonly host: ActorHost<typeof agentMachine, AgentHandle>
  readonly tokenBudget: TokenBudget.TokenBudgetShape
  readonly onSandboxEvent: (event: Pick<SandboxEvent, "sandboxId" | "agentId" | "type" | "exitCode" | "forkRefused">) => void
  readonly watchHeartbeat: (h: AgentHandle) => void
  readonly warm: { readonly adopt: (sandbox: SandboxInfo, sessionId: string) => boolean }
  readonly removeQuietly: (sandboxId: string) => Effect.Effect<void, SandboxError>
}

/** The handle of a stored agent, its actor restored from the persisted snapshot. */
const restore = (deps: RecoveryDeps, r: AgentRecord) =>
  Effect.gen(function* () {
    const saved = r.snapshot as { machine?: unknown; initialContext?: unknown; conversation?: Conversation; tokenUsage?: ReadonlyArray<TokenBudget.UsageEntry> } | null
    const h = newAgentHandle({
      agentId: r.agentId,
      sessionId: r.sessionId,
      config: r.config,
      sandbox: r.sandbox,
      initialContext: saved?.initialContext ?? null,
      createdAt: r.createdAt,
      updatedAt: r.updatedAt,
      terminatedAt: r.terminatedAt,
      state: r.state,
      conversation: saved?.conversation,
      tokenUsage: saved?.tokenUsage,
      ...(r.hostToken === undefined ? {} : { hostToken: r.hostToken })
    })
    deps.host.add(h)
    deps.host.start(h, saved?.machine === undefined ? undefined : restorableMachineOf(saved.machine, h))
    if (h.tokenUsage !== undefined) yield* deps.tokenBudget.restore(h.agentId, h.tokenUsage)
    return h
  })

/** Makes a restored agent's sandbox agree with its state. */
const reconcileSandbox = (deps: RecoveryDeps, h: AgentHandle) =>
  Effect.gen(function* () {
    // A spawn acknowledged as accepted but not yet started when the previous host died: start it now.
    if (h.state === "pending") deps.host.live(h).send({ type: "agent.spawn" })
    const sandboxId = h.lastContext.sandboxId
    if (sandboxId === undefined || (h.state !== "running" && h.state !== "suspended")) return
    const info = yield* deps.backend.inspect(sandboxId).pipe(
      Effect.map(Option.some),
      Effect.catchTag("SandboxNotFound", () => Effect.succeed(Option.none()))
    )
    const gone = Option.isNone(info) || info.value.status === "exited" || info.value.status === "removed"
    if (!gone && info.value.status === "paused" && h.state === "running") {
      yield* Effect.ignore(deps.backend.unpause(sandboxId))
    } else if (!gone && info.value.status === "running" && h.state === "suspended") {
      yield* Effect.ignore(deps.backend.pause(sandboxId))
    }
    if (gone) {
      deps.onSandboxEvent({
        sandboxId,
        agentId: h.agentId,
        type: Option.isNone(info) || info.value.status === "removed" ? "removed" : info.value.oomKilled === true ? "oom" : "exited",
        exitCode: Option.isSome(info) ? info.value.exitCode : undefined,
        forkRefused: Option.isSome(info) ? info.value.forkRefused : undefined
      })
      return
    }
    // The step that made it busy died with the previous host process.
    if (h.state === "running" && h.activity === "busy") deps.host.live(h).send({ type: "agent.idle" })
    deps.watchHeartbeat(h)
  })

/** Reaps sandboxes this runtime owns that no live agent claims; warm ones nobody claimed go back to their pool. */
const reapUnclaimed = (deps: RecoveryDeps) =>
  Effect.gen(function* () {
    const owned = yield* deps.backend.list({ [OwnershipLabels.runtimeId]: deps.runtimeId })
    for (const s of owned) {
      if (!deps.host.has(s.agentId) && s.labels[WarmLabels.pool] !== undefined) {
        if (!deps.warm.adopt(s, s.labels[OwnershipLabels.sessionId] ?? randomUUID())) yield* Effect.ignore(deps.removeQuietly(s.sandboxId))
        continue
      }
      const h = deps.host.get(s.agentId)
      const claimed = h !== undefined && (h.lastContext.sandboxId === s.sandboxId || h.state === "spawning" || h.state === "resuming")
      if (!claimed) yield* Effect.ignore(deps.removeQuietly(s.sandboxId))
    }
  })

/**
 * Restores one stored agent (not terminated) and reconciles its sandbox: an operation whose end was
 * not written is completed or rolled back first (intentRecovery). True when something was settled
 * (its write queued).
 */
export const recoverAgent = (deps: RecoveryDeps, found: AgentRecord): Effect.Effect<boolean, StoreFailed | SandboxError> =>
  Effect.gen(function* () {
    const settled = yield* settleIntent(deps, found)
    const r = Option.isSome(settled) ? settled.value.record : found
    const h = yield* restore(deps, r)
    if (Option.isSome(settled)) {
      deps.host.persist(h, [settled.value.event])
      const { intent } = settled.value
      if (settled.value.terminate) deps.host.live(h).send({ type: "agent.terminate", reason: intent.reason, force: intent.force })
    }
    yield* reconcileSandbox(deps, h)
    return Option.isSome(settled)
  })

/** Restores every stored agent of this runtime and reconciles it, then reaps what nobody claims. */
export const recoverAgents = (deps: RecoveryDeps): Effect.Effect<void, StoreFailed | SandboxError> =>
  Effect.gen(function* () {
    const stored = yield* deps.store.listAgents({ runtimeId: deps.runtimeId })
    let settledAny = false
    for (const found of stored) {
      if (found.state === "terminated") continue
      if (yield* recoverAgent(deps, found)) settledAny = true
    }
    // What was settled is in the store before the runtime is handed out (a refusal is tried again later).
    if (settledAny) yield* Effect.promise(() => deps.host.allWritten())
    yield* reapUnclaimed(deps)
  })
