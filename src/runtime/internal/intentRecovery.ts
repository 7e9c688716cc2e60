/**
 * Recovery of operations whose end was not written: a stored record that still holds an intent (see
 * operationIntents) is settled before its actor is restored, by what its sandbox shows. What finished
 * is completed (a paused sandbox: suspended; a checkpoint saved and its sandbox gone: suspended on it;
 * a resumed sandbox running: running; a terminate: carried out), what did not is rolled back to the
 * state the store holds, and either way an `agent.reconciled` event says what was found and done.
 */
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type { AgentContext } from "../../../machines/agentMachine.ts"
import type { AgentState } from "../../domain/AgentState.ts"
import type { ErrorData } from "../../domain/ErrorCatalog.ts"
import { OwnershipLabels } from "../../domain/Ids.ts"
import type { LifecycleEvent } from "../../domain/LifecycleEvent.ts"
import type { CheckpointStoreShape } from "../../services/CheckpointStore.ts"
import type { SandboxBackendShape, SandboxStatus } from "../../services/SandboxBackend.ts"
import type { AgentRecord } from "../../services/StateStore.ts"
import { type AgentIntent, intentOfSnapshot } from "./operationIntents.ts"

/** What settling a record's intent found and decided. */
export interface SettledIntent {
  /** The record to restore: its state and machine snapshot settled (unchanged for a terminate). */
  readonly record: AgentRecord
  readonly intent: AgentIntent
  /** The terminate to carry out once the actor is restored. */
  readonly terminate: boolean
  /** The `agent.reconciled` event to write with the settled record. */
  readonly event: LifecycleEvent
}

type StoredSnapshot = { readonly machine?: { readonly context?: Partial<AgentContext> } & Record<string, unknown> } & Record<string, unknown>

interface Settlement {
  readonly state: Extract<AgentState, "running" | "suspended">
  readonly outcome: "completed" | "rolled back"
  readonly sandboxId: string | undefined
  readonly checkpointId?: string | undefined
  readonly found: string
}

/** The status of a sandbox, `gone` when the backend no longer has it. */
const statusOf = (backend: SandboxBackendShape, sandboxId: string | undefined): Effect.Effect<SandboxStatus | "gone"> =>
  sandboxId === undefined
    ? Effect.succeed("gone")
    : backend.inspect(sandboxId).pipe(
      Effect.map((info): SandboxStatus | "gone" => (info.status === "removed" ? "gone" : info.status)),
      Effect.catch(() => Effect.succeed("gone" as const))
    )

const settleSuspend = (deps: IntentRecoveryDeps, r: AgentRecord, context: Partial<AgentContext>) =>
  Effect.gen(function* () {
    const status = yield* statusOf(deps.backend, context.sandboxId)
    if (status === "paused") return { state: "suspended", outcome: "completed", sandboxId: context.sandboxId, found: "its sandbox paused" } satisfies Settlement
    if (status === "running") return { state: "running", outcome: "rolled back", sandboxId: context.sandboxId, found: "its sandbox running" } satisfies Settlement
    // The sandbox is gone or stopped: a checkpoint the record does not know yet is the suspend's own.
    const saved = yield* deps.checkpoints.list(r.agentId).pipe(Effect.orElseSucceed(() => []))
    const latest = saved.filter((c) => c.checkpointType === "suspend").at(-1)
    if (latest !== undefined && latest.checkpointId !== context.checkpointId) {
      return { state: "suspended", outcome: "completed", sandboxId: undefined, checkpointId: latest.checkpointId, found: `checkpoint ${latest.checkpointId} saved and its sandbox ${status}` } satisfies Settlement
    }
    return { state: "running", outcome: "rolled back", sandboxId: context.sandboxId, found: `its sandbox ${status} and no new checkpoint` } satisfies Settlement
  })

const settleResume = (deps: IntentRecoveryDeps, r: AgentRecord, context: Partial<AgentContext>) =>
  Effect.gen(function* () {
    if (context.sandboxId !== undefined) {
      const status = yield* statusOf(deps.backend, context.sandboxId)
      return status === "running"
        ? ({ state: "running", outcome: "completed", sandboxId: context.sandboxId, found: "its sandbox running" } satisfies Settlement)
        : ({ state: "suspended", outcome: "rolled back", sandboxId: context.sandboxId, found: `its sandbox ${status}` } satisfies Settlement)
    }
    // A restore from a checkpoint: a sandbox of the agent that runs is the restored one (it starts after its import).
    const made = yield* deps.backend.list({ [OwnershipLabels.agentId]: r.agentId, [OwnershipLabels.runtimeId]: deps.runtimeId }).pipe(Effect.orElseSucceed(() => []))
    const restored = made.find((s) => s.status === "running")
    return restored !== undefined
      ? ({ state: "running", outcome: "completed", sandboxId: restored.sandboxId, found: `sandbox ${restored.sandboxId} restored and running` } satisfies Settlement)
      : ({ state: "suspended", outcome: "rolled back", sandboxId: undefined, found: "no restored sandbox running" } satisfies Settlement)
  })

/** The stored machine snapshot settled in `state`, no side effect invoked. */
const settledMachine = (machine: Record<string, unknown>, context: Partial<AgentContext>, s: Settlement, lastError: ErrorData | undefined) => ({
  ...machine,
  status: "active",
  value: s.state === "running" ? { running: "idle" } : "suspended",
  children: {},
  context: {
    ...context,
    sandboxId: s.sandboxId,
    checkpointId: s.checkpointId ?? context.checkpointId,
    lastError
  }
})

/** What settling needs. */
export interface IntentRecoveryDeps {
  readonly backend: SandboxBackendShape
  readonly checkpoints: CheckpointStoreShape
  readonly runtimeId: string
  readonly iso: () => string
}

/** Settles a stored record's intent, or none when it holds none. */
export const settleIntent = (deps: IntentRecoveryDeps, r: AgentRecord): Effect.Effect<Option.Option<SettledIntent>> =>
  Effect.gen(function* () {
    const snapshot = r.snapshot as StoredSnapshot | null
    const intent = intentOfSnapshot(snapshot)
    const machine = snapshot?.machine
    if (intent === undefined || machine?.context === undefined) return Option.none()
    const { intent: _settled, ...rest } = snapshot!
    const at = deps.iso()
    if (intent.operation === "terminate") {
      return Option.some({
        record: { ...r, snapshot: rest },
        intent,
        terminate: r.state !== "terminating",
        event: { agentId: r.agentId, type: "agent.reconciled", fromState: r.state, toState: "terminating", data: { operation: "terminate", outcome: "completed", intentAt: intent.at }, at }
      })
    }
    const context = machine.context
    const s = intent.operation === "suspend" ? yield* settleSuspend(deps, r, context) : yield* settleResume(deps, r, context)
    const lastError: ErrorData | undefined = s.outcome === "completed"
      ? undefined
      : { code: "E2060", message: `${intent.operation} was not written to the store before the supervisor stopped; recovery found ${s.found} and rolled it back (the agent is ${s.state}); run it again`, retryable: true }
    return Option.some({
      record: { ...r, state: s.state, sandboxId: s.sandboxId, snapshot: { ...rest, machine: settledMachine(machine, context, s, lastError) } },
      intent,
      terminate: false,
      event: {
        agentId: r.agentId,
        type: "agent.reconciled",
        fromState: r.state,
        toState: s.state,
        data: { operation: intent.operation, outcome: s.outcome, found: s.found, intentAt: intent.at },
        at
      }
    })
  })
