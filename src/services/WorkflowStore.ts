/**
 * The port for durable workflow runs (workflow_runs): the graph, input, state and each node's state.
 *
 * The nodes' outcomes themselves are kept by the workflow engine (effect/workflow on the same SQL
 * database); a run record is what `workflows.get` and `list` answer and what the dashboard draws.
 * Implementations: in-memory (`layerMemory`) and SQL (`SqlWorkflowStore`); both pass the contract
 * suite in test/services/workflowStoreContract.ts.
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import type { StoreFailed } from "../domain/Errors.ts"
import type { WorkflowRun, WorkflowStateValue } from "../domain/WorkflowRun.ts"

/** Which runs to list; all given fields must match. */
export interface WorkflowFilter {
  readonly state?: WorkflowStateValue | ReadonlyArray<WorkflowStateValue> | undefined
  /** Only runs started as a sub-workflow of this one; top-level runs only when null. */
  readonly parentId?: string | null | undefined
  readonly limit?: number | undefined
}

/** The shape of {@link WorkflowStore}. */
export interface WorkflowStoreShape {
  /** Inserts or replaces a run by id. */
  readonly save: (run: WorkflowRun) => Effect.Effect<void, StoreFailed>
  readonly get: (workflowId: string) => Effect.Effect<Option.Option<WorkflowRun>, StoreFailed>
  /** Runs, oldest first (ties by id). */
  readonly list: (filter?: WorkflowFilter) => Effect.Effect<ReadonlyArray<WorkflowRun>, StoreFailed>
}

/** The workflow store port. */
export class WorkflowStore extends Context.Service<WorkflowStore, WorkflowStoreShape>()("l02/WorkflowStore") {}

/** Whether a run passes a filter (the semantics every implementation has). */
export const matchesFilter = (run: WorkflowRun, filter: WorkflowFilter): boolean => {
  if (filter.state !== undefined) {
    const states: ReadonlyArray<WorkflowStateValue> = typeof filter.state === "string" ? [filter.state] : filter.state
    if (!states.includes(run.state)) return false
  }
  if (filter.parentId === null && run.parentId !== undefined) return false
  if (typeof filter.parentId === "string" && run.parentId !== filter.parentId) return false
  return true
}

/** Runs in listing order: oldest first, ties by id. */
export const compareRuns = (a: WorkflowRun, b: WorkflowRun): number =>
  a.createdAt < b.createdAt ? -1 : a.createdAt > b.createdAt ? 1 : a.workflowId < b.workflowId ? -1 : a.workflowId > b.workflowId ? 1 : 0

/** The in-memory workflow store: real state in a `Ref`, lost when the layer is released. */
export const layerMemory: Layer.Layer<WorkflowStore> = Layer.effect(
  WorkflowStore,
  Effect.map(Ref.make(new Map<string, WorkflowRun>()), (ref) =>
    WorkflowStore.of({
      save: (run) => Ref.update(ref, (runs) => new Map(runs).set(run.workflowId, structuredClone(run))),
      get: (workflowId) => Effect.map(Ref.get(ref), (runs) => Option.map(Option.fromUndefinedOr(runs.get(workflowId)), (r) => structuredClone(r))),
      list: (filter = {}) =>
        Effect.map(Ref.get(ref), (runs) => {
          const found = [...runs.values()].filter((r) => matchesFilter(r, filter)).sort(compareRuns)
          return (filter.limit === undefined ? found : found.slice(0, filter.limit)).map((r) => structuredClone(r))
        })
    })
  )
)
