// The supervisor's resident memory with N idle agents on Docker: run in a child process of its own
// (bench/idleFleetChild.mjs, importing the built package by name, as an embedder does), so nothing
// else of the bench is counted. The store is PostgreSQL when L02_BENCH_POSTGRES_URL answers (a
// supervisor's production setup), else embedded PGlite, and says which. The RSS reported is the
// steady state after L02_BENCH_IDLE_SETTLE_SECONDS (default 30) of idling; the one right after the
// spawn burst is reported beside it.
import { execFileSync, spawn } from "node:child_process"

/** Runs the measurement in a fresh Node process and returns its JSON. */
export const benchIdleFleet = (agents: number): Promise<Record<string, unknown>> =>
  new Promise((resolve, reject) => {
    const child = new URL("./idleFleetChild.mjs", import.meta.url).pathname
    const settle = process.env.L02_BENCH_IDLE_SETTLE_SECONDS ?? "30"
    const proc = spawn(process.execPath, ["--expose-gc", child, String(agents), storeUrlAnswering() ?? "", settle], { stdio: ["ignore", "pipe", "inherit"] })
    let out = ""
    proc.stdout.on("data", (d: Buffer) => (out += d.toString()))
    proc.on("exit", (code) => {
      const line = out.trim().split("\n").find((l) => l.startsWith("{"))
      if (code === 0 && line !== undefined) resolve(JSON.parse(line) as Record<string, unknown>)
      else reject(new Error(`the idle-fleet bench exited with ${code}: ${out.slice(-500)}`))
    })
  })

/** L02_BENCH_POSTGRES_URL (default the local test database) when it answers, else undefined. */
export const storeUrlAnswering = (): string | undefined => {
  const url = process.env.L02_BENCH_POSTGRES_URL ?? "postgres://postgres@127.0.0.1:5432/test"
  try {
    execFileSync("psql", [url, "-q", "-c", "SELECT 1"], { stdio: "ignore" })
    return url
  } catch {
    return undefined
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  console.log(JSON.stringify(await benchIdleFleet(Number(process.env.L02_BENCH_IDLE_AGENTS ?? 1000)), null, 2))
}
