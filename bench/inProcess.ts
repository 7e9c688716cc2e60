// In-process benchmarks on the in-memory backend and stores: lifecycle transitions per second through
// the full runtime API (every transition persisted), and heap bytes per idle agent at 10,000 agents.
import { Context, Effect, Exit, Layer, Option, Scope } from "effect"
import type { LifecycleEvent } from "../src/domain/LifecycleEvent.ts"
import { strictSecurityContext } from "../src/domain/SandboxConfiguration.ts"
import { createRuntime } from "../src/runtime/createRuntime.ts"
import { layerMemory as checkpointMemory } from "../src/services/CheckpointStore.ts"
import { EventLog, layerMemory as eventLogMemory } from "../src/services/EventLog.ts"
import { layerMemory as sandboxMemory, SandboxBackend } from "../src/services/SandboxBackend.ts"
import { type AgentRecord, layerMemory as stateMemory, StateStore } from "../src/services/StateStore.ts"

const memoryLayer = () => Layer.mergeAll(sandboxMemory(), stateMemory, checkpointMemory, eventLogMemory)

const gc = () => {
  const g = (globalThis as { gc?: () => void }).gc
  if (g === undefined) throw new Error("run the bench with node --expose-gc (npm run bench does)")
  g()
  g()
}

/** Spawns `agents` idle agents and reports heap bytes per agent. */
export const benchIdleHeap = async (agents: number, hibernateAfterSeconds: number) => {
  const runtime = await createRuntime({
    layer: memoryLayer(),
    config: { store: { pglite: "memory" }, runtime: { hibernate_idle_after_seconds: hibernateAfterSeconds } },
    env: {}
  })
  gc()
  const before = process.memoryUsage().heapUsed
  const started = performance.now()
  const batch = 500
  for (let i = 0; i < agents; i += batch) {
    await Promise.all(Array.from({ length: Math.min(batch, agents - i) }, (_, j) => runtime.spawn({ name: `idle-${i + j}`, trustLevel: "TRUSTED" })))
  }
  const spawnMs = performance.now() - started
  // Idle means idle: wait past the hibernation delay so the runtime treats the agents as it would in service.
  if (hibernateAfterSeconds > 0) await new Promise((r) => setTimeout(r, hibernateAfterSeconds * 1000 + 600))
  const status = await runtime.fleetStatus()
  gc()
  const after = process.memoryUsage().heapUsed
  await runtime.shutdown()
  return {
    agents,
    hibernated: status.hibernated,
    heapBytesPerIdleAgent: Math.round((after - before) / agents),
    spawnsPerSecond: Math.round(agents / (spawnMs / 1000))
  }
}

/**
 * Runs suspend/resume cycles over `agents` agents and reports lifecycle transitions per second.
 * `warmup` cycles run first and are not counted, so the JIT has compiled the hot paths, as in service.
 */
export const benchTransitions = async (agents: number, cycles: number, warmup = 3) => {
  const runtime = await createRuntime({ layer: memoryLayer(), config: { store: { pglite: "memory" } }, env: {} })
  const ids = await Promise.all(Array.from({ length: agents }, (_, i) => runtime.spawn({ name: `t-${i}`, trustLevel: "TRUSTED" }).then((r) => r.agentId)))
  const cycle = () =>
    Promise.all(
      ids.map(async (id) => {
        await runtime.suspend(id)
        await runtime.resume(id)
      })
    )
  for (let c = 0; c < warmup; c++) await cycle()
  let transitions = 0
  const counter = (async () => {
    for await (const e of runtime.events()) if (e.type === "agent.state") transitions += 1
  })()
  await new Promise((r) => setTimeout(r, 20))
  const started = performance.now()
  for (let c = 0; c < cycles; c++) await cycle()
  const seconds = (performance.now() - started) / 1000
  await new Promise((r) => setTimeout(r, 50))
  const counted = transitions
  await runtime.shutdown()
  await counter
  return { agents, warmupCycles: warmup, cycles, transitions: counted, seconds: Number(seconds.toFixed(3)), transitionsPerSecond: Math.round(counted / seconds) }
}

/** Heap bytes per sandbox of the in-memory backend alone (the fake's own cost, included in the numbers above). */
export const benchMemoryBackendHeap = async (sandboxes: number) => {
  const scope = Effect.runSync(Scope.make())
  const context = await Effect.runPromise(Layer.buildWithScope(sandboxMemory(), scope))
  const backend = Context.get(context, SandboxBackend)
  // What an earlier measurement left behind settles first (the same wait as after), so it is not counted here.
  await new Promise((r) => setTimeout(r, 1600))
  gc()
  const before = process.memoryUsage().heapUsed
  const one = (i: number) =>
    Effect.runPromise(
      Effect.flatMap(
        backend.provision({
          agentId: `a${i}`,
          sessionId: "s",
          runtimeId: "bench",
          name: "n",
          env: {},
          labels: {},
          sandbox: {
            trustLevel: "TRUSTED",
            runtimeClass: "runc",
            networkPolicy: "allow_egress",
            securityContext: strictSecurityContext,
            resources: { cpu: "1", cpuMillis: 1000, memory: "1Gi", memoryBytes: 2 ** 30, tokensPerHour: 0, pids: 64 }
          }
        }),
        (info) => backend.start(info.sandboxId)
      )
    )
  // The same pattern as the runtime measurement: batches of 500, then the same idle wait.
  for (let i = 0; i < sandboxes; i += 500) await Promise.all(Array.from({ length: Math.min(500, sandboxes - i) }, (_, j) => one(i + j)))
  await new Promise((r) => setTimeout(r, 1600))
  gc()
  const after = process.memoryUsage().heapUsed
  await Effect.runPromise(Scope.close(scope, Exit.void))
  return { sandboxes, heapBytesPerSandbox: Math.round((after - before) / sandboxes) }
}

/** Heap bytes per agent of the in-memory stores alone: one record and three lifecycle events per agent. */
export const benchMemoryStoresHeap = async (agents: number, sample: { readonly record: AgentRecord; readonly events: ReadonlyArray<LifecycleEvent> }) => {
  const scope = Effect.runSync(Scope.make())
  const context = await Effect.runPromise(Layer.buildWithScope(Layer.mergeAll(stateMemory, eventLogMemory), scope))
  const store = Context.get(context, StateStore)
  const log = Context.get(context, EventLog)
  gc()
  const before = process.memoryUsage().heapUsed
  for (let i = 0; i < agents; i++) {
    const agentId = `${sample.record.agentId.slice(0, 30)}${String(i).padStart(6, "0")}`
    await Effect.runPromise(
      Effect.andThen(
        store.saveAgent({ ...sample.record, agentId, snapshot: structuredClone(sample.record.snapshot), createdAt: new Date().toISOString(), updatedAt: new Date().toISOString() }),
        log.append(sample.events.map((e) => ({ ...e, agentId, at: new Date().toISOString() })))
      )
    )
  }
  gc()
  const after = process.memoryUsage().heapUsed
  await Effect.runPromise(Scope.close(scope, Exit.void))
  return { agents, heapBytesPerAgent: Math.round((after - before) / agents) }
}

/** One agent's stored record and events, as the runtime writes them, to size the in-memory stores. */
export const sampleAgentData = async () => {
  const scope = Effect.runSync(Scope.make())
  const context = await Effect.runPromise(Layer.buildWithScope(memoryLayer(), scope))
  const runtime = await createRuntime({ layer: Layer.succeedContext(context), config: { store: { pglite: "memory" } }, env: {} })
  const { agentId } = await runtime.spawn({ name: "sample", trustLevel: "TRUSTED" })
  await runtime.shutdown()
  const record = await Effect.runPromise(Effect.flatMap(Effect.service(StateStore).pipe(Effect.provide(Layer.succeedContext(context))), (s) => s.getAgent(agentId)))
  const events = await Effect.runPromise(Effect.flatMap(Effect.service(EventLog).pipe(Effect.provide(Layer.succeedContext(context))), (l) => l.query({ agentId })))
  await Effect.runPromise(Scope.close(scope, Exit.void))
  return { record: Option.getOrThrow(record), events }
}
