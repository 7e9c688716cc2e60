/**
 * The lifecycle operations of one agent: spawn (decode and check the config, admit it fairly, claim
 * a warm sandbox or provision one, acknowledge once it runs and is written), terminate, suspend and
 * resume. Each writes what it is about to do before anything changes (a spawn's record, an
 * operation's intent: a store that refuses it refuses the operation with E2060, nothing changed),
 * sends its event only if the agent's state accepts it (E2020 otherwise), waits for the states that
 * end it, and resolves after they are written. An end the store refuses is E2060 saying what took
 * effect; the record is written again until the store takes it.
 */
import { randomUUID } from "node:crypto"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Schema from "effect/Schema"
import type { AgentEvent } from "../../../machines/agentMachine.ts"
import { AgentConfig } from "../../domain/AgentConfig.ts"
import type { SpawnResult } from "../../domain/AgentInstance.ts"
import type { AgentState } from "../../domain/AgentState.ts"
import {
  AdmissionRejected,
  ConfigInvalid,
  InputInvalid,
  InvalidTransition,
  ResourceLimitsInvalid,
  RuntimeClassUnavailable,
  type RuntimeError,
  ResumeFailed,
  RuntimeShutDown,
  SandboxConfigInvalid,
  StoreFailed
} from "../../domain/Errors.ts"
import { resolveSandbox } from "../../domain/resolveSandbox.ts"
import type { SuspendOptions, TerminateOptions } from "../AgentRuntimeApi.ts"
import { checkSpawnPolicy, type SpawnPolicy } from "../SpawnPolicy.ts"
import { checkAgentSecrets } from "./agentSecrets.ts"
import { newAgentHandle } from "./agentHandle.ts"
import type { AdmissionPriority } from "./fairAdmission.ts"
import type { AgentHandle } from "./agentHandle.ts"
import type { AgentIntent } from "./operationIntents.ts"
import type { RuntimeCore } from "./runtimeCore.ts"

/** Decodes an agent config completely; the first problem is E2042 (resources), E2040 (trust level) or E2001, naming the key. */
export const decodeConfig = (raw: unknown): Effect.Effect<AgentConfig, InputInvalid | ResourceLimitsInvalid | SandboxConfigInvalid> => {
  const exit = Schema.decodeUnknownExit(AgentConfig)(raw, { errors: "all", onExcessProperty: "error" })
  if (Exit.isSuccess(exit)) return Effect.succeed(exit.value)
  const failure = exit.cause.reasons.find(Cause.isFailReason)
  const text = failure === undefined ? "invalid agent config" : String((failure.error as { message?: unknown }).message ?? failure.error)
  const path = [...text.matchAll(/at \[([^\]]+)\]/g)].map((m) => m[1]!.replaceAll('"', "").replaceAll("][", ".")).find(() => true) ?? ""
  const message = `agent config ${path === "" ? "" : `key ${path} `}is invalid: ${text.replace(/\n\s*at \[.*$/s, "").replaceAll("\n", "; ")}`
  if (path.startsWith("resources")) return Effect.fail(new ResourceLimitsInvalid({ message, key: path }))
  if (path.startsWith("trustLevel")) return Effect.fail(new SandboxConfigInvalid({ message, key: path }))
  // The whole config at fault (not an object, say) is the argument itself.
  return Effect.fail(new InputInvalid({ message, key: path === "" ? "config" : path }))
}

const backendsFor = (runtimeClass: string): string =>
  runtimeClass === "runc"
    ? "the process, docker or kubernetes backend"
    : `the docker backend with a runtime mapped to ${runtimeClass} (docker.runtimes), or the kubernetes backend with RuntimeClass ${runtimeClass}`

/** How a spawn waits for admission: a fleet operation's spawns queue as one session, at its priority. */
export interface AdmitAs {
  readonly session: string
  readonly priority: AdmissionPriority
  /**
   * The id the agent gets, decided by whoever accepted the spawn (a cluster runner routing it to
   * the agent's owner); such a spawn claims no warm sandbox (those carry ids of their own).
   */
  readonly agentId?: string | undefined
  /** The store token of this hosting of the agent (a cluster runner's; see AgentHandle.hostToken). */
  readonly hostToken?: string | undefined
}

/** Spawn, terminate, suspend and resume over the runtime's core. */
export const makeLifecycleOperations = (core: RuntimeCore) => {
  const { backend, host, iso, admission, warm, declared } = core
  const { liveOrTerminated, sendChecked, waitFor, flushed, failIfError } = core.access
  const lifecycle = core.config.lifecycle

  /** Resolves once the agent's queued writes are in the store; the store's refusal is E2060 that `what` names. */
  const writtenOr = (h: AgentHandle, what: (error: StoreFailed) => string, named = true): Effect.Effect<void, StoreFailed> =>
    flushed(h).pipe(Effect.mapError((error) => new StoreFailed({ message: what(error), ...(named ? { agentId: h.agentId } : {}) })))

  /**
   * Sends an operation's event once its intent is in the store. Refused by the agent's state: E2020,
   * nothing written. Refused by the store: E2060, nothing sent, nothing changed.
   */
  const sendWithIntent = (h: AgentHandle, event: AgentEvent, intent: Omit<AgentIntent, "at">) =>
    Effect.gen(function* () {
      const operation = intent.operation
      // The state's refusal comes first, and writes nothing.
      if (!host.accepts(h, event)) return yield* sendChecked(h, event, operation)
      const previous = h.intent
      const written: AgentIntent = { ...intent, at: iso() }
      h.intent = written
      host.persist(h, [])
      yield* writtenOr(h, (error) => `${operation} refused, nothing changed: the store did not take the operation's intent (${error.message}); retry once the store answers`).pipe(
        Effect.tapError(() => Effect.sync(() => h.intent === written && (h.intent = previous)))
      )
      // The state may have changed while the intent was written (another operation): then E2020.
      yield* sendChecked(h, event, operation).pipe(
        Effect.tapError(() =>
          Effect.sync(() => {
            if (h.intent !== written) return
            h.intent = previous
            host.persist(h, [], true)
          })
        )
      )
    })

  /** Resolves once the operation's end is in the store; a refusal is E2060 saying what took effect. */
  const endWritten = (h: AgentHandle, operation: string) =>
    writtenOr(
      h,
      (error) =>
        `${operation} ended and agent ${h.agentId} is now ${h.state}, but the store did not take its record (${error.message}); the runtime writes it again until the store answers, nothing to redo`
    )

  /** Everything a spawn checks before it admits anything: the config, its sandbox, the caller's policy, secrets, runtime class. */
  const checkSpawn = (raw: unknown, policy?: SpawnPolicy) =>
    Effect.gen(function* () {
      const config = yield* decodeConfig(raw)
      const sandbox = resolveSandbox(config, core.config)
      if (sandbox instanceof ResourceLimitsInvalid) return yield* sandbox
      const refused = checkSpawnPolicy(config, sandbox.trustLevel, declared, policy)
      if (refused !== undefined) return yield* refused
      yield* checkAgentSecrets(config.model, core.operatorResources).pipe(
        // A caller outside the process learns that a key is missing, not where the supervisor keeps it.
        Effect.mapError((error) =>
          policy?.origin === "remote" && error._tag === "ConfigInvalid"
            ? new ConfigInvalid({ message: "a secret this agent's model or MCP servers use cannot be read by the supervisor now; ask its operator to provide it", key: "model" })
            : error
        )
      )
      const caps = yield* backend.capabilities
      if (!caps.runtimeClasses.includes(sandbox.runtimeClass)) {
        return yield* new RuntimeClassUnavailable({
          message: `trust level ${sandbox.trustLevel} needs runtime class ${sandbox.runtimeClass}, which the ${caps.name} backend does not have (it has: ${caps.runtimeClasses.join(", ") || "none"}); use ${backendsFor(sandbox.runtimeClass)}, or pick another trust level`,
          runtimeClass: sandbox.runtimeClass,
          key: "trustLevel"
        })
      }
      return { config, sandbox }
    })

  const spawn = (raw: unknown, initialContext?: unknown, admitAs?: AdmitAs, policy?: SpawnPolicy): Effect.Effect<SpawnResult, RuntimeError> =>
    Effect.gen(function* () {
      if (core.isClosed()) return yield* new RuntimeShutDown({ message: "the runtime was shut down; create a new one" })
      const { config, sandbox } = yield* checkSpawn(raw, policy)
      const admittedAs = config.sessionId ?? randomUUID()
      const release = yield* Effect.promise(() => admission.acquire(admitAs?.session ?? admittedAs, admitAs?.priority))
      if (release === undefined) {
        return yield* new AdmissionRejected({
          message: `${admission.waiting()} spawns are already waiting (lifecycle.spawn_queue_limit ${lifecycle.spawn_queue_limit}); retry later or raise the limit`
        })
      }
      yield* Effect.addFinalizer(() => Effect.sync(release))
      // A warm sandbox made from this very config becomes this agent's, with the id it was made for.
      const claim = admitAs?.agentId === undefined ? warm.claim(config) : undefined
      const sessionId = config.sessionId ?? claim?.sessionId ?? admittedAs
      const at = iso()
      const h = newAgentHandle({
        agentId: admitAs?.agentId ?? claim?.agentId ?? randomUUID(),
        sessionId,
        config,
        sandbox,
        initialContext: initialContext ?? null,
        createdAt: at,
        updatedAt: at,
        state: "pending",
        ...(admitAs?.hostToken === undefined ? {} : { hostToken: admitAs.hostToken })
      })
      host.add(h)
      host.start(h)
      // The record is written first, with its creation, before the backend is asked for anything: a
      // store that refuses it refuses the spawn, and the agent is forgotten (a claimed sandbox goes back).
      host.persist(h, [{ agentId: h.agentId, type: "agent.created", toState: "pending", data: { name: config.name }, at }])
      // The refused spawn's id names nothing, so the error names no agent.
      yield* writtenOr(h, (error) => `spawn refused, nothing changed: the store did not take the agent's record (${error.message}); retry once the store answers`, false).pipe(
        Effect.tapError(() =>
          Effect.sync(() => {
            host.forget(h)
            if (claim !== undefined) warm.giveBack(claim)
          })
        )
      )
      yield* sendChecked(h, { type: "agent.spawn", claim: claim === undefined ? undefined : { sandboxId: claim.sandboxId, paused: claim.paused } }, "spawn")
      const state = yield* waitFor(h, (s) => s === "running" || s === "failed" || s === "terminated")
      yield* endWritten(h, "spawn")
      yield* failIfError(h, state, ["running"], undefined)
      return {
        agentId: h.agentId,
        sessionId: h.sessionId,
        state,
        ...(h.lastContext.sandboxId === undefined ? {} : { sandboxId: h.lastContext.sandboxId }),
        sandbox,
        backend: core.backendName
      }
    }).pipe(Effect.scoped)

  const terminate = (agentId: string, opts: TerminateOptions = {}): Effect.Effect<void, RuntimeError> =>
    Effect.gen(function* () {
      const h = yield* liveOrTerminated(agentId, "terminate")
      yield* sendWithIntent(h, { type: "agent.terminate", reason: opts.reason, force: opts.force }, { operation: "terminate", force: opts.force, reason: opts.reason })
      const state = yield* waitFor(h, (s) => s === "terminated" || s === "failed")
      yield* endWritten(h, "terminate")
      yield* failIfError(h, state, ["terminated"], undefined)
    })

  const suspend = (agentId: string, opts: SuspendOptions = {}): Effect.Effect<string | undefined, RuntimeError> =>
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
      const canPause = yield* core.backendCanPause
      const checkpoint = opts.checkpoint === true || !canPause
      yield* sendWithIntent(h, { type: "agent.suspend", checkpoint }, { operation: "suspend", checkpoint })
      const state = yield* waitFor(h, (s) => s !== "suspending")
      yield* endWritten(h, "suspend")
      yield* failIfError(h, state, ["suspended"], before)
      return h.lastContext.checkpointId
    })

  /**
   * A checkpoint named to resume from must be one of the agent's own, and the agent must be one that
   * resumes from a checkpoint: a paused agent's sandbox is still there, and resuming it would ignore
   * the checkpoint. Refused with E2024, before anything changes.
   */
  const checkNamedCheckpoint = (h: { readonly agentId: string; readonly lastContext: { readonly sandboxId?: string | undefined } }, checkpointId: string) =>
    Effect.gen(function* () {
      const own = yield* core.checkpoints.list(h.agentId)
      if (!own.some((c) => c.checkpointId === checkpointId)) {
        return yield* new ResumeFailed({
          message: `agent ${h.agentId} has no checkpoint ${checkpointId} (it does not exist, expired, or belongs to another agent); list its checkpoints (runtime.checkpoints(agentId), GET /v1/agents/{id}/checkpoints), or resume without one`,
          agentId: h.agentId
        })
      }
      if (h.lastContext.sandboxId !== undefined) {
        return yield* new ResumeFailed({
          message: `agent ${h.agentId} is paused with its sandbox kept, so it resumes where it was, not from checkpoint ${checkpointId}; resume it without a checkpoint id`,
          agentId: h.agentId
        })
      }
    })

  const resume = (agentId: string, checkpointId?: string): Effect.Effect<AgentState, RuntimeError> =>
    Effect.gen(function* () {
      const h = yield* liveOrTerminated(agentId, "resume")
      // Only where a resume is allowed at all: elsewhere the state's refusal (E2020) is the answer.
      if (checkpointId !== undefined && h.state === "suspended") yield* checkNamedCheckpoint(h, checkpointId)
      const before = h.lastContext.lastError
      yield* sendWithIntent(h, { type: "agent.resume", checkpointId }, { operation: "resume", checkpointId })
      const state = yield* waitFor(h, (s) => s !== "resuming")
      yield* endWritten(h, "resume")
      yield* failIfError(h, state, ["running"], before)
      return state
    })


  return { spawn, checkSpawn, terminate, suspend, resume }
}
