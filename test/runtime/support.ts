// Shared helpers for runtime tests: services built once so several runtimes (a "restart") share them.
import { Context, Effect, Exit, Layer, Scope } from "effect"
import { CheckpointStore, layerMemory as checkpointMemory } from "../../src/services/CheckpointStore.ts"
import { EventLog, layerMemory as eventLogMemory } from "../../src/services/EventLog.ts"
import { layerMemory as sandboxMemory, SandboxBackend } from "../../src/services/SandboxBackend.ts"
import { layerMemory as stateMemory, StateStore } from "../../src/services/StateStore.ts"

export type Services = SandboxBackend | StateStore | CheckpointStore | EventLog

/** Builds in-memory services once; `layer` hands the same instances to every runtime. */
export const memoryServices = async (backendOptions: Parameters<typeof sandboxMemory>[0] = {}) => {
  const scope = Effect.runSync(Scope.make())
  const context = await Effect.runPromise(
    Layer.buildWithScope(Layer.mergeAll(sandboxMemory(backendOptions), stateMemory, checkpointMemory, eventLogMemory), scope)
  )
  const run = <A, E>(f: (s: { backend: SandboxBackend["Service"]; store: StateStore["Service"]; checkpoints: CheckpointStore["Service"]; log: EventLog["Service"] }) => Effect.Effect<A, E>) =>
    Effect.runPromise(
      f({
        backend: Context.get(context, SandboxBackend),
        store: Context.get(context, StateStore),
        checkpoints: Context.get(context, CheckpointStore),
        log: Context.get(context, EventLog)
      })
    )
  return {
    layer: Layer.succeedContext(context) as Layer.Layer<Services>,
    run,
    close: () => Effect.runPromise(Scope.close(scope, Exit.void))
  }
}

/** Waits until `check` passes (polling), failing after `ms`. */
export const eventually = async (check: () => unknown | Promise<unknown>, ms = 3000) => {
  const deadline = Date.now() + ms
  for (;;) {
    try {
      await check()
      return
    } catch (error) {
      if (Date.now() > deadline) throw error
      await new Promise((r) => setTimeout(r, 10))
    }
  }
}
