/**
 * The port for durable agent records and fleet operations.
 *
 * A record is written before the transition it describes is acknowledged to the caller, and is
 * what the runtime reloads after a restart. Implementations: in-memory (`layerMemory`) and SQL
 * (`SqlStateStore`, on PGlite or PostgreSQL).
 */
import { Context, type Effect, type Option } from "effect"
import type { AgentConfig } from "../domain/AgentConfig.ts"
import type { AgentState } from "../domain/AgentState.ts"
import type { StoreFailed } from "../domain/Errors.ts"
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
  readonly getAgent: (agentId: string) => Effect.Effect<Option.Option<AgentRecord>, StoreFailed>
  readonly listAgents: (filter?: AgentFilter) => Effect.Effect<ReadonlyArray<AgentRecord>, StoreFailed>
  readonly deleteAgent: (agentId: string) => Effect.Effect<void, StoreFailed>
  /** Inserts or replaces a fleet operation by id. */
  readonly saveFleetOperation: (operation: FleetOperation) => Effect.Effect<void, StoreFailed>
  readonly listFleetOperations: (limit?: number) => Effect.Effect<ReadonlyArray<FleetOperation>, StoreFailed>
}

/** The state store port. */
export class StateStore extends Context.Service<StateStore, StateStoreShape>()("l02/StateStore") {}
