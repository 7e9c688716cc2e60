// The child process of bench/idleFleet.ts: a supervisor as an embedder runs it, i.e. a plain
// JavaScript module that imports the built package by name (`npm run bench` builds dist/ first).
// Spawns N idle agents on Docker, measures the process, terminates them, prints one JSON line.
import { execFileSync } from "node:child_process"
import { randomUUID } from "node:crypto"
import { readFileSync } from "node:fs"
import { getHeapSpaceStatistics } from "node:v8"
import { createRuntime } from "l02-agent-runtime"

const mb = (bytes) => Math.round((bytes / 2 ** 20) * 10) / 10
// The same memory-reducing collection the runtime runs when quiet, so the base is comparable with the
// settled state (a fresh process still holds the young generation its startup grew).
const gc = () => globalThis.gc?.({ type: "major", execution: "sync", flavor: "last-resort" })
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

const agents = Number(process.argv[2] ?? 1000)
const storeUrl = process.argv[3] === "" ? undefined : process.argv[3]
const settleSeconds = Number(process.argv[4] ?? 30)

const runtimeId = `bench-idle-${randomUUID().slice(0, 8)}`
let schema
let url = storeUrl
if (storeUrl !== undefined) {
  schema = runtimeId.replaceAll("-", "_")
  execFileSync("psql", [storeUrl, "-q", "-c", `CREATE SCHEMA ${schema}`])
  const u = new URL(storeUrl)
  u.searchParams.set("options", `-c search_path=${schema}`)
  url = u.toString()
}
const runtime = await createRuntime({
  backend: "docker",
  env: {},
  config: {
    store: url === undefined ? { pglite: "memory" } : { url },
    runtime: { runtime_id: runtimeId, hibernate_idle_after_seconds: 1 },
    lifecycle: { graceful_shutdown_seconds: 0, health_check_interval_seconds: 15, max_concurrent_spawns: 16 },
    // UNTRUSTED agents run without a network (Docker's fast path, NetworkDisabled); on runc here, as Kata is not installed.
    sandbox: { trust_runtime_classes: { TRUSTED: "runc", STANDARD: "gvisor", UNTRUSTED: "runc", CONFIDENTIAL: "kata-cc" } }
  }
})
try {
  gc()
  const base = process.memoryUsage()
  const started = performance.now()
  const ids = []
  for (let i = 0; i < agents; i += 100) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(100, agents - i) }, () =>
        runtime.spawn({ name: "idle", trustLevel: "UNTRUSTED", command: ["/bin/l02-agent"], resources: { cpu: "100m", memory: "32Mi", pids: 16 } })
      )
    )
    for (const r of batch) ids.push(r.agentId)
  }
  const spawnSeconds = (performance.now() - started) / 1000
  // Idle: past the hibernation delay and one liveness check; then the steady state after settling.
  // No collection forced from here on: the settled state is what the runtime gives back by itself.
  await sleep(3000)
  const justIdle = process.memoryUsage()
  await sleep(settleSeconds * 1000)
  const settled = process.memoryUsage()
  const status = await runtime.fleetStatus()
  console.log(
    JSON.stringify({
      agents,
      store: url === undefined ? "pglite (memory)" : "postgresql",
      running: status.byState.running ?? 0,
      hibernated: status.hibernated,
      spawnSeconds: Math.round(spawnSeconds),
      rssMbBefore: mb(base.rss),
      rssMbJustIdle: mb(justIdle.rss),
      settleSeconds,
      rssMb: mb(settled.rss),
      heapMb: mb(settled.heapUsed),
      // Where the resident memory is: V8's spaces (committed, physical) and the rest of the process.
      heapTotalMb: mb(settled.heapTotal),
      spacesPhysicalMb: Object.fromEntries(getHeapSpaceStatistics().filter((s) => s.physical_space_size > 0).map((s) => [s.space_name, mb(s.physical_space_size)])),
      rollup: Object.fromEntries(
        readFileSync("/proc/self/smaps_rollup", "utf8")
          .split("\n")
          .map((line) => /^(Rss|Anonymous|Pss_File):\s+(\d+) kB/.exec(line))
          .filter((m) => m !== null)
          .map((m) => [m[1], Math.round(Number(m[2]) / 102.4) / 10])
      ),
      rssKbPerAgent: Math.round((settled.rss - base.rss) / agents / 1024),
      heapKbPerAgent: Math.round(((settled.heapUsed - base.heapUsed) / agents / 1024) * 10) / 10
    })
  )
  for (let i = 0; i < ids.length; i += 50) await Promise.all(ids.slice(i, i + 50).map((id) => runtime.terminate(id, { force: true })))
} finally {
  await runtime.shutdown()
  if (schema !== undefined && storeUrl !== undefined) execFileSync("psql", [storeUrl, "-q", "-c", `DROP SCHEMA ${schema} CASCADE`], { stdio: "ignore" })
}
