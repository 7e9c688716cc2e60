/**
 * The cluster layer of a runner: the local runtime (hosting agents one at a time) under the agent
 * entity and the routed runtime, on this supervisor's Sharding. It provides the routed
 * {@link AgentRuntime} in place of the local one, so the promise API, HTTP, the CLI and workflows
 * all reach every agent of the fleet through whichever runner they call.
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type { SqlClient } from "effect/sql/SqlClient"
import type { RuntimeConfig } from "../domain/RuntimeConfig.ts"
import { AgentRuntime } from "../runtime/AgentRuntime.ts"
import { AgentEntity } from "./AgentEntity.ts"
import { agentEntityLayer } from "./agentEntityLayer.ts"
import { routedRuntime } from "./routedRuntime.ts"
import { shardingLayer } from "./sharding.ts"

/** The routed runtime over the local one (made with `hosting: "cluster"`) and the store's SQL client. */
export const layer = (config: RuntimeConfig): Layer.Layer<AgentRuntime, unknown, AgentRuntime | SqlClient> => {
  const routed = Layer.effect(
    AgentRuntime,
    Effect.gen(function* () {
      const local = yield* AgentRuntime
      const client = yield* AgentEntity.client
      return routedRuntime(local, client)
    })
  )
  return Layer.merge(routed, agentEntityLayer).pipe(Layer.provide(shardingLayer(config.cluster)))
}
