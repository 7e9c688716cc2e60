// `npm run bench`: runs every benchmark that can run here, prints the numbers and writes JSON to
// bench/results/latest.json. Targets are checked and reported, never asserted in unit tests.
import { mkdirSync, writeFileSync } from "node:fs"
import { benchIdleHeap, benchMemoryBackendHeap, benchMemoryStoresHeap, benchTransitions, sampleAgentData } from "./inProcess.ts"

const results: Record<string, unknown> = { at: new Date().toISOString(), node: process.version }
const targets: Array<{ name: string; value: number; target: string; ok: boolean }> = []

const transitions = await benchTransitions(1000, 5)
results.transitions = transitions
targets.push({ name: "lifecycle transitions/s (in-memory, persisted)", value: transitions.transitionsPerSecond, target: ">= 20000", ok: transitions.transitionsPerSecond >= 20_000 })

const heap = await benchIdleHeap(10_000, 1)
const backendHeap = await benchMemoryBackendHeap(10_000)
const storesHeap = await benchMemoryStoresHeap(10_000, await sampleAgentData())
const runtimeShare = heap.heapBytesPerIdleAgent - backendHeap.heapBytesPerSandbox - storesHeap.heapBytesPerAgent
results.idleHeap = {
  ...heap,
  memoryBackendBytesPerSandbox: backendHeap.heapBytesPerSandbox,
  memoryStoresBytesPerAgent: storesHeap.heapBytesPerAgent,
  runtimeBytesPerIdleAgent: runtimeShare
}
targets.push({ name: "heap bytes per idle agent at 10,000 (the runtime's own: handle, snapshot, fleet timer)", value: runtimeShare, target: "<= 8192", ok: runtimeShare <= 8192 })
targets.push({ name: "heap bytes per idle agent at 10,000 (all, incl. the in-memory backend's fake sandbox)", value: heap.heapBytesPerIdleAgent, target: "(reported)", ok: true })

const extra = process.env.L02_BENCH_DOCKER === "0" ? [] : ["./docker.ts"]
for (const module of extra) {
  try {
    const m = (await import(module)) as { benchDocker?: (o: Record<string, unknown>) => Promise<Record<string, unknown>> }
    if (m.benchDocker !== undefined) results.docker = await m.benchDocker({})
  } catch (error) {
    results.docker = { skipped: String((error as Error).message ?? error) }
  }
}

console.log(JSON.stringify(results, null, 2))
console.log("\ntarget check:")
for (const t of targets) console.log(`  ${t.ok ? "ok  " : "MISS"} ${t.name}: ${t.value} (target ${t.target})`)
mkdirSync(new URL("./results/", import.meta.url), { recursive: true })
writeFileSync(new URL("./results/latest.json", import.meta.url), JSON.stringify({ ...results, targets }, null, 2))
