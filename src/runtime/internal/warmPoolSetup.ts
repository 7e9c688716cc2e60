/**
 * The runtime's warm pools (`pools.warm`): each template checked at start like a spawn of the
 * operator's (its resources, a runtime class the backend has, declared references; E2000 naming the
 * pool otherwise), then pools whose sandboxes are made for the agent ids that will claim them,
 * refilled through admission control at low priority.
 */
import { randomUUID } from "node:crypto"
import * as Effect from "effect/Effect"
import type * as Fiber from "effect/Fiber"
import type { AgentConfig } from "../../domain/AgentConfig.ts"
import type { DeclaredResources } from "../../domain/ConfigReferences.ts"
import { ConfigInvalid, ResourceLimitsInvalid, type SandboxError, toErrorData } from "../../domain/Errors.ts"
import { resolveSandbox } from "../../domain/resolveSandbox.ts"
import type { RuntimeConfig } from "../../domain/RuntimeConfig.ts"
import type { SandboxConfiguration } from "../../domain/SandboxConfiguration.ts"
import type { SandboxBackendShape, SandboxSpec } from "../../services/SandboxBackend.ts"
import { checkSpawnPolicy } from "../SpawnPolicy.ts"
import type { FairAdmission } from "./fairAdmission.ts"
import { makeWarmPools, WarmLabels, type WarmPool, type WarmPools } from "./warmPools.ts"

/** What the pools make and remove their sandboxes with. */
export interface WarmPoolSetupDeps {
  readonly config: RuntimeConfig
  readonly backend: SandboxBackendShape
  readonly declared: DeclaredResources
  readonly specFor: (
    agent: { readonly agentId: string; readonly sessionId: string; readonly config: AgentConfig; readonly sandbox: SandboxConfiguration },
    extraLabels?: Readonly<Record<string, string>>
  ) => SandboxSpec
  readonly removeQuietly: (sandboxId: string) => Effect.Effect<void, SandboxError>
  readonly admission: FairAdmission
  readonly fork: (effect: Effect.Effect<void>) => Fiber.Fiber<void>
  readonly backendCanPause: Effect.Effect<boolean, SandboxError>
}

/** The checked warm pools of the configuration (not started). */
export const makeRuntimeWarmPools = (deps: WarmPoolSetupDeps): Effect.Effect<WarmPools, ConfigInvalid | SandboxError> =>
  Effect.gen(function* () {
    const { config, backend, declared, specFor, removeQuietly, admission, backendCanPause } = deps
    const lifecycle = config.lifecycle
  const warmConfigs = config.pools.warm
  const poolSandboxes = new Map<string, SandboxConfiguration>()
  if (warmConfigs.length > 0) {
    const caps = yield* backend.capabilities
    for (const [i, pool] of warmConfigs.entries()) {
      const sandbox = resolveSandbox(pool.template, config)
      const key = `pools.warm[${i}].template`
      if (sandbox instanceof ResourceLimitsInvalid) return yield* new ConfigInvalid({ message: `warm pool ${pool.name}: ${sandbox.message}`, key })
      if (!caps.runtimeClasses.includes(sandbox.runtimeClass)) {
        return yield* new ConfigInvalid({
          message: `warm pool ${pool.name}: trust level ${sandbox.trustLevel} needs runtime class ${sandbox.runtimeClass}, which the ${caps.name} backend does not have (it has: ${caps.runtimeClasses.join(", ") || "none"})`,
          key
        })
      }
      const unknown = checkSpawnPolicy(pool.template, sandbox.trustLevel, declared, undefined)
      if (unknown !== undefined) return yield* new ConfigInvalid({ message: `warm pool ${pool.name}: ${unknown.message}`, key: `${key}.${unknown.key ?? ""}` })
      poolSandboxes.set(pool.name, sandbox)
    }
  }
  const warm = makeWarmPools(warmConfigs, {
    make: (pool: WarmPool, paused: boolean) =>
      Effect.gen(function* () {
        const agent = { agentId: randomUUID(), sessionId: randomUUID(), config: pool.template, sandbox: poolSandboxes.get(pool.name)! }
        const created = yield* backend.provision(specFor(agent, { [WarmLabels.pool]: pool.name, [WarmLabels.template]: pool.templateHash }))
        const ready = Effect.andThen(backend.start(created.sandboxId), paused ? backend.pause(created.sandboxId) : Effect.void)
        yield* ready.pipe(Effect.onError(() => Effect.ignore(removeQuietly(created.sandboxId))))
        return { pool: pool.name, agentId: agent.agentId, sessionId: agent.sessionId, sandboxId: created.sandboxId, paused }
      }).pipe(Effect.mapError(toErrorData)),
    unpause: (sandboxId) => backend.unpause(sandboxId).pipe(Effect.mapError(toErrorData)),
    remove: (sandboxId) => Effect.ignore(removeQuietly(sandboxId)),
    // Refills yield to every spawn waiting: a warm sandbox is for later, a spawn is for now.
    admit: (pool) => Effect.promise(() => admission.acquire(`pool:${pool.name}`, "low")),
    fork: deps.fork,
    canPause: warmConfigs.length > 0 && (yield* backendCanPause),
    concurrency: lifecycle.max_concurrent_spawns
  })
    return warm
  })
