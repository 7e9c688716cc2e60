// In-process benchmarks on the in-memory backend and stores: lifecycle transitions per second through
// the full runtime API (every transition persisted), and heap bytes per idle agent at 10,000 agents.
import { Layer } from "effect"
import { createRuntime } from "../src/runtime/createRuntime.ts"
import { layerMemory as checkpointMemory } from "../src/services/CheckpointStore.ts"
import { layerMemory as eventLogMemory } from "../src/services/EventLog.ts"
import { layerMemory as sandboxMemory } from "../src/services/SandboxBackend.ts"
import { layerMemory as stateMemory } from "../src/services/StateStore.ts"

const memoryLayer = () => Layer.mergeAll(sandboxMemory(), stateMemory, checkpointMemory, eventLogMemory)

const gc = () => {
  const g = (globalThis as { gc?: () => void }).gc
  if (g === undefined) throw new Error("run the bench with node --expose-gc (npm run bench does)")
  g()
  g()
}

/** Spawns `agents` idle agents and reports heap bytes per agent. */
export const benchIdleHeap = async (agents: number) => {
  const runtime = await createRuntime({ layer: memoryLayer(), config: { store: { pglite: "memory" } }, env: {} })
  gc()
  const before = process.memoryUsage().heapUsed
  const started = performance.now()
  const batch = 500
  for (let i = 0; i < agents; i += batch) {
    await Promise.all(Array.from({ length: Math.min(batch, agents - i) }, (_, j) => runtime.spawn({ name: `idle-${i + j}`, trustLevel: "TRUSTED" })))
  }
  const spawnMs = performance.now() - started
  gc()
  const after = process.memoryUsage().heapUsed
  await runtime.shutdown()
  return { agents, heapBytesPerIdleAgent: Math.round((after - before) / agents), spawnsPerSecond: Math.round(agents / (spawnMs / 1000)) }
}

/** Runs suspend/resume cycles over `agents` agents and reports lifecycle transitions per second. */
export const benchTransitions = async (agents: number, cycles: number) => {
  const runtime = await createRuntime({ layer: memoryLayer(), config: { store: { pglite: "memory" } }, env: {} })
  const ids = await Promise.all(Array.from({ length: agents }, (_, i) => runtime.spawn({ name: `t-${i}`, trustLevel: "TRUSTED" }).then((r) => r.agentId)))
  let transitions = 0
  const counter = (async () => {
    for await (const e of runtime.events()) if (e.type === "agent.state") transitions += 1
  })()
  const started = performance.now()
  for (let c = 0; c < cycles; c++) {
    await Promise.all(ids.map(async (id) => {
      await runtime.suspend(id)
      await runtime.resume(id)
    }))
  }
  const seconds = (performance.now() - started) / 1000
  await new Promise((r) => setTimeout(r, 50))
  const counted = transitions
  await runtime.shutdown()
  await counter
  return { agents, cycles, transitions: counted, seconds: Number(seconds.toFixed(3)), transitionsPerSecond: Math.round(counted / seconds) }
}
