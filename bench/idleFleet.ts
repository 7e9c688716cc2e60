// The supervisor's resident memory with N idle agents on Docker: run in a child process of its own
// (`npm run bench` starts it), so nothing else of the bench is counted. The store is PostgreSQL when
// L02_BENCH_POSTGRES_URL answers (a supervisor's production setup), else embedded PGlite, and says which.
import { execFileSync, spawn } from "node:child_process"
import { randomUUID } from "node:crypto"
import { createRuntime } from "../src/runtime/createRuntime.ts"

const mb = (bytes: number) => Math.round((bytes / 2 ** 20) * 10) / 10

const gc = () => {
  const g = (globalThis as { gc?: () => void }).gc
  g?.()
  g?.()
}

/** Spawns `agents` idle agents on Docker, measures, terminates them; prints one JSON line. */
const child = async (agents: number, storeUrl: string | undefined) => {
  const runtimeId = `bench-idle-${randomUUID().slice(0, 8)}`
  let schema: string | undefined
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
    const ids: Array<string> = []
    for (let i = 0; i < agents; i += 100) {
      const batch = await Promise.all(Array.from({ length: Math.min(100, agents - i) }, () => runtime.spawn({ name: "idle", trustLevel: "UNTRUSTED", command: ["/bin/l02-agent"], resources: { cpu: "100m", memory: "32Mi", pids: 16 } })))
      for (const r of batch) ids.push(r.agentId)
    }
    const spawnSeconds = (performance.now() - started) / 1000
    // Idle: past the hibernation delay and one liveness check.
    await new Promise((r) => setTimeout(r, 3000))
    gc()
    const loaded = process.memoryUsage()
    const status = await runtime.fleetStatus()
    console.log(
      JSON.stringify({
        agents,
        store: url === undefined ? "pglite (memory)" : "postgresql",
        running: status.byState.running ?? 0,
        hibernated: status.hibernated,
        spawnSeconds: Math.round(spawnSeconds),
        rssMbBefore: mb(base.rss),
        rssMb: mb(loaded.rss),
        heapMb: mb(loaded.heapUsed),
        externalMb: mb(loaded.external),
        rssKbPerAgent: Math.round((loaded.rss - base.rss) / agents / 1024),
        heapKbPerAgent: Math.round(((loaded.heapUsed - base.heapUsed) / agents / 1024) * 10) / 10
      })
    )
    for (let i = 0; i < ids.length; i += 50) await Promise.all(ids.slice(i, i + 50).map((id) => runtime.terminate(id, { force: true })))
  } finally {
    await runtime.shutdown()
    if (schema !== undefined && storeUrl !== undefined) execFileSync("psql", [storeUrl, "-q", "-c", `DROP SCHEMA ${schema} CASCADE`], { stdio: "ignore" })
  }
}

/** Runs the measurement in a fresh Node process and returns its JSON. */
export const benchIdleFleet = (agents: number): Promise<Record<string, unknown>> =>
  new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, ["--expose-gc", new URL(import.meta.url).pathname, "--child", String(agents)], { stdio: ["ignore", "pipe", "inherit"] })
    let out = ""
    proc.stdout.on("data", (d: Buffer) => (out += d.toString()))
    proc.on("exit", (code) => {
      const line = out.trim().split("\n").find((l) => l.startsWith("{"))
      if (code === 0 && line !== undefined) resolve(JSON.parse(line) as Record<string, unknown>)
      else reject(new Error(`the idle-fleet bench exited with ${code}: ${out.slice(-500)}`))
    })
  })

const storeUrlAnswering = (): string | undefined => {
  const url = process.env.L02_BENCH_POSTGRES_URL ?? "postgres://postgres@127.0.0.1:5432/test"
  try {
    execFileSync("psql", [url, "-q", "-c", "SELECT 1"], { stdio: "ignore" })
    return url
  } catch {
    return undefined
  }
}

if (process.argv[2] === "--child") {
  await child(Number(process.argv[3] ?? 1000), storeUrlAnswering())
} else if (import.meta.url === `file://${process.argv[1]}`) {
  console.log(JSON.stringify(await benchIdleFleet(Number(process.env.L02_BENCH_IDLE_AGENTS ?? 1000)), null, 2))
}
