/**
 * How operations reach an agent: find it (live, or known to the store only), send it an operation
 * its state accepts, wait for the states that end the operation, and learn whether it failed.
 */
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type { agentMachine, AgentEvent } from "../../../machines/agentMachine.ts"
import type { AgentOperation, AgentState } from "../../domain/AgentState.ts"
import type { ErrorData } from "../../domain/ErrorCatalog.ts"
import { AgentNotFound, fromErrorData, InvalidTransition, RuntimeShutDown, type StoreFailed } from "../../domain/Errors.ts"
import type { StateStoreShape } from "../../services/StateStore.ts"
import type { ActorHost } from "../ActorHost.ts"
import type { AgentHandle } from "./agentHandle.ts"

/** The access of one runtime's operations to its agents. */
export const makeAgentAccess = (deps: {
  readonly host: ActorHost<typeof agentMachine, AgentHandle>
  readonly store: StateStoreShape
  readonly isClosed: () => boolean
}) => {
  const { host, store } = deps

  /** The live agent, or E2021 (E2028 once the runtime is shut down). */
  const live = (agentId: string): Effect.Effect<AgentHandle, AgentNotFound | RuntimeShutDown> =>
    Effect.suspend((): Effect.Effect<AgentHandle, AgentNotFound | RuntimeShutDown> => {
      if (deps.isClosed()) return Effect.fail(new RuntimeShutDown({ message: "the runtime was shut down; create a new one", agentId }))
      const h = host.get(agentId)
      return h === undefined
        ? Effect.fail(new AgentNotFound({ message: `no live agent ${agentId}; check the id against the agents listed (l02 ls, GET /v1/agents, runtime.list())`, agentId }))
        : Effect.succeed(h)
    })

  /** The live agent; for one the store knows as terminated, E2020 saying so instead of E2021. */
  const liveOrTerminated = (
    agentId: string,
    operation: AgentOperation
  ): Effect.Effect<AgentHandle, AgentNotFound | RuntimeShutDown | InvalidTransition | StoreFailed> =>
    live(agentId).pipe(
      Effect.catchTag("AgentNotFound", (notFound): Effect.Effect<never, AgentNotFound | InvalidTransition | StoreFailed> =>
        store.getAgent(agentId).pipe(
          Effect.flatMap((found): Effect.Effect<never, AgentNotFound | InvalidTransition> =>
            Option.isSome(found)
              ? Effect.fail(new InvalidTransition({ message: `cannot ${operation} agent ${agentId}: it is ${found.value.state}`, agentId, state: found.value.state, operation }))
              : Effect.fail(notFound)
          )
        )
      )
    )

  /** Resolves once the agent's queued writes are written; fails with their E2060. */
  const flushed = (h: AgentHandle): Effect.Effect<void, StoreFailed> =>
    Effect.promise(() => host.persisted(h)).pipe(Effect.flatMap(() => (h.persistError === undefined ? Effect.void : Effect.fail(h.persistError))))

  return {
    live,
    liveOrTerminated,
    flushed,
    /** Sends an operation's event if the agent's state accepts it (E2020 otherwise). */
    sendChecked: (h: AgentHandle, event: AgentEvent, operation: AgentOperation) => host.send(h, event, operation),
    /** The agent's state once `done` holds for it. */
    waitFor: (h: AgentHandle, done: (state: AgentState) => boolean): Effect.Effect<AgentState> => host.waitFor(h, () => done(h.state), () => h.state),
    /** Fails with the agent's new error when it ended in a state not in `ok` (E2046 when it has none). */
    failIfError: (h: AgentHandle, state: AgentState, ok: ReadonlyArray<AgentState>, since: ErrorData | undefined) =>
      Effect.suspend(() => {
        if (ok.includes(state)) return Effect.void
        const error = h.lastContext.lastError
        return Effect.fail(
          fromErrorData(error !== undefined && error !== since ? error : { code: "E2046", message: `agent ended in state ${state}`, retryable: false }, h.agentId)
        )
      })
  }
}

/** What operations use of {@link makeAgentAccess}. */
export type AgentAccess = ReturnType<typeof makeAgentAccess>
