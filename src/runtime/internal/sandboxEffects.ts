/**
 * The side effects of the agent machine: provisioning (or claiming a warm sandbox), pausing or
 * checkpointing, unpausing or restoring, stopping; each a named actor provided to the machine
 * through the Effect bridge. The transient state of a pause, an unpause or a warm claim is written
 * with the transition that ends it (recovery reconciles a host that died in between).
 */
import { randomUUID } from "node:crypto"
import type * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import { agentMachine, type ProvisionInput, type ResumeInput, type StopInput, type SuspendInput } from "../../../machines/agentMachine.ts"
import type { AgentConfig } from "../../domain/AgentConfig.ts"
import type { AgentState } from "../../domain/AgentState.ts"
import { fromErrorData, SuspendFailed } from "../../domain/Errors.ts"
import { OwnershipLabels } from "../../domain/Ids.ts"
import type { RuntimeConfig } from "../../domain/RuntimeConfig.ts"
import type { SandboxConfiguration } from "../../domain/SandboxConfiguration.ts"
import type { CheckpointStore, CheckpointStoreShape } from "../../services/CheckpointStore.ts"
import type { EventLog } from "../../services/EventLog.ts"
import type { SandboxBackend, SandboxBackendShape, SandboxSpec } from "../../services/SandboxBackend.ts"
import type { StateStore } from "../../services/StateStore.ts"
import { fromEffect } from "../EffectBridge.ts"

/** What the side effects need: the ports, the configuration, and when an agent's writes are done. */
export interface SandboxEffectsDeps {
  readonly backend: SandboxBackendShape
  readonly checkpoints: CheckpointStoreShape
  readonly services: Context.Context<SandboxBackend | StateStore | CheckpointStore | EventLog>
  readonly runtimeId: string
  readonly lifecycle: RuntimeConfig["lifecycle"]
  readonly now: () => number
  /** The command of an agent whose config names none. */
  readonly defaultCommand?: ((config: AgentConfig) => ReadonlyArray<string> | undefined) | undefined
  readonly heartbeatTimeoutMs: (config: AgentConfig) => number
}

/** The sandbox spec of an agent (or of a warm sandbox made for the agent id that will claim it). */
export const sandboxSpecOf = (
  deps: Pick<SandboxEffectsDeps, "runtimeId" | "defaultCommand" | "heartbeatTimeoutMs">,
  agent: { readonly agentId: string; readonly sessionId: string; readonly config: AgentConfig; readonly sandbox: SandboxConfiguration },
  extraLabels: Readonly<Record<string, string>> = {}
): SandboxSpec => ({
  agentId: agent.agentId,
  sessionId: agent.sessionId,
  runtimeId: deps.runtimeId,
  name: agent.config.name,
  image: agent.config.image,
  command: agent.config.command ?? deps.defaultCommand?.(agent.config),
  env: {
    ...agent.config.env,
    L02_AGENT_ID: agent.agentId,
    L02_SESSION_ID: agent.sessionId,
    // An agent that must send heartbeats is told how often: three per timeout.
    ...(deps.heartbeatTimeoutMs(agent.config) > 0 ? { L02_HEARTBEAT_MS: String(Math.max(100, Math.floor(deps.heartbeatTimeoutMs(agent.config) / 3))) } : {})
  },
  labels: {
    ...agent.config.labels,
    ...extraLabels,
    [OwnershipLabels.managedBy]: "l02",
    [OwnershipLabels.agentId]: agent.agentId,
    [OwnershipLabels.runtimeId]: deps.runtimeId,
    [OwnershipLabels.sessionId]: agent.sessionId
  },
  sandbox: agent.sandbox
})

const pausesOnly = (input: SuspendInput) => !input.checkpoint
const unpausesOnly = (input: ResumeInput) => input.sandboxId !== undefined
const claims = (input: ProvisionInput) => input.replaceSandboxId === undefined && input.claim !== undefined
/** True when the transition need not be written on its own: a pause or unpause, or a spawn that claimed a warm sandbox. */
export const writeMayWait = (state: AgentState, snapshot: object): boolean => {
  const children = (snapshot as { readonly children?: Record<string, unknown> }).children ?? {}
  const inputOf = (id: string) => (children[id] as { getSnapshot?: () => { input?: unknown } } | undefined)?.getSnapshot?.().input
  // A spawn that claims a warm sandbox: its creation and intent go with its running state.
  if (state === "spawning") {
    const input = inputOf("provision") as ProvisionInput | undefined
    return input !== undefined && claims(input)
  }
  if (state === "suspending") {
    const input = inputOf("suspend") as SuspendInput | undefined
    return input !== undefined && pausesOnly(input)
  }
  if (state === "resuming") {
    const input = inputOf("resume") as ResumeInput | undefined
    return input !== undefined && unpausesOnly(input)
  }
  return false
}

/** The sandbox operations behind the machine's actors. */
const makeSandboxOperations = (deps: SandboxEffectsDeps) => {
  const { backend, checkpoints, lifecycle, now } = deps
  const specFor = (agent: Parameters<typeof sandboxSpecOf>[1], extraLabels?: Readonly<Record<string, string>>) => sandboxSpecOf(deps, agent, extraLabels)

  const removeQuietly = (sandboxId: string) =>
    backend.remove(sandboxId).pipe(Effect.catchTag("SandboxNotFound", () => Effect.void))

  /** Removes every sandbox of this runtime labelled with the agent's id except `keep`. */
  const reapAgentSandboxes = (agentId: string, keep?: string) =>
    backend.list({ [OwnershipLabels.agentId]: agentId, [OwnershipLabels.runtimeId]: deps.runtimeId }).pipe(
      Effect.flatMap((found) =>
        Effect.forEach(
          found.filter((s) => s.sandboxId !== keep),
          (s) => removeQuietly(s.sandboxId),
          { discard: true }
        )
      )
    )

  const provisionSandbox = (input: ProvisionInput) =>
    Effect.gen(function* () {
      const claim = input.claim
      if (claim !== undefined && input.replaceSandboxId === undefined) {
        // A warm sandbox made for this agent id: only its pause stands between it and running.
        const taken = yield* (claim.paused ? backend.unpause(claim.sandboxId) : Effect.void).pipe(
          Effect.as(true),
          Effect.catch(() => Effect.as(Effect.ignore(removeQuietly(claim.sandboxId)), false))
        )
        if (taken) return { sandboxId: claim.sandboxId }
      }
      if (input.replaceSandboxId !== undefined) yield* removeQuietly(input.replaceSandboxId)
      // Nothing is imported before this start: a backend may start the program at once.
      const created = yield* backend.provision({ ...specFor(input.agent), startImmediately: true })
      const started = yield* backend.start(created.sandboxId).pipe(
        // A failure or an interruption (onError sees both).
        Effect.onError(() => Effect.ignore(removeQuietly(created.sandboxId)))
      )
      return { sandboxId: started.sandboxId }
    })

  const suspendSandbox = (input: SuspendInput) =>
    Effect.gen(function* () {
      const h = input.agent
      if (input.sandboxId === undefined) {
        return yield* new SuspendFailed({ message: "the agent has no sandbox to suspend", agentId: h.agentId })
      }
      if (!input.checkpoint) {
        yield* backend.pause(input.sandboxId)
        return { checkpointId: undefined as string | undefined, sandboxRemoved: false }
      }
      const caps = yield* backend.capabilities
      const workspace = caps.workspaceArchive ? yield* backend.exportWorkspace(input.sandboxId) : undefined
      const checkpointId: string = randomUUID()
      yield* checkpoints.save({
        checkpointId,
        agentId: h.agentId,
        sessionId: h.sessionId,
        checkpointType: "suspend",
        content: { actorState: { context: input.context, initialContext: h.initialContext }, workspace },
        expiresAt: lifecycle.checkpoint_ttl_seconds > 0 ? new Date(now() + lifecycle.checkpoint_ttl_seconds * 1000).toISOString() : undefined
      })
      yield* backend.stop(input.sandboxId, { graceMs: lifecycle.graceful_shutdown_seconds * 1000 })
      yield* removeQuietly(input.sandboxId)
      return { checkpointId, sandboxRemoved: true }
    }).pipe(
      Effect.mapError((e) =>
        e._tag === "SuspendFailed" ? e : new SuspendFailed({ message: `suspend failed: ${e.message}`, agentId: input.agent.agentId })
      )
    )

  const resumeSandbox = (input: ResumeInput) =>
    Effect.gen(function* () {
      const h = input.agent
      if (input.sandboxId !== undefined) {
        yield* backend.unpause(input.sandboxId)
        return { sandboxId: input.sandboxId }
      }
      if (input.checkpointId === undefined) {
        return yield* Effect.fail(
          fromErrorData({ code: "E2024", message: "the agent has neither a paused sandbox nor a checkpoint to resume from", retryable: false }, h.agentId)
        )
      }
      const { checkpoint, content } = yield* checkpoints.load(input.checkpointId)
      if (checkpoint.agentId !== h.agentId) {
        return yield* Effect.fail(
          fromErrorData(
            { code: "E2024", message: `checkpoint ${input.checkpointId} belongs to agent ${checkpoint.agentId}, not ${h.agentId}`, retryable: false },
            h.agentId
          )
        )
      }
      yield* reapAgentSandboxes(h.agentId)
      const created = yield* backend.provision(specFor(h))
      // A failed import or start leaves nothing behind: the agent stays suspended on its checkpoint.
      const started = yield* Effect.andThen(
        content.workspace === undefined ? Effect.void : backend.importWorkspace(created.sandboxId, content.workspace),
        backend.start(created.sandboxId)
      ).pipe(
        // A failure or an interruption (onError sees both).
        Effect.onError(() => Effect.ignore(removeQuietly(created.sandboxId)))
      )
      return { sandboxId: started.sandboxId }
    }).pipe(
      Effect.mapError((e) =>
        e.code === "E2024" ? e : fromErrorData({ code: "E2024", message: `resume failed (${e.code}): ${e.message}`, retryable: false }, input.agent.agentId)
      )
    )

  // In-flight provisioning by agent id, interrupted (and awaited) before a stop so no sandbox leaks.
  const provisioning = new Map<string, Fiber.Fiber<unknown, unknown>>()
  const stopSandbox = (input: StopInput) =>
    Effect.gen(function* () {
      const inFlight = provisioning.get(input.agentId)
      if (inFlight !== undefined) yield* Fiber.interrupt(inFlight)
      const sandboxId = input.sandboxId
      if (sandboxId === undefined) return yield* reapAgentSandboxes(input.agentId)
      // A forced stop is the removal itself (every backend's remove ends a running sandbox); a graceful
      // one lets the program go first. Any other sandbox of the agent is looked for meanwhile.
      const end = input.force
        ? removeQuietly(sandboxId)
        : Effect.andThen(
          backend.stop(sandboxId, { graceMs: input.graceMs }).pipe(Effect.catchTag("SandboxNotFound", () => Effect.void)),
          removeQuietly(sandboxId)
        )
      yield* Effect.all([end, reapAgentSandboxes(input.agentId, sandboxId)], { concurrency: 2, discard: true })
    })
  const provisionTracked = (input: ProvisionInput) =>
    Effect.gen(function* () {
      const agentId = input.agent.agentId
      const fiber = yield* Effect.forkDetach(provisionSandbox(input))
      provisioning.set(agentId, fiber)
      return yield* Fiber.join(fiber).pipe(
        Effect.onInterrupt(() => Fiber.interrupt(fiber)),
        Effect.ensuring(Effect.sync(() => provisioning.get(agentId) === fiber && provisioning.delete(agentId)))
      )
    })
  return { specFor, removeQuietly, reapAgentSandboxes, provisionTracked, suspendSandbox, resumeSandbox, stopSandbox }
}

/**
 * The agent machine with its side effects, and the helpers the runtime shares with them. A side effect
 * does not wait for the write of the transient state that invoked it: what makes it safe is written
 * before its event is sent (a spawn's record, an operation's intent, a failed agent's record before a
 * restart), so a host that dies during it leaves a record recovery completes or rolls back.
 */
export const makeSandboxEffects = (deps: SandboxEffectsDeps) => {
  const { services } = deps
  const { specFor, removeQuietly, reapAgentSandboxes, provisionTracked, suspendSandbox, resumeSandbox, stopSandbox } = makeSandboxOperations(deps)
  const provided = agentMachine.provide({
    actors: {
      provisionSandbox: fromEffect(services, provisionTracked),
      suspendSandbox: fromEffect(services, suspendSandbox),
      resumeSandbox: fromEffect(services, resumeSandbox),
      stopSandbox: fromEffect(services, stopSandbox)
    }
  })

  return { specFor, removeQuietly, reapAgentSandboxes, writeMayWait, machine: provided }
}
