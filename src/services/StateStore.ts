/**
 * The port for durable agent records and fleet operations.
 *
 * A record is written before the transition it describes is acknowledged to the caller, and is
 * what the runtime reloads after a restart. Implementations: in-memory (`layerMemory`) and SQL
 * (`SqlStateStore`, on PGlite or PostgreSQL).
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as HashMap from "effect/HashMap"
import * as Layer from "effect/Layer"
import type * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import type { AgentConfig } from "../domain/AgentConfig.ts"
import type { AgentState } from "../domain/AgentState.ts"
import type { StoreFailed } from "../domain/Errors.ts"
import type { LifecycleEvent } from "../domain/LifecycleEvent.ts"
import type { SandboxConfiguration } from "../domain/SandboxConfiguration.ts"

/** One row of agent_instances. */
export interface AgentRecord {
  readonly agentId: string
  readonly sessionId: string
  readonly runtimeId: string
  readonly state: AgentState
  readonly config: AgentConfig
  readonly sandbox: SandboxConfiguration
  readonly sandboxId?: string | undefined
  /** The agent actor's persisted snapshot (JSON), from which it is restored. */
  readonly snapshot: unknown
  readonly resourceUsage?: unknown
  readonly createdAt: string
  readonly updatedAt: string
  readonly terminatedAt?: string | undefined
  /**
   * The token of the cluster runner hosting the agent. A record carrying one is saved only while
   * the stored token is the same or none (see {@link StateStoreShape.claimAgent}); without one, a
   * save always applies (one supervisor).
   */
  readonly hostToken?: string | undefined
}

/** Which agents to list; all given fields must match. */
export interface AgentFilter {
  readonly state?: AgentState | ReadonlyArray<AgentState> | undefined
  readonly sessionId?: string | undefined
  readonly runtimeId?: string | undefined
  readonly labels?: Readonly<Record<string, string>> | undefined
}

/** One row of fleet_operations. */
export interface FleetOperation {
  readonly operationId: string
  readonly operationType: string
  readonly targetReplicas?: number | undefined
  readonly status: "pending" | "running" | "completed" | "failed"
  readonly reason?: string | undefined
  readonly priority?: string | undefined
  readonly createdAt: string
  readonly completedAt?: string | undefined
}

/** The shape of the state store. */
export interface StateStoreShape {
  /** Inserts or replaces the record of `record.agentId`. */
  readonly saveAgent: (record: AgentRecord) => Effect.Effect<void, StoreFailed>
  /**
   * Inserts or replaces several records at once, all or none (one statement in the SQL store). The
   * runtime writes each batch of transitions with it. Agent ids must be distinct.
   */
  readonly saveAgents: (records: ReadonlyArray<AgentRecord>) => Effect.Effect<void, StoreFailed>
  /**
   * Makes `token` the agent's host token: from now on, saves of its record carrying another token
   * change nothing (a runner that lost the agent's shard cannot write over its new owner). False
   * when the store does not know the agent.
   */
  readonly claimAgent: (agentId: string, token: string) => Effect.Effect<boolean, StoreFailed>
  readonly getAgent: (agentId: string) => Effect.Effect<Option.Option<AgentRecord>, StoreFailed>
  /** Agents matching `filter`, oldest first (ties by id). */
  readonly listAgents: (filter?: AgentFilter) => Effect.Effect<ReadonlyArray<AgentRecord>, StoreFailed>
  readonly deleteAgent: (agentId: string) => Effect.Effect<void, StoreFailed>
  /** Inserts or replaces a fleet operation by id. */
  readonly saveFleetOperation: (operation: FleetOperation) => Effect.Effect<void, StoreFailed>
  /** Fleet operations, newest first; at most `limit` when given. */
  readonly listFleetOperations: (limit?: number) => Effect.Effect<ReadonlyArray<FleetOperation>, StoreFailed>
}

/** The state store port. */
export class StateStore extends Context.Service<StateStore, StateStoreShape>()("l02/StateStore") {}

/** The shape of {@link AtomicWrites}. */
export interface AtomicWritesShape {
  /**
   * Saves the records (as `saveAgents`) and appends the events (as `EventLog.append`) in one atomic
   * step; returns the events with their ids.
   */
  readonly saveAgentsAndAppend: (
    records: ReadonlyArray<AgentRecord>,
    events: ReadonlyArray<LifecycleEvent>
  ) => Effect.Effect<ReadonlyArray<LifecycleEvent>, StoreFailed>
}

/**
 * An optional port of a store whose state and event log share a database: a batch of records and its
 * lifecycle events written together, all or none (the SQL store does it in one statement). Without
 * it the runtime saves the records, then appends the events.
 */
export class AtomicWrites extends Context.Service<AtomicWrites, AtomicWritesShape>()("l02/AtomicWrites") {}

const matches = (record: AgentRecord, filter: AgentFilter): boolean => {
  if (filter.state !== undefined) {
    const states: ReadonlyArray<AgentState> = typeof filter.state === "string" ? [filter.state] : filter.state
    if (!states.includes(record.state)) return false
  }
  if (filter.sessionId !== undefined && record.sessionId !== filter.sessionId) return false
  if (filter.runtimeId !== undefined && record.runtimeId !== filter.runtimeId) return false
  if (filter.labels !== undefined) {
    const labels = record.config.labels ?? {}
    for (const [key, value] of Object.entries(filter.labels)) if (labels[key] !== value) return false
  }
  return true
}

/** Saves a record unless a host token it carries is not the stored one (see {@link AgentRecord.hostToken}). */
const saveFenced = (agents: HashMap.HashMap<string, AgentRecord>, record: AgentRecord): HashMap.HashMap<string, AgentRecord> => {
  const stored = HashMap.get(agents, record.agentId)
  const storedToken = stored._tag === "Some" ? stored.value.hostToken : undefined
  if (record.hostToken !== undefined && storedToken !== undefined && storedToken !== record.hostToken) return agents
  const hostToken = record.hostToken ?? storedToken
  return HashMap.set(agents, record.agentId, hostToken === undefined ? record : { ...record, hostToken })
}

/** Agents in listing order: oldest first, ties by id (the order every implementation returns). */
export const compareAgents = (a: AgentRecord, b: AgentRecord): number =>
  a.createdAt < b.createdAt ? -1 : a.createdAt > b.createdAt ? 1 : a.agentId < b.agentId ? -1 : a.agentId > b.agentId ? 1 : 0

/** Fleet operations in listing order: newest first, ties by id descending. */
export const compareFleetOperations = (a: FleetOperation, b: FleetOperation): number =>
  a.createdAt > b.createdAt ? -1 : a.createdAt < b.createdAt ? 1 : a.operationId > b.operationId ? -1 : a.operationId < b.operationId ? 1 : 0

interface MemoryState {
  readonly agents: HashMap.HashMap<string, AgentRecord>
  readonly operations: HashMap.HashMap<string, FleetOperation>
}

/**
 * The in-memory state store: real state in a `Ref`, lost when the layer is released.
 *
 * Each build of the layer starts empty, so two runtimes built from it share nothing. It passes the
 * same contract suite as the SQL store (test/services/StateStoreContract.ts).
 */
export const layerMemory: Layer.Layer<StateStore> = Layer.effect(
  StateStore,
  Effect.gen(function* () {
    const ref = yield* Ref.make<MemoryState>({ agents: HashMap.empty(), operations: HashMap.empty() })
    return StateStore.of({
      saveAgent: (record) => Ref.update(ref, (s) => ({ ...s, agents: saveFenced(s.agents, record) })),
      saveAgents: (records) => Ref.update(ref, (s) => ({ ...s, agents: records.reduce(saveFenced, s.agents) })),
      claimAgent: (agentId, token) =>
        Ref.modify(ref, (s) => {
          const found = HashMap.get(s.agents, agentId)
          if (found._tag === "None") return [false, s]
          return [true, { ...s, agents: HashMap.set(s.agents, agentId, { ...found.value, hostToken: token }) }]
        }),
      getAgent: (agentId) => Effect.map(Ref.get(ref), (s) => HashMap.get(s.agents, agentId)),
      listAgents: (filter = {}) =>
        Effect.map(Ref.get(ref), (s) => Array.from(HashMap.values(s.agents)).filter((r) => matches(r, filter)).sort(compareAgents)),
      deleteAgent: (agentId) => Ref.update(ref, (s) => ({ ...s, agents: HashMap.remove(s.agents, agentId) })),
      saveFleetOperation: (operation) =>
        Ref.update(ref, (s) => ({ ...s, operations: HashMap.set(s.operations, operation.operationId, operation) })),
      listFleetOperations: (limit) =>
        Effect.map(Ref.get(ref), (s) => {
          const all = Array.from(HashMap.values(s.operations)).sort(compareFleetOperations)
          return limit === undefined ? all : all.slice(0, Math.max(0, limit))
        })
    })
  })
)
