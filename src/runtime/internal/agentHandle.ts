/**
 * A hosted agent: the actor host's entry plus what the runtime knows of the agent, its one
 * constructor (for spawns and for recovery alike), and its record and instance forms.
 */
import type { agentMachine, AgentContext, AgentIdentity } from "../../../machines/agentMachine.ts"
import type { AgentConfig } from "../../domain/AgentConfig.ts"
import type { AgentInstance } from "../../domain/AgentInstance.ts"
import type { AgentActivity, AgentState } from "../../domain/AgentState.ts"
import type { SandboxConfiguration } from "../../domain/SandboxConfiguration.ts"
import type { Conversation } from "../../execution/AgentLoop.ts"
import type * as TokenBudget from "../../execution/TokenBudget.ts"
import type { AgentRecord } from "../../services/StateStore.ts"
import type { HostedEntry } from "../ActorHost.ts"
import type { PreparedModel } from "./modelExecution.ts"
import type { AgentIntent } from "./operationIntents.ts"

/** A hosted agent: the actor host's entry plus what the runtime knows of the agent. */
export interface AgentHandle extends HostedEntry<typeof agentMachine> {
  readonly agentId: string
  readonly sessionId: string
  readonly config: AgentConfig
  readonly sandbox: SandboxConfiguration
  readonly initialContext: unknown
  readonly createdAt: string
  state: AgentState
  activity: AgentActivity | undefined
  lastContext: AgentContext
  updatedAt: string
  terminatedAt: string | undefined
  /** The agent loop's conversation (agents with a model), persisted with the record. */
  conversation: Conversation | undefined
  /** Token use within the budget's sliding hour, persisted so a restart does not reset the budget. */
  tokenUsage: ReadonlyArray<TokenBudget.UsageEntry> | undefined
  /** The agent's model gateway and the secret values it holds, built at its first step. */
  model: PreparedModel | undefined
  /** The operation under way, written with the record before its side effects (see operationIntents). */
  intent: AgentIntent | undefined
  /**
   * With a cluster runner: the token this hosting of the agent claimed in the store, carried by its
   * writes; a later hosting (here or on another runner) claims another, fencing this one's writes.
   */
  hostToken?: string | undefined
}

/** The machine state of a snapshot value (`running` for `{ running: "idle" }`). */
export const stateOf = (value: unknown): AgentState =>
  (typeof value === "string" ? value : Object.keys(value as object)[0]) as AgentState

/** The running activity of a snapshot value, if running. */
export const activityOf = (value: unknown): AgentActivity | undefined =>
  typeof value === "object" && value !== null && "running" in value ? ((value as { running: AgentActivity }).running) : undefined

/** What a new handle starts from: a spawn's config, or a stored record. */
export type HandleFields =
  & Pick<AgentHandle, "agentId" | "sessionId" | "config" | "sandbox" | "initialContext" | "createdAt" | "updatedAt" | "state">
  & Partial<Pick<AgentHandle, "terminatedAt" | "conversation" | "tokenUsage" | "hostToken">>

/** A handle whose actor is not started yet. */
export const newAgentHandle = (fields: HandleFields): AgentHandle => ({
  terminatedAt: undefined,
  conversation: undefined,
  tokenUsage: undefined,
  intent: undefined,
  ...fields,
  actor: undefined,
  hibernated: undefined,
  lastActiveAt: 0,
  waiters: 0,
  model: undefined,
  activity: undefined,
  lastContext: undefined as never,
  persisted: Promise.resolve(),
  persistError: undefined
})

type PersistedMachine = { readonly context?: Record<string, unknown> } & Record<string, unknown>

/**
 * A machine snapshot as the record stores it: its context without the agent's identity (session,
 * config, sandbox, initial context: `context.agent`), which the record holds once.
 */
export const storedMachineOf = (machine: unknown): unknown => {
  const m = machine as PersistedMachine | undefined
  if (m?.context === undefined) return machine
  // Destructured, not deleted: a deleted key would leave every stored context a slow, larger object.
  const { agent: _agent, ...context } = m.context
  return { ...m, context }
}

/**
 * A stored machine snapshot made whole again for a restore: the identity from the record (also
 * what migrates a snapshot written before the context carried it), and no claim left pending.
 */
export const restorableMachineOf = (machine: unknown, h: AgentHandle): unknown => {
  const m = machine as PersistedMachine | undefined
  if (m?.context === undefined) return machine
  return {
    ...m,
    context: { claim: undefined, ...m.context, agent: identityOf(h) }
  }
}

/** The agent's identity, as its actor's input and context carry it. */
export const identityOf = (h: AgentHandle): AgentIdentity => ({
  agentId: h.agentId,
  sessionId: h.sessionId,
  config: h.config,
  sandbox: h.sandbox,
  initialContext: h.initialContext
})

/**
 * The stored record of an agent: its state, config and persisted snapshot, built when it is written;
 * with the handle's host token (a cluster runner's: a save is refused once another hosting claimed the agent).
 */
export const recordOf = (h: AgentHandle, runtimeId: string): AgentRecord => ({
  agentId: h.agentId,
  sessionId: h.sessionId,
  runtimeId,
  state: h.state,
  config: h.config,
  sandbox: h.sandbox,
  sandboxId: h.lastContext.sandboxId,
  snapshot: {
    machine: storedMachineOf(h.actor?.getPersistedSnapshot() ?? h.hibernated),
    initialContext: h.initialContext,
    activity: h.activity ?? null,
    ...(h.conversation === undefined ? {} : { conversation: h.conversation }),
    ...(h.tokenUsage === undefined ? {} : { tokenUsage: h.tokenUsage }),
    ...(h.intent === undefined ? {} : { intent: h.intent })
  },
  ...(h.conversation === undefined
    ? {}
    : { resourceUsage: { tokensUsed: h.conversation.usage.inputTokens + h.conversation.usage.outputTokens } }),
  createdAt: h.createdAt,
  updatedAt: h.updatedAt,
  terminatedAt: h.terminatedAt,
  ...(h.hostToken === undefined ? {} : { hostToken: h.hostToken })
})

/** What `getState` and `list` answer for a live agent. */
export const instanceOf = (h: AgentHandle, backend: string): AgentInstance => ({
  agentId: h.agentId,
  sessionId: h.sessionId,
  name: h.config.name,
  state: h.state,
  ...(h.activity === undefined ? {} : { activity: h.activity }),
  backend,
  ...(h.lastContext.sandboxId === undefined ? {} : { sandboxId: h.lastContext.sandboxId }),
  config: h.config,
  sandbox: h.sandbox,
  restartCount: h.lastContext.restartCount,
  ...(h.lastContext.checkpointId === undefined ? {} : { checkpointId: h.lastContext.checkpointId }),
  ...(h.lastContext.lastError === undefined ? {} : { lastError: h.lastContext.lastError }),
  createdAt: h.createdAt,
  updatedAt: h.updatedAt,
  ...(h.terminatedAt === undefined ? {} : { terminatedAt: h.terminatedAt })
})

/** What `getState` and `list` answer for an agent known only from the store. */
export const instanceOfRecord = (r: AgentRecord, backend: string): AgentInstance => {
  const snap = (r.snapshot as { machine?: { context?: AgentContext } } | null)?.machine?.context
  return {
    agentId: r.agentId,
    sessionId: r.sessionId,
    name: r.config.name,
    state: r.state,
    backend,
    config: r.config,
    sandbox: r.sandbox,
    restartCount: snap?.restartCount ?? 0,
    ...(snap?.lastError === undefined ? {} : { lastError: snap.lastError }),
    ...(snap?.checkpointId === undefined ? {} : { checkpointId: snap.checkpointId }),
    createdAt: r.createdAt,
    updatedAt: r.updatedAt,
    ...(r.terminatedAt === undefined ? {} : { terminatedAt: r.terminatedAt })
  }
}
