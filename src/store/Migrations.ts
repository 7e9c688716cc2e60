/**
 * The database schema as an ordered list of migrations, and the runner that applies them.
 *
 * The same SQL runs on PGlite and PostgreSQL; the embedded SQLite store has its own list of the same
 * migrations in SQLite's types. Times are `TIMESTAMP` (without time zone, as in the
 * specification's tables) and always hold UTC. The runner is idempotent and safe when several
 * runtimes start against one PostgreSQL database at once: it takes a transaction-scoped advisory
 * lock before looking at the migrations table, and applies all pending migrations in that one
 * transaction, so a failed migration leaves nothing behind.
 */
import * as Effect from "effect/Effect"
import { SqlClient } from "effect/sql/SqlClient"
import type { SqlError } from "effect/sql/SqlError"

// A UUID's shape (lower or upper case hex), for SQLite's GLOB.
const hex = "[0-9a-fA-F]"
const uuidGlob = [8, 4, 4, 4, 12].map((n) => hex.repeat(n)).join("-")

/** One schema change: an id that orders it, a name, and its statements. */
export interface Migration {
  readonly id: number
  readonly name: string
  readonly statements: ReadonlyArray<string>
}

// Text columns only, so the same statements run on PostgreSQL and SQLite; the run is a JSON document.
const workflowRunsMigration: Migration = {
  id: 2,
  name: "workflow_runs",
  statements: [
    `CREATE TABLE workflow_runs (
      workflow_id TEXT PRIMARY KEY,
      parent_id TEXT,
      name TEXT NOT NULL,
      state TEXT NOT NULL,
      document TEXT NOT NULL,
      created_at TEXT NOT NULL,
      updated_at TEXT NOT NULL
    )`,
    `CREATE INDEX workflow_runs_created_idx ON workflow_runs (created_at, workflow_id)`,
    `CREATE INDEX workflow_runs_state_idx ON workflow_runs (state)`
  ]
}

// The token of the cluster runner hosting an agent (fencing of a former owner's writes); the same
// statement on PostgreSQL and SQLite.
const hostTokenMigration: Migration = {
  id: 3,
  name: "agent_host_token",
  statements: [`ALTER TABLE agent_instances ADD COLUMN host_token TEXT`]
}

// Durable execute runs and their events (docs/execution.md, "Runs"); text columns, so the same
// statements run on PostgreSQL and SQLite.
const executionRunsMigration: Migration = {
  id: 4,
  name: "execution_runs",
  statements: [
    `CREATE TABLE execution_runs (
      run_id TEXT PRIMARY KEY,
      agent_id TEXT NOT NULL,
      runtime_id TEXT NOT NULL,
      status TEXT NOT NULL,
      started_at TEXT NOT NULL,
      ended_at TEXT,
      error TEXT
    )`,
    `CREATE INDEX execution_runs_agent_idx ON execution_runs (agent_id, started_at)`,
    `CREATE INDEX execution_runs_status_idx ON execution_runs (status, runtime_id)`,
    // A run's events in segments: each row holds the events first_seq..last_seq of one write, as a JSON array.
    `CREATE TABLE execution_run_events (
      run_id TEXT NOT NULL,
      first_seq BIGINT NOT NULL,
      last_seq BIGINT NOT NULL,
      events TEXT NOT NULL,
      created_at TEXT NOT NULL,
      PRIMARY KEY (run_id, first_seq)
    )`
  ]
}

/** Every migration, in order. Published migrations are never edited; changes are new migrations. */
export const migrations: ReadonlyArray<Migration> = [
  {
    id: 1,
    name: "initial_schema",
    statements: [
      `CREATE TABLE agent_instances (
        agent_id UUID PRIMARY KEY,
        session_id UUID NOT NULL,
        runtime_id TEXT NOT NULL,
        state VARCHAR(20) NOT NULL,
        config JSONB NOT NULL,
        sandbox JSONB NOT NULL,
        sandbox_id TEXT,
        snapshot JSONB,
        labels JSONB NOT NULL DEFAULT '{}'::jsonb,
        resource_usage JSONB,
        version BIGINT NOT NULL DEFAULT 1,
        created_at TIMESTAMP NOT NULL,
        updated_at TIMESTAMP NOT NULL,
        terminated_at TIMESTAMP
      )`,
      `CREATE INDEX agent_instances_runtime_state_idx ON agent_instances (runtime_id, state)`,
      `CREATE INDEX agent_instances_session_idx ON agent_instances (session_id)`,
      `CREATE INDEX agent_instances_created_idx ON agent_instances (created_at, agent_id)`,
      `CREATE INDEX agent_instances_labels_idx ON agent_instances USING GIN (labels jsonb_path_ops)`,
      `CREATE TABLE agent_checkpoints (
        checkpoint_id UUID PRIMARY KEY,
        agent_id UUID NOT NULL,
        session_id UUID NOT NULL,
        checkpoint_type VARCHAR(20) NOT NULL,
        storage_location TEXT NOT NULL,
        size_bytes BIGINT,
        sha256 CHAR(64) NOT NULL,
        created_at TIMESTAMP NOT NULL,
        expires_at TIMESTAMP
      )`,
      `CREATE INDEX agent_checkpoints_agent_idx ON agent_checkpoints (agent_id, created_at)`,
      `CREATE INDEX agent_checkpoints_expires_idx ON agent_checkpoints (expires_at) WHERE expires_at IS NOT NULL`,
      `CREATE TABLE fleet_operations (
        operation_id UUID PRIMARY KEY,
        operation_type VARCHAR(50) NOT NULL,
        target_replicas INT,
        status VARCHAR(20) NOT NULL,
        reason TEXT,
        priority VARCHAR(20),
        created_at TIMESTAMP NOT NULL,
        completed_at TIMESTAMP
      )`,
      `CREATE INDEX fleet_operations_created_idx ON fleet_operations (created_at DESC, operation_id DESC)`,
      `CREATE TABLE lifecycle_events (
        id BIGSERIAL PRIMARY KEY,
        agent_id TEXT NOT NULL,
        type TEXT NOT NULL,
        from_state VARCHAR(20),
        to_state VARCHAR(20),
        data JSONB,
        created_at TIMESTAMP NOT NULL
      )`,
      `CREATE INDEX lifecycle_events_agent_idx ON lifecycle_events (agent_id, id)`
    ]
  },
  workflowRunsMigration,
  hostTokenMigration,
  executionRunsMigration
]

/**
 * The same schema for the embedded SQLite store, migration by migration (same ids and names). Ids are
 * TEXT checked to have a UUID's shape (so a refused id fails its batch, as a UUID column does), JSON
 * is TEXT checked with `json_valid`, times are ISO-8601 UTC text in one form (`2026-12-03T14:00:00.000Z`,
 * checked: anything else fails its write), which sorts as time does.
 */
export const sqliteMigrations: ReadonlyArray<Migration> = [
  {
    id: 1,
    name: "initial_schema",
    statements: [
      `CREATE TABLE agent_instances (
        agent_id TEXT PRIMARY KEY CHECK (agent_id GLOB '${uuidGlob}'),
        session_id TEXT NOT NULL CHECK (session_id GLOB '${uuidGlob}'),
        runtime_id TEXT NOT NULL,
        state TEXT NOT NULL,
        config TEXT NOT NULL CHECK (json_valid(config)),
        sandbox TEXT NOT NULL CHECK (json_valid(sandbox)),
        sandbox_id TEXT,
        snapshot TEXT CHECK (snapshot IS NULL OR json_valid(snapshot)),
        labels TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(labels)),
        resource_usage TEXT CHECK (resource_usage IS NULL OR json_valid(resource_usage)),
        version INTEGER NOT NULL DEFAULT 1,
        created_at TEXT NOT NULL CHECK (created_at IS strftime('%Y-%m-%dT%H:%M:%fZ', created_at)),
        updated_at TEXT NOT NULL CHECK (updated_at IS strftime('%Y-%m-%dT%H:%M:%fZ', updated_at)),
        terminated_at TEXT CHECK (terminated_at IS NULL OR terminated_at IS strftime('%Y-%m-%dT%H:%M:%fZ', terminated_at))
      ) STRICT`,
      `CREATE INDEX agent_instances_runtime_state_idx ON agent_instances (runtime_id, state)`,
      `CREATE INDEX agent_instances_session_idx ON agent_instances (session_id)`,
      `CREATE INDEX agent_instances_created_idx ON agent_instances (created_at, agent_id)`,
      `CREATE TABLE agent_checkpoints (
        checkpoint_id TEXT PRIMARY KEY CHECK (checkpoint_id GLOB '${uuidGlob}'),
        agent_id TEXT NOT NULL CHECK (agent_id GLOB '${uuidGlob}'),
        session_id TEXT NOT NULL CHECK (session_id GLOB '${uuidGlob}'),
        checkpoint_type TEXT NOT NULL,
        storage_location TEXT NOT NULL,
        size_bytes INTEGER,
        sha256 TEXT NOT NULL,
        created_at TEXT NOT NULL CHECK (created_at IS strftime('%Y-%m-%dT%H:%M:%fZ', created_at)),
        expires_at TEXT CHECK (expires_at IS NULL OR expires_at IS strftime('%Y-%m-%dT%H:%M:%fZ', expires_at))
      ) STRICT`,
      `CREATE INDEX agent_checkpoints_agent_idx ON agent_checkpoints (agent_id, created_at)`,
      `CREATE INDEX agent_checkpoints_expires_idx ON agent_checkpoints (expires_at) WHERE expires_at IS NOT NULL`,
      `CREATE TABLE fleet_operations (
        operation_id TEXT PRIMARY KEY CHECK (operation_id GLOB '${uuidGlob}'),
        operation_type TEXT NOT NULL,
        target_replicas INTEGER,
        status TEXT NOT NULL,
        reason TEXT,
        priority TEXT,
        created_at TEXT NOT NULL CHECK (created_at IS strftime('%Y-%m-%dT%H:%M:%fZ', created_at)),
        completed_at TEXT CHECK (completed_at IS NULL OR completed_at IS strftime('%Y-%m-%dT%H:%M:%fZ', completed_at))
      ) STRICT`,
      `CREATE INDEX fleet_operations_created_idx ON fleet_operations (created_at DESC, operation_id DESC)`,
      `CREATE TABLE lifecycle_events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        agent_id TEXT NOT NULL,
        type TEXT NOT NULL,
        from_state TEXT,
        to_state TEXT,
        data TEXT CHECK (data IS NULL OR json_valid(data)),
        created_at TEXT NOT NULL CHECK (created_at IS strftime('%Y-%m-%dT%H:%M:%fZ', created_at))
      ) STRICT`,
      `CREATE INDEX lifecycle_events_agent_idx ON lifecycle_events (agent_id, id)`
    ]
  },
  workflowRunsMigration,
  hostTokenMigration,
  executionRunsMigration
]

/** The advisory lock key that serializes migration runs on one database ("l02-migrate"). */
export const migrationLockKey = 0x6c30326d

/**
 * Applies the pending migrations and returns the ids it applied (empty when the schema is current).
 * Tables are created in the first schema of the connection's search_path.
 */
export const runMigrations = (
  list?: ReadonlyArray<Migration>
): Effect.Effect<ReadonlyArray<number>, SqlError, SqlClient> =>
  Effect.gen(function* () {
    const sql = yield* SqlClient
    const sqlite = sql.onDialectOrElse({ sqlite: () => true, orElse: () => false })
    const chosen = list ?? (sqlite ? sqliteMigrations : migrations)
    return yield* sql.withTransaction(
      Effect.gen(function* () {
        // SQLite's write lock is the transaction's own (one writer at a time); PostgreSQL needs the advisory lock.
        if (!sqlite) yield* sql`SELECT pg_advisory_xact_lock(${migrationLockKey})`
        yield* (sqlite
          ? sql`CREATE TABLE IF NOT EXISTS l02_migrations (
              id INTEGER PRIMARY KEY,
              name TEXT NOT NULL,
              applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
            )`
          : sql`CREATE TABLE IF NOT EXISTS l02_migrations (
              id INT PRIMARY KEY,
              name TEXT NOT NULL,
              applied_at TIMESTAMP NOT NULL DEFAULT (now() AT TIME ZONE 'UTC')
            )`)
        const rows = yield* sql<{ readonly id: number }>`SELECT id FROM l02_migrations`
        const applied = new Set(rows.map((r) => Number(r.id)))
        const pending = chosen.filter((m) => !applied.has(m.id)).sort((a, b) => a.id - b.id)
        for (const migration of pending) {
          for (const statement of migration.statements) yield* sql.unsafe(statement)
          yield* sql`INSERT INTO l02_migrations (id, name) VALUES (${migration.id}, ${migration.name})`
        }
        return pending.map((m) => m.id)
      })
    )
  })
