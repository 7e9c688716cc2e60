/**
 * The agents' actor host: the agent machine (with its side effects) hosted by {@link makeActorHost},
 * each transition written as the agent's record plus an `agent.state` event, then told to the
 * heartbeat watch and the fleet; a terminated agent leaves the host once its last write is in the store.
 */
import type { Snapshot } from "xstate"
import type { agentMachine, AgentContext } from "../../../machines/agentMachine.ts"
import type { AgentActivity, AgentState } from "../../domain/AgentState.ts"
import type { LifecycleEvent } from "../../domain/LifecycleEvent.ts"
import type { RuntimeConfig } from "../../domain/RuntimeConfig.ts"
import { type ActorHost, type ActorHostOptions, makeActorHost, type SnapshotWrite } from "../ActorHost.ts"
import { activityOf, type AgentHandle, identityOf, stateOf } from "./agentHandle.ts"
import { endsOperation } from "./operationIntents.ts"

/** What the agents' host needs besides the machine. */
export interface AgentHostDeps {
  readonly machine: typeof agentMachine
  readonly config: RuntimeConfig
  readonly now: () => number
  readonly iso: () => string
  readonly write: ActorHostOptions<typeof agentMachine, AgentHandle>["write"]
  /** True when the transition into `state` need not be written on its own (see sandboxEffects). */
  readonly writeMayWait: (state: AgentState, snapshot: object) => boolean
  /** After the transition's write is queued: the heartbeat watch and the fleet hear of it. */
  readonly afterTransition: (h: AgentHandle, from: AgentState, fromActivity: AgentActivity | undefined) => void
  readonly onError: (h: AgentHandle, error: unknown) => void
  readonly inspect?: ActorHostOptions<typeof agentMachine, AgentHandle>["inspect"]
  readonly clock?: ActorHostOptions<typeof agentMachine, AgentHandle>["clock"]
}

type AgentSnapshot = Snapshot<unknown> & { value: unknown; context: AgentContext }

/** An agent's write, and the state and activity it left. */
interface AgentWrite extends SnapshotWrite {
  readonly from: AgentState
  readonly fromActivity: AgentActivity | undefined
}

/** An agent's transition: its new state on the handle, and what to write. */
const transition = (deps: AgentHostDeps, h: AgentHandle, snapshot: AgentSnapshot, initial: boolean): AgentWrite | undefined => {
  const state = stateOf(snapshot.value)
  const activity = activityOf(snapshot.value)
  const context = snapshot.context
  if (initial) {
    h.state = state
    h.activity = activity
    h.lastContext = context
    return undefined
  }
  if (state === h.state && activity === h.activity && context === h.lastContext) return undefined
  const from = h.state
  const fromActivity = h.activity
  const previousContext = h.lastContext
  h.state = state
  h.activity = activity
  h.lastContext = context
  h.updatedAt = deps.iso()
  if (state === "terminated" && h.terminatedAt === undefined) h.terminatedAt = h.updatedAt
  // The operation's end is written with this transition: its intent is done.
  if (endsOperation(from, state)) h.intent = undefined
  const events: Array<LifecycleEvent> = []
  if (from !== state) {
    events.push({
      agentId: h.agentId,
      type: "agent.state",
      fromState: from,
      toState: state,
      data: context.lastError === undefined || context.lastError === previousContext.lastError ? undefined : { error: context.lastError },
      at: h.updatedAt
    })
  }
  return {
    events,
    // Only the pause and unpause paths leave these states without waiting for the write (see sandboxEffects).
    defer: from !== state && deps.writeMayWait(state, snapshot),
    from,
    fromActivity
  }
}

/** The host of the runtime's agents. Idle agents (no invoked actor, no step) hibernate. */
export const makeAgentHost = (deps: AgentHostDeps): ActorHost<typeof agentMachine, AgentHandle> => {
  const { lifecycle } = deps.config
  const host: ActorHost<typeof agentMachine, AgentHandle> = makeActorHost<typeof agentMachine, AgentHandle, AgentWrite>({
    logic: deps.machine,
    idOf: (h) => h.agentId,
    systemIdOf: (h) => `agent:${h.agentId}`,
    input: (h) => ({
      agent: identityOf(h),
      spawnTimeoutMs: lifecycle.spawn_timeout_seconds * 1000,
      graceMs: lifecycle.graceful_shutdown_seconds * 1000
    }),
    write: deps.write,
    onSnapshot: (h, snapshot, initial) => transition(deps, h, snapshot as AgentSnapshot, initial),
    afterWrite: (h, write) => deps.afterTransition(h, write.from, write.fromActivity),
    // A terminated agent leaves once its end is in the store (a refused write is tried again first).
    afterWritten: (h) => {
      if (h.state === "terminated") host.remove(h)
    },
    onError: deps.onError,
    mayHibernate: (h) => h.activity !== "busy",
    hibernateAfterMs: deps.config.runtime.hibernate_idle_after_seconds * 1000,
    noun: "agent",
    describe: (h) => ({ state: h.state, where: h.activity === undefined ? h.state : `${h.state} (${h.activity})` }),
    now: deps.now,
    inspect: deps.inspect,
    clock: deps.clock
  })
  return host
}
