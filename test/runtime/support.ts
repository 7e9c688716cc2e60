// Shared helpers for runtime tests: services built once so several runtimes (a "restart") share them.
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Context, Effect, Exit, Layer, Scope } from "effect"
import { createRuntime } from "../../src/runtime/createRuntime.ts"
import { CheckpointStore, layerMemory as checkpointMemory } from "../../src/services/CheckpointStore.ts"
import { EventLog, layerMemory as eventLogMemory } from "../../src/services/EventLog.ts"
import { layerMemory as sandboxMemory, SandboxBackend } from "../../src/services/SandboxBackend.ts"
import { layerMemory as stateMemory, StateStore } from "../../src/services/StateStore.ts"
import { layerMemory as runLogMemory, RunLog } from "../../src/services/RunLog.ts"
import type { MemoryProgramEntry } from "../../src/services/internal/memorySandbox.ts"

export type Services = SandboxBackend | StateStore | CheckpointStore | EventLog

/** Builds in-memory services once; `layer` hands the same instances to every runtime. */
export const memoryServices = async (backendOptions: Parameters<typeof sandboxMemory>[0] = {}) => {
  const scope = Effect.runSync(Scope.make())
  const context = await Effect.runPromise(
    Layer.buildWithScope(Layer.mergeAll(sandboxMemory(backendOptions), stateMemory, checkpointMemory, eventLogMemory, runLogMemory), scope)
  )
  const run = <A, E>(
    f: (s: { backend: SandboxBackend["Service"]; store: StateStore["Service"]; checkpoints: CheckpointStore["Service"]; log: EventLog["Service"]; runLog: RunLog["Service"] }) => Effect.Effect<A, E>
  ) =>
    Effect.runPromise(
      f({
        backend: Context.get(context, SandboxBackend),
        store: Context.get(context, StateStore),
        checkpoints: Context.get(context, CheckpointStore),
        log: Context.get(context, EventLog),
        runLog: Context.get(context, RunLog)
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

/**
 * A runtime on the process backend in a fresh data directory, for tests of real programs. `close`
 * ends its agents first (process sandboxes outlive their host by design), shuts it down and removes
 * the directory.
 */
export const processRuntime = async (config: Record<string, Record<string, unknown>>) => {
  const dataDir = await mkdtemp(join(tmpdir(), "l02-process-runtime-"))
  const runtime = await createRuntime({ backend: "process", dataDir, env: {}, config: { store: { pglite: "memory" }, ...config } })
  const close = async () => {
    for (const agent of await runtime.list()) if (agent.state !== "terminated") await runtime.terminate(agent.agentId, { force: true }).catch(() => undefined)
    await runtime.shutdown()
    await rm(dataDir, { recursive: true, force: true })
  }
  return { runtime, close }
}

/**
 * In-memory services whose store (records, events, checkpoints) the test can cut and restore, as a
 * network outage would: while it is cut every call fails with E2060. `cutAfter` wraps backend calls
 * so the store goes down right after the sandbox side effect (an outage during an operation).
 */
export const outageServices = async () => {
  const { StoreFailed } = await import("../../src/domain/Errors.ts")
  const services = await memoryServices()
  const real = await services.run((s) => Effect.succeed(s))
  const state = { down: false, cutAfter: [] as Array<string> }
  const failing = () => Effect.fail(new StoreFailed({ message: "connection to the store lost (test outage)" }))
  const guard = <F extends (...args: Array<never>) => Effect.Effect<unknown, unknown>>(f: F): F =>
    ((...args: Parameters<F>) => Effect.suspend(() => (state.down ? failing() : f(...args)))) as unknown as F
  const guardAll = <S extends object>(service: S): S =>
    Object.fromEntries(Object.entries(service).map(([k, v]) => [k, typeof v === "function" ? guard(v as never) : v])) as S
  const sideEffects = new Set(["start", "pause", "unpause", "stop", "remove"])
  const backend = Object.fromEntries(
    Object.entries(real.backend).map(([k, v]) => [
      k,
      sideEffects.has(k)
        ? (...args: Array<unknown>) =>
          Effect.tap((v as (...a: Array<unknown>) => Effect.Effect<unknown, unknown>)(...args), () =>
            Effect.sync(() => {
              const i = state.cutAfter.indexOf(k)
              if (i === -1) return
              state.cutAfter.splice(i, 1)
              if (state.cutAfter.length === 0) state.down = true
            }))
        : v
    ])
  ) as unknown as SandboxBackend["Service"]
  const layer = Layer.mergeAll(
    Layer.succeed(SandboxBackend, backend),
    Layer.succeed(StateStore, guardAll(real.store)),
    Layer.succeed(CheckpointStore, guardAll(real.checkpoints)),
    Layer.succeed(EventLog, guardAll(real.log))
  )
  return {
    layer,
    real,
    close: services.close,
    /** Cuts the store now. */
    cut: () => void (state.down = true),
    /** Cuts the store once the next calls of these backend methods (one each, as often as listed) have returned. */
    cutAfter: (...methods: Array<"start" | "pause" | "unpause" | "stop" | "remove">) => void state.cutAfter.push(...methods),
    restore: () => {
      state.down = false
      state.cutAfter.splice(0)
    },
    isDown: () => state.down
  }
}

/** The error a promise rejects with; throws if it resolves. */
export const failureOf = async (p: Promise<unknown>): Promise<{ code: string; message: string; agentId?: string }> => {
  try {
    await p
  } catch (error) {
    return error as { code: string; message: string; agentId?: string }
  }
  throw new Error("the operation succeeded")
}

/**
 * `l02-ticker`: for an input `{count, everyMs}` writes `count` output lines `{"type":"output","data":{"i":n}}`,
 * one every `everyMs`, then its done line.
 */
export const ticker: MemoryProgramEntry = {
  onLine: (line, context) =>
    Effect.gen(function* () {
      const message = JSON.parse(line) as { id: string; input: { count: number; everyMs: number } }
      for (let i = 1; i <= message.input.count; i++) {
        yield* context.write("stdout", `${JSON.stringify({ type: "output", data: { i } })}\n`)
        if (message.input.everyMs > 0) yield* Effect.sleep(message.input.everyMs)
      }
      yield* context.write("stdout", `${JSON.stringify({ type: "done", id: message.id })}\n`)
      return undefined
    })
}

