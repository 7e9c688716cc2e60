/**
 * The secrets an agent would use, read at its spawn: a cheap check with nothing of the model clients
 * or MCP loaded (those load at the first step).
 */
import * as Effect from "effect/Effect"
import type { ModelConfig } from "../../domain/AgentConfig.ts"
import { declaredMcpServer, endpointOf } from "../../domain/ConfigReferences.ts"
import { type ConfigInvalid, ReferenceUnknown } from "../../domain/Errors.ts"
import type { OperatorResources } from "./modelExecution.ts"

/**
 * Resolves every secret an agent's model and declared MCP servers would use, so a spawn refuses an
 * agent whose key is missing (E2000 naming the secret and its source) instead of failing at its
 * first step. The values are dropped: they are read again when used.
 */
export const checkAgentSecrets = (model: ModelConfig | undefined, resources: OperatorResources): Effect.Effect<void, ConfigInvalid | ReferenceUnknown> =>
  Effect.gen(function* () {
    if (model === undefined || model.provider === "scripted") return
    const names: Array<string> = []
    if (model.endpoint !== undefined) {
      const found = endpointOf({ endpoint: model.endpoint, model: model.model }, resources.declared)
      if (found instanceof ReferenceUnknown) return yield* found
      if (found.endpoint.api_key_secret !== undefined) names.push(found.endpoint.api_key_secret)
    }
    for (const server of model.mcp ?? []) {
      const declared = server.server === undefined ? undefined : declaredMcpServer(resources.declared, server.server)
      if (declared === undefined) continue
      names.push(...Object.values(declared.env_secrets ?? {}), ...(declared.bearer_secret === undefined ? [] : [declared.bearer_secret]))
    }
    for (const name of names) yield* resources.secrets.resolve(name)
  })
