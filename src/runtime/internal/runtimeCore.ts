/**
 * What the runtime's operations share: the ports, the actor host of the agents and the access to
 * them, admission, the warm pools, the token budget and what the operator declared. Built once by
 * `AgentRuntime.make`; every operation module takes it.
 */
import * as Effect from "effect/Effect"
import type { agentMachine } from "../../../machines/agentMachine.ts"
import type { DeclaredResources } from "../../domain/ConfigReferences.ts"
import type { SandboxError } from "../../domain/Errors.ts"
import type { LifecycleEvent } from "../../domain/LifecycleEvent.ts"
import type { RuntimeConfig } from "../../domain/RuntimeConfig.ts"
import type { TokenBudgetShape } from "../../execution/TokenBudget.ts"
import type { CheckpointStoreShape } from "../../services/CheckpointStore.ts"
import type { SandboxBackendShape } from "../../services/SandboxBackend.ts"
import type { StateStoreShape } from "../../services/StateStore.ts"
import type { ActorHost } from "../ActorHost.ts"
import type { AgentAccess } from "./agentAccess.ts"
import type { AgentHandle } from "./agentHandle.ts"
import type { FairAdmission } from "./fairAdmission.ts"
import type { OperatorResources } from "./modelExecution.ts"
import type { WarmPools } from "./warmPools.ts"

/** The shared parts of one runtime. */
export interface RuntimeCore {
  readonly config: RuntimeConfig
  readonly runtimeId: string
  readonly backendName: string
  readonly backend: SandboxBackendShape
  readonly store: StateStoreShape
  readonly checkpoints: CheckpointStoreShape
  readonly host: ActorHost<typeof agentMachine, AgentHandle>
  readonly access: AgentAccess
  readonly now: () => number
  readonly iso: () => string
  /** Publishes lifecycle events to `events()` subscribers. */
  readonly publish: (events: ReadonlyArray<LifecycleEvent>) => void
  readonly isClosed: () => boolean
  readonly declared: DeclaredResources
  readonly operatorResources: OperatorResources
  readonly admission: FairAdmission
  readonly warm: WarmPools
  readonly tokenBudget: TokenBudgetShape
  /** Whether the backend can pause (asked once, then remembered). */
  readonly backendCanPause: Effect.Effect<boolean, SandboxError>
}

/** Whether the backend can pause: fixed for its life, so asked once it answers, then remembered. */
export const canPauseOf = (backend: SandboxBackendShape): Effect.Effect<boolean, SandboxError> => {
  let known: boolean | undefined
  return Effect.suspend(() =>
    known !== undefined ? Effect.succeed(known) : Effect.map(backend.capabilities, (caps) => (known = caps.pause !== false))
  )
}
