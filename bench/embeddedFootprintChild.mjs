// The child process of bench/embeddedFootprint.ts: a default-configured runtime (embedded store on
// files, memory backend) as an embedder runs it, importing the built package by name. Prints one
// JSON line: resident memory after the import, after createRuntime, and with N idle agents.
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { createRuntime } from "l02-agent-runtime"

const mb = (bytes) => Math.round((bytes / 2 ** 20) * 10) / 10
const gc = () => globalThis.gc?.({ type: "major", execution: "sync", flavor: "last-resort" })
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const agents = Number(process.argv[2] ?? 1000)
const settleSeconds = Number(process.argv[3] ?? 25)

gc()
const imported = process.memoryUsage().rss
const dataDir = mkdtempSync(join(tmpdir(), "l02-bench-footprint-"))
const runtime = await createRuntime({ backend: "memory", dataDir, env: {} })
gc()
const created = process.memoryUsage().rss
for (let i = 0; i < agents; i += 100) {
  await Promise.all(Array.from({ length: Math.min(100, agents - i) }, (_, j) => runtime.spawn({ name: `idle-${i + j}`, trustLevel: "TRUSTED" })))
}
const burst = process.memoryUsage().rss
// Idle as in service: the runtime gives a burst's memory back once quiet (runtime.reduce_memory_after_idle_seconds).
await sleep(settleSeconds * 1000)
const settled = process.memoryUsage().rss
await runtime.shutdown()
rmSync(dataDir, { recursive: true, force: true })
console.log(JSON.stringify({ agents, store: "embedded (default)", importedMb: mb(imported), afterCreateRuntimeMb: mb(created), afterBurstMb: mb(burst), idleMb: mb(settled), settleSeconds }))
