/**
 * The workflow store over `effect/sql` (PostgreSQL, PGlite or SQLite): workflow_runs, one row per
 * run with its state and parent in columns (for listing) and the whole run as a JSON document.
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { SqlClient } from "effect/sql/SqlClient"
import type { WorkflowRun, WorkflowStateValue } from "../domain/WorkflowRun.ts"
import { WorkflowStore } from "../services/WorkflowStore.ts"
import { defaultTarget, type StoreTarget, storeFailed } from "./internal/sqlSupport.ts"

const toRun = (row: { readonly document: unknown }): WorkflowRun => JSON.parse(String(row.document)) as WorkflowRun

/** The SQL workflow store, over the `SqlClient` in context (migrated by the store's migrations). */
export const layer = (target: StoreTarget = defaultTarget): Layer.Layer<WorkflowStore, never, SqlClient> =>
  Layer.effect(
    WorkflowStore,
    Effect.gen(function* () {
      const sql = yield* SqlClient
      return WorkflowStore.of({
        save: (run) =>
          sql`
            INSERT INTO workflow_runs (workflow_id, parent_id, name, state, document, created_at, updated_at)
            VALUES (${run.workflowId}, ${run.parentId ?? null}, ${run.name}, ${run.state}, ${JSON.stringify(run)}, ${run.createdAt}, ${run.updatedAt})
            ON CONFLICT (workflow_id) DO UPDATE SET state = excluded.state, document = excluded.document, updated_at = excluded.updated_at`.pipe(
            Effect.asVoid,
            storeFailed(target, `saving workflow ${run.workflowId}`)
          ),
        get: (workflowId) =>
          sql<{ readonly document: string }>`SELECT document FROM workflow_runs WHERE workflow_id = ${workflowId}`.pipe(
            Effect.map((rows) => Option.map(Option.fromUndefinedOr(rows[0]), toRun)),
            storeFailed(target, `reading workflow ${workflowId}`)
          ),
        list: (filter = {}) => {
          const states: ReadonlyArray<WorkflowStateValue> | undefined = typeof filter.state === "string" ? [filter.state] : filter.state
          const conditions = [
            ...(states === undefined ? [] : [sql.in("state", states)]),
            ...(filter.parentId === null ? [sql`parent_id IS NULL`] : typeof filter.parentId === "string" ? [sql`parent_id = ${filter.parentId}`] : [])
          ]
          const limit = filter.limit === undefined ? sql`` : sql`LIMIT ${Math.max(0, Math.floor(filter.limit))}`
          return sql<{ readonly document: string }>`
            SELECT document FROM workflow_runs ${conditions.length === 0 ? sql`` : sql`WHERE ${sql.and(conditions)}`}
            ORDER BY created_at, workflow_id ${limit}`.pipe(
            Effect.map((rows) => rows.map(toRun)),
            storeFailed(target, "listing workflows")
          )
        }
      })
    })
  )
