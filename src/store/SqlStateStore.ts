/**
 * The state store over `effect/sql` (PostgreSQL, PGlite or SQLite): agent_instances and fleet_operations.
 *
 * A save is one upsert statement, so it is atomic on its own; `version` counts the saves of a row.
 * JSON columns are written as `jsonb` and read back as text, so both drivers return the same values.
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { SqlClient } from "effect/sql/SqlClient"
import type { AgentConfig } from "../domain/AgentConfig.ts"
import type { AgentState } from "../domain/AgentState.ts"
import type { SandboxConfiguration } from "../domain/SandboxConfiguration.ts"
import { type AgentRecord, type FleetOperation, StateStore } from "../services/StateStore.ts"
import { columnList, defaultTarget, type Dialect, dialectOf, isoColumn, isUuid, jsonParam, optional, parseJson, type StoreTarget, storeFailed } from "./internal/sqlSupport.ts"

const agentColumnsPg = [
  "agent_id::text AS agent_id",
  "session_id::text AS session_id",
  "runtime_id",
  "state",
  "config::text AS config",
  "sandbox::text AS sandbox",
  "sandbox_id",
  "snapshot::text AS snapshot",
  "resource_usage::text AS resource_usage",
  isoColumn("created_at"),
  isoColumn("updated_at"),
  isoColumn("terminated_at"),
  "host_token"
]
const agentColumnsPlain = [
  "agent_id", "session_id", "runtime_id", "state", "config", "sandbox", "sandbox_id", "snapshot", "resource_usage",
  "created_at", "updated_at", "terminated_at", "host_token"
]
const agentColumns = (dialect: Dialect) => columnList(dialect, agentColumnsPg, agentColumnsPlain)

const operationColumnsPg = [
  "operation_id::text AS operation_id",
  "operation_type",
  "target_replicas",
  "status",
  "reason",
  "priority",
  isoColumn("created_at"),
  isoColumn("completed_at")
]
const operationColumnsPlain = ["operation_id", "operation_type", "target_replicas", "status", "reason", "priority", "created_at", "completed_at"]
const operationColumns = (dialect: Dialect) => columnList(dialect, operationColumnsPg, operationColumnsPlain)

type Row = Readonly<Record<string, unknown>>

const insertColumns =
  "agent_id, session_id, runtime_id, state, config, sandbox, sandbox_id, snapshot, labels, resource_usage, created_at, updated_at, terminated_at, host_token"

/**
 * An upsert replaces every column and counts the save in `version`. A record carrying a host token
 * (a cluster runner's) replaces the stored one only while the stored token is the same or none:
 * once another runner claimed the agent ({@link StateStoreShape.claimAgent}), a paused former
 * owner's writes change nothing (fencing).
 */
const upsertTail = `ON CONFLICT (agent_id) DO UPDATE SET
  session_id = EXCLUDED.session_id, runtime_id = EXCLUDED.runtime_id, state = EXCLUDED.state,
  config = EXCLUDED.config, sandbox = EXCLUDED.sandbox, sandbox_id = EXCLUDED.sandbox_id,
  snapshot = EXCLUDED.snapshot, labels = EXCLUDED.labels, resource_usage = EXCLUDED.resource_usage,
  created_at = EXCLUDED.created_at, updated_at = EXCLUDED.updated_at, terminated_at = EXCLUDED.terminated_at,
  host_token = COALESCE(EXCLUDED.host_token, agent_instances.host_token),
  version = agent_instances.version + 1
  WHERE EXCLUDED.host_token IS NULL OR agent_instances.host_token IS NULL OR agent_instances.host_token = EXCLUDED.host_token`

/**
 * One upsert statement for several records: the rows travel as one JSON array (JSON columns nested as
 * text, so a JSON null stays distinct from SQL NULL, as in a single save). Agent ids must be distinct.
 */
export const upsertAgents = (sql: SqlClient, records: ReadonlyArray<AgentRecord>) => {
  const rows = JSON.stringify(
    records.map((r) => ({
      agent_id: r.agentId,
      session_id: r.sessionId,
      runtime_id: r.runtimeId,
      state: r.state,
      config: jsonParam(r.config),
      sandbox: jsonParam(r.sandbox),
      sandbox_id: r.sandboxId ?? null,
      snapshot: jsonParam(r.snapshot),
      labels: jsonParam(r.config.labels ?? {}),
      resource_usage: jsonParam(r.resourceUsage),
      created_at: r.createdAt,
      updated_at: r.updatedAt,
      terminated_at: r.terminatedAt ?? null,
      host_token: r.hostToken ?? null
    }))
  )
  if (dialectOf(sql) === "sqlite") {
    const field = (name: string) => sql.literal(`json_extract(r.value, '$.${name}')`)
    const fields = insertColumns.split(", ").map(field)
    // `WHERE true` tells SQLite's parser the ON CONFLICT belongs to the INSERT, not to a join.
    return sql`INSERT INTO agent_instances (${sql.literal(insertColumns)})
      SELECT ${sql.csv(fields)} FROM json_each(${rows}) AS r WHERE true
      ${sql.literal(upsertTail)}`
  }
  return sql`INSERT INTO agent_instances (${sql.literal(insertColumns)})
      SELECT r.agent_id::uuid, r.session_id::uuid, r.runtime_id, r.state, r.config::jsonb, r.sandbox::jsonb, r.sandbox_id,
        r.snapshot::jsonb, r.labels::jsonb, r.resource_usage::jsonb, r.created_at::timestamp, r.updated_at::timestamp,
        r.terminated_at::timestamp, r.host_token
      FROM jsonb_to_recordset(${rows}::jsonb) AS r(agent_id text, session_id text, runtime_id text, state text, config text,
        sandbox text, sandbox_id text, snapshot text, labels text, resource_usage text, created_at text, updated_at text,
        terminated_at text, host_token text)
      ${sql.literal(upsertTail)}`
}

const toRecord = (row: Row): AgentRecord => {
  const resourceUsage = parseJson(row.resource_usage)
  return {
    agentId: String(row.agent_id),
    sessionId: String(row.session_id),
    runtimeId: String(row.runtime_id),
    state: String(row.state) as AgentState,
    config: parseJson(row.config) as AgentConfig,
    sandbox: parseJson(row.sandbox) as SandboxConfiguration,
    ...optional("sandboxId", row.sandbox_id),
    snapshot: parseJson(row.snapshot),
    ...(resourceUsage === undefined ? {} : { resourceUsage }),
    createdAt: String(row.created_at),
    updatedAt: String(row.updated_at),
    ...optional("terminatedAt", row.terminated_at),
    ...optional("hostToken", row.host_token)
  }
}

const toOperation = (row: Row): FleetOperation => ({
  operationId: String(row.operation_id),
  operationType: String(row.operation_type),
  ...(row.target_replicas === null || row.target_replicas === undefined ? {} : { targetReplicas: Number(row.target_replicas) }),
  status: String(row.status) as FleetOperation["status"],
  ...optional("reason", row.reason),
  ...optional("priority", row.priority),
  createdAt: String(row.created_at),
  ...optional("completedAt", row.completed_at)
})

/** Builds the SQL state store over the `SqlClient` in context (migrations must have run). */
export const make = (target: StoreTarget = defaultTarget) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient
    const dialect = dialectOf(sql)
    const saveAgentSqlite = (r: AgentRecord) =>
      sql`INSERT INTO agent_instances (${sql.literal(insertColumns)})
          VALUES (${r.agentId}, ${r.sessionId}, ${r.runtimeId}, ${r.state}, ${jsonParam(r.config)}, ${jsonParam(r.sandbox)},
            ${r.sandboxId ?? null}, ${jsonParam(r.snapshot)}, ${jsonParam(r.config.labels ?? {})}, ${jsonParam(r.resourceUsage)},
            ${r.createdAt}, ${r.updatedAt}, ${r.terminatedAt ?? null}, ${r.hostToken ?? null})
          ${sql.literal(upsertTail)}`.pipe(Effect.asVoid, storeFailed(target, `saving agent ${r.agentId}`, r.agentId))
    const saveAgent = dialect === "sqlite" ? saveAgentSqlite : (r: AgentRecord) =>
      sql`INSERT INTO agent_instances (${sql.literal(insertColumns)})
          VALUES (${r.agentId}, ${r.sessionId}, ${r.runtimeId}, ${r.state}, ${jsonParam(r.config)}::jsonb,
            ${jsonParam(r.sandbox)}::jsonb, ${r.sandboxId ?? null}, ${jsonParam(r.snapshot)}::jsonb,
            ${jsonParam(r.config.labels ?? {})}::jsonb, ${jsonParam(r.resourceUsage)}::jsonb, ${r.createdAt}::timestamp,
            ${r.updatedAt}::timestamp, ${r.terminatedAt ?? null}::timestamp, ${r.hostToken ?? null})
          ${sql.literal(upsertTail)}`.pipe(Effect.asVoid, storeFailed(target, `saving agent ${r.agentId}`, r.agentId))
    const timestamp = (value: string | null) => (dialect === "sqlite" ? sql`${value}` : sql`${value}::timestamp`)
    return StateStore.of({
      saveAgent,

      saveAgents: (records) => {
        if (records.length === 0) return Effect.void
        if (records.length === 1) return saveAgent(records[0]!)
        return upsertAgents(sql, records).pipe(Effect.asVoid, storeFailed(target, `saving ${records.length} agents`))
      },

      claimAgent: (agentId, token) =>
        isUuid(agentId)
          ? sql<Row>`UPDATE agent_instances SET host_token = ${token} WHERE agent_id = ${agentId} RETURNING 1 AS claimed`.pipe(
              Effect.map((rows) => rows.length > 0),
              storeFailed(target, `claiming agent ${agentId}`, agentId)
            )
          : Effect.succeed(false),

      getAgent: (agentId) =>
        isUuid(agentId)
          ? sql<Row>`SELECT ${sql.literal(agentColumns(dialect))} FROM agent_instances WHERE agent_id = ${agentId}`.pipe(
              Effect.map((rows) => Option.map(Option.fromNullishOr(rows[0]), toRecord)),
              storeFailed(target, `reading agent ${agentId}`, agentId)
            )
          : Effect.succeedNone,

      listAgents: (filter = {}) => {
        const states = filter.state === undefined ? undefined : typeof filter.state === "string" ? [filter.state] : filter.state
        if (states?.length === 0) return Effect.succeed([])
        if (filter.sessionId !== undefined && !isUuid(filter.sessionId)) return Effect.succeed([])
        const labels = filter.labels === undefined || Object.keys(filter.labels).length === 0 ? undefined : filter.labels
        const where = sql.and([
          ...(states === undefined ? [] : [sql`state IN ${sql.in(states)}`]),
          ...(filter.sessionId === undefined ? [] : [sql`session_id = ${filter.sessionId}`]),
          ...(filter.runtimeId === undefined ? [] : [sql`runtime_id = ${filter.runtimeId}`]),
          ...(labels === undefined
            ? []
            : dialect === "sqlite"
            ? Object.entries(labels).map(([key, value]) => sql`json_extract(labels, ${`$.${JSON.stringify(key)}`}) = ${value}`)
            : [sql`labels @> ${jsonParam(labels)}::jsonb`])
        ])
        return sql<Row>`SELECT ${sql.literal(agentColumns(dialect))} FROM agent_instances WHERE ${where}
                        ORDER BY agent_instances.created_at, agent_instances.agent_id`.pipe(
          Effect.map((rows) => rows.map(toRecord)),
          storeFailed(target, "listing agents")
        )
      },

      deleteAgent: (agentId) =>
        isUuid(agentId)
          ? sql`DELETE FROM agent_instances WHERE agent_id = ${agentId}`.pipe(
              Effect.asVoid,
              storeFailed(target, `deleting agent ${agentId}`, agentId)
            )
          : Effect.void,

      saveFleetOperation: (op) =>
        sql`INSERT INTO fleet_operations (operation_id, operation_type, target_replicas, status, reason, priority,
              created_at, completed_at)
            VALUES (${op.operationId}, ${op.operationType}, ${op.targetReplicas ?? null}, ${op.status}, ${op.reason ?? null},
              ${op.priority ?? null}, ${timestamp(op.createdAt)}, ${timestamp(op.completedAt ?? null)})
            ON CONFLICT (operation_id) DO UPDATE SET
              operation_type = EXCLUDED.operation_type, target_replicas = EXCLUDED.target_replicas,
              status = EXCLUDED.status, reason = EXCLUDED.reason, priority = EXCLUDED.priority,
              created_at = EXCLUDED.created_at, completed_at = EXCLUDED.completed_at`.pipe(
          Effect.asVoid,
          storeFailed(target, `saving fleet operation ${op.operationId}`)
        ),

      listFleetOperations: (limit) =>
        (limit === undefined
          ? sql<Row>`SELECT ${sql.literal(operationColumns(dialect))} FROM fleet_operations ORDER BY fleet_operations.created_at DESC, fleet_operations.operation_id DESC`
          : sql<Row>`SELECT ${sql.literal(operationColumns(dialect))} FROM fleet_operations ORDER BY fleet_operations.created_at DESC, fleet_operations.operation_id DESC
                     LIMIT ${Math.max(0, Math.floor(limit))}`
        ).pipe(
          Effect.map((rows) => rows.map(toOperation)),
          storeFailed(target, "listing fleet operations")
        )
    })
  })

/** The SQL state store; needs an `SqlClient` whose database is migrated (see `Store.layer`). */
export const layer = (target: StoreTarget = defaultTarget): Layer.Layer<StateStore, never, SqlClient> =>
  Layer.effect(StateStore, make(target))
