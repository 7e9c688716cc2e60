// Runner processes of one fleet for the cluster tests: `l02 serve` with cluster.enabled on a
// PostgreSQL schema of the test's own, each on its own data directory, HTTP port and runner port.
import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import { randomUUID } from "node:crypto"
import { mkdtempSync, rmSync } from "node:fs"
import { createServer } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { createInterface } from "node:readline"

const cli = new URL("../../src/cli/main.ts", import.meta.url).pathname

/** A free TCP port on 127.0.0.1 (asked of the kernel, then released). */
export const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number }
      server.close(() => resolve(port))
    })
  })

/** A PostgreSQL schema of the test's own; its URL points the store at it. */
export const makeSchema = (baseUrl: string) => {
  const schema = `l02_cl_${randomUUID().replaceAll("-", "").slice(0, 12)}`
  const psql = (sql: string) => execFileSync("psql", [baseUrl, "-v", "ON_ERROR_STOP=1", "-c", sql], { stdio: "pipe" })
  psql(`CREATE SCHEMA ${schema}`)
  const url = new URL(baseUrl)
  url.searchParams.set("options", `-c search_path=${schema}`)
  return { url: url.toString(), name: schema, drop: () => psql(`DROP SCHEMA ${schema} CASCADE`) }
}

/** One runner process. */
export interface Runner {
  readonly name: string
  readonly url: string
  readonly runnerPort: number
  readonly child: ChildProcess
  readonly output: Array<string>
}

/** Starts a runner and resolves once it serves HTTP. */
export const startRunner = async (options: {
  readonly name: string
  readonly storeUrl: string
  readonly dataDir: string
  readonly leaseSeconds: number
  readonly backend?: string | undefined
  readonly env?: Readonly<Record<string, string>> | undefined
}): Promise<Runner> => {
  const [httpPort, runnerPort] = [await freePort(), await freePort()]
  const child = spawn(process.execPath, [cli, "serve", "--cluster", "--port", String(httpPort)], {
    stdio: ["ignore", "pipe", "pipe"],
    env: {
      PATH: process.env.PATH ?? "/usr/bin:/bin",
      HOME: options.dataDir,
      L02_RUNTIME__BACKEND: options.backend ?? "memory",
      L02_RUNTIME__DATA_DIR: options.dataDir,
      L02_STORE__URL: options.storeUrl,
      L02_CLUSTER__RUNNER_PORT: String(runnerPort),
      L02_CLUSTER__LEASE_SECONDS: String(options.leaseSeconds),
      L02_CLUSTER__LEASE_REFRESH_SECONDS: String(Math.max(1, Math.floor(options.leaseSeconds / 3))),
      L02_POOLS__WARM: "[]",
      ...options.env
    }
  })
  const output: Array<string> = []
  for (const stream of [child.stdout!, child.stderr!]) createInterface({ input: stream }).on("line", (line) => output.push(line))
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`runner ${options.name} did not serve within 60 s:\n${output.join("\n")}`)), 60_000)
    const lines = createInterface({ input: child.stdout! })
    lines.on("line", (line) => {
      const m = /serving on (http:\/\/\S+)/.exec(line)
      if (m !== null) {
        clearTimeout(timer)
        resolve(m[1]!)
      }
    })
    child.once("exit", (code) => {
      clearTimeout(timer)
      reject(new Error(`runner ${options.name} exited with ${code}:\n${output.join("\n")}`))
    })
  })
  return { name: options.name, url, runnerPort, child, output }
}

/** Three (or `count`) runners on one store, each with a data directory of its own. */
export const startFleet = async (storeUrl: string, count: number, leaseSeconds: number, backend?: string, env?: Readonly<Record<string, string>>) => {
  const root = mkdtempSync(join(tmpdir(), "l02-cluster-"))
  const runners: Array<Runner> = []
  for (let i = 0; i < count; i++) {
    runners.push(await startRunner({ name: `r${i}`, storeUrl, dataDir: join(root, `r${i}`), leaseSeconds, backend, env }))
  }
  return {
    runners,
    stop: async () => {
      await Promise.all(
        runners.map((r) =>
          r.child.exitCode !== null || r.child.signalCode !== null
            ? undefined
            : new Promise<void>((resolve) => {
              r.child.once("exit", () => resolve())
              r.child.kill("SIGTERM")
              setTimeout(() => r.child.kill("SIGKILL"), 20_000).unref()
            })
        )
      )
      rmSync(root, { recursive: true, force: true })
    }
  }
}

/** A JSON call to a runner's HTTP API: its status and body. */
export const api = async (runner: Runner, method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> => {
  const response = await fetch(`${runner.url}${path}`, {
    method,
    headers: body === undefined ? {} : { "content-type": "application/json" },
    ...(body === undefined ? {} : { body: JSON.stringify(body) })
  })
  const text = await response.text()
  return { status: response.status, body: text === "" ? undefined : JSON.parse(text) }
}

/** Runs `f` over `items`, `concurrency` at a time. */
export const eachLimited = async <A, B>(items: ReadonlyArray<A>, concurrency: number, f: (item: A, index: number) => Promise<B>): Promise<Array<B>> => {
  const results: Array<B> = new Array(items.length)
  let next = 0
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < items.length) {
        const i = next++
        results[i] = await f(items[i]!, i)
      }
    })
  )
  return results
}
