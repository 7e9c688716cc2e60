// Crash recovery on Docker: the host process is killed with SIGKILL in the middle of a burst of spawns
// and suspends; a new runtime on the same store re-attaches to every container an acknowledged agent
// owns, completes what was in flight, and leaves no container that nobody owns. Gated by L02_TEST_DOCKER.
import { type ChildProcess, spawn } from "node:child_process"
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { createInterface } from "node:readline"
import { afterEach, describe, expect, it } from "vitest"
import { createRuntime } from "../../src/runtime/createRuntime.ts"
import { dockerEnabled, testDocker } from "../backends/docker/dockerTestSupport.ts"

const fixture = new URL("./fixtures/runtimeHost.ts", import.meta.url).pathname
const docker = testDocker()
let host: ChildProcess | undefined
let dir: string | undefined
let runtimeId: string | undefined

const containersOf = async (id: string) =>
  (await docker.listContainers({ all: true, filters: { label: [`l02.dev/runtime-id=${id}`] } })).map((c) => c.Id)

afterEach(async () => {
  host?.kill("SIGKILL")
  if (runtimeId !== undefined) {
    for (const id of await containersOf(runtimeId)) await docker.getContainer(id).remove({ force: true, v: true }).catch(() => undefined)
  }
  if (dir !== undefined) await rm(dir, { recursive: true, force: true })
})

describe.skipIf(!dockerEnabled)("crash recovery on Docker", () => {
  it("after SIGKILL mid-burst, every acknowledged agent keeps its container and no container is left unowned", async () => {
    dir = await mkdtemp(join(tmpdir(), "l02-dcrash-"))
    host = spawn(process.execPath, [fixture, dir, "10", "docker"], { stdio: ["ignore", "pipe", "inherit"] })
    const acked = new Map<string, string>()
    await new Promise<void>((resolve, reject) => {
      const lines = createInterface({ input: host!.stdout! })
      lines.on("line", (line) => {
        const [kind, a, b, c] = line.split(" ")
        if (kind === "ready") runtimeId = a
        if (kind === "ack") acked.set(b!, c!)
        if (acked.size >= 5) {
          host!.kill("SIGKILL")
          resolve()
        }
      })
      host!.on("exit", () => resolve())
      setTimeout(() => reject(new Error("the host never acknowledged enough operations")), 90_000)
    })
    await new Promise((r) => host!.once("exit", r).once("close", r))
    expect(runtimeId).toBeDefined()
    expect(acked.size).toBeGreaterThanOrEqual(5)

    const runtime = await createRuntime({
      dataDir: dir,
      backend: "docker",
      env: {},
      config: { runtime: { hibernate_idle_after_seconds: 0 }, lifecycle: { health_check_interval_seconds: 0, restart_backoff_initial_ms: 10, graceful_shutdown_seconds: 1 } }
    })
    try {
      expect(runtime.runtimeId).toBe(runtimeId)
      for (const [agentId] of acked) expect((await runtime.getState(agentId)).agentId).toBe(agentId)
      let agents = await runtime.list()
      for (let i = 0; i < 300 && !agents.every((a) => a.state === "running" || a.state === "suspended"); i++) {
        await new Promise((r) => setTimeout(r, 100))
        agents = await runtime.list()
      }
      expect(agents.filter((a) => a.state !== "running" && a.state !== "suspended")).toEqual([])
      const owned = new Set(agents.map((a) => a.sandboxId).filter((s): s is string => s !== undefined))
      expect(new Set(await containersOf(runtimeId!))).toEqual(owned)
      for (const a of agents) await runtime.terminate(a.agentId, { force: true })
      expect(await containersOf(runtimeId!)).toEqual([])
    } finally {
      await runtime.shutdown()
    }
  }, 240_000)
})
