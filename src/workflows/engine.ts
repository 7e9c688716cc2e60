/**
 * The durable workflow engine: effect/workflow's cluster engine as a single runner, its messages,
 * replies and shard locks in the store's own SQL database (embedded SQLite or PostgreSQL). Loaded
 * on first use (or at start when runs are unfinished), so a runtime that runs no workflow does not
 * pay for it.
 *
 * The runner is named after the runtime id, which is stable for one host, backend, data directory
 * and store: a supervisor restarted after a crash takes its shards back at once and the engine
 * resumes its unfinished runs.
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import type { SqlClient } from "effect/sql/SqlClient"
import type { WorkflowEngine } from "effect/workflow/WorkflowEngine"
import { WorkflowHooks, type WorkflowHooksShape } from "./WorkflowHooks.ts"

/** The engine's services, and the graph workflow it runs. */
export interface Engine {
  readonly context: Context.Context<WorkflowEngine>
  readonly graph: typeof import("./graphWorkflow.ts")
}

/** Builds the engine into `scope`: the shards are released and the runs stopped when it closes. */
export const startEngine = (options: {
  readonly sql: SqlClient
  readonly hooks: WorkflowHooksShape
  readonly runnerName: string
  /**
   * The engine's tables (default `cluster`). A runner of an agent cluster keeps its runs in tables
   * of its own: its runs are its own, resumed when it comes back (docs/cluster.md).
   */
  readonly tablePrefix?: string | undefined
  readonly scope: Scope.Scope
}): Effect.Effect<Engine, unknown> =>
  Effect.gen(function* () {
    const [graph, ClusterWorkflowEngine, Sharding, Runners, RunnerHealth, SqlMessageStorage, SqlRunnerStorage, ShardingConfig, RunnerAddress, NodeCrypto, SqlClientModule] =
      yield* Effect.promise(() =>
        Promise.all([
          import("./graphWorkflow.ts"),
          import("effect/cluster/ClusterWorkflowEngine"),
          import("effect/cluster/Sharding"),
          import("effect/cluster/Runners"),
          import("effect/cluster/RunnerHealth"),
          import("effect/cluster/SqlMessageStorage"),
          import("effect/cluster/SqlRunnerStorage"),
          import("effect/cluster/ShardingConfig"),
          import("effect/cluster/RunnerAddress"),
          import("@effect/platform-node/NodeCrypto"),
          import("effect/sql/SqlClient")
        ])
      )
    // A single runner (as the engine's SingleRunner, with the tables' prefix chosen here).
    const prefix = options.tablePrefix ?? "cluster"
    const runner = Sharding.layer.pipe(
      Layer.provideMerge(Runners.layerNoop),
      Layer.provideMerge(SqlMessageStorage.layerWith({ prefix })),
      Layer.provide([Layer.orDie(SqlRunnerStorage.layerWith({ prefix })), RunnerHealth.layerNoop]),
      Layer.provide(ShardingConfig.layer({
        runnerAddress: Option.some(RunnerAddress.make(options.runnerName, 1)),
        entityMessagePollInterval: "1 second",
        entityMaxIdleTime: "10 seconds",
        simulateRemoteSerialization: false
      }))
    )
    const layer = graph.graphWorkflowLayer.pipe(
      Layer.provideMerge(ClusterWorkflowEngine.layer),
      Layer.provideMerge(runner),
      Layer.provide(NodeCrypto.layerDigest),
      Layer.provide(Layer.succeed(SqlClientModule.SqlClient, options.sql)),
      Layer.provide(Layer.succeed(WorkflowHooks, options.hooks))
    )
    const context = yield* Layer.buildWithScope(layer, options.scope)
    return { context: context as Context.Context<WorkflowEngine>, graph }
  })
