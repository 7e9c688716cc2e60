import { type ChildProcess, spawn } from "node:child_process"
import { readFileSync, readdirSync } from "node:fs"
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { createInterface } from "node:readline"
import { afterEach, describe, expect, it } from "vitest"
import { createRuntime } from "../../src/runtime/createRuntime.ts"

const fixture = new URL("./fixtures/runtimeHost.ts", import.meta.url).pathname

interface ProcInfo {
  readonly pid: number
  readonly pgid: number
  readonly cmdline: string
}

const processes = (): Array<ProcInfo> =>
  readdirSync("/proc")
    .filter((p) => /^\d+$/.test(p))
    .flatMap((p) => {
      try {
        const stat = readFileSync(`/proc/${p}/stat`, "utf8")
        const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
        if (fields[0] === "Z") return []
        return [{ pid: Number(p), pgid: Number(fields[2]), cmdline: readFileSync(`/proc/${p}/cmdline`, "utf8").replaceAll("\0", " ") }]
      } catch {
        return []
      }
    })

/** The sandbox ids whose process groups still have a live process, and those processes' pids. */
const sandboxProcesses = (dataDir: string): { sandboxes: Set<string>; pids: Array<number> } => {
  const all = processes()
  const leaders = new Map<number, string>()
  for (const p of all) {
    const match = new RegExp(`${dataDir}/sandboxes/([^/ ]+)/`).exec(p.cmdline)
    if (match !== null) leaders.set(p.pgid, match[1]!)
  }
  const members = all.filter((p) => leaders.has(p.pgid))
  return { sandboxes: new Set(members.map((p) => leaders.get(p.pgid)!)), pids: members.map((p) => p.pid) }
}

let host: ChildProcess | undefined
let dir: string | undefined
afterEach(async () => {
  host?.kill("SIGKILL")
  if (dir !== undefined) {
    for (const pid of sandboxProcesses(dir).pids) {
      try {
        process.kill(pid, "SIGKILL")
      } catch {}
    }
    await rm(dir, { recursive: true, force: true })
  }
})

describe("crash recovery", () => {
  it("after SIGKILL in the middle of a burst, every acknowledged agent is accounted for and nothing is left unowned", async () => {
    dir = await mkdtemp(join(tmpdir(), "l02-crash-"))
    host = spawn(process.execPath, [fixture, dir, "16"], { stdio: ["ignore", "pipe", "inherit"] })
    const acked = new Map<string, string>()
    await new Promise<void>((resolve, reject) => {
      const lines = createInterface({ input: host!.stdout! })
      lines.on("line", (line) => {
        const [kind, , agentId, state] = line.split(" ")
        if (kind === "ack") acked.set(agentId!, state!)
        // Kill once a few operations were acknowledged and others are surely in flight.
        if (acked.size >= 6) {
          host!.kill("SIGKILL")
          resolve()
        }
      })
      host!.on("exit", () => resolve())
      setTimeout(() => reject(new Error("the host never acknowledged enough operations")), 60_000)
    })
    await new Promise((r) => host!.once("exit", r).once("close", r))
    expect(acked.size).toBeGreaterThanOrEqual(6)
    // It died mid-burst: not every agent had been spawned and suspended.
    expect([...acked.values()].filter((s) => s === "suspended").length).toBeLessThan(8)

    const runtime = await createRuntime({
      dataDir: dir,
      backend: "process",
      env: {},
      config: { runtime: { hibernate_idle_after_seconds: 0 }, lifecycle: { health_check_interval_seconds: 0, restart_backoff_initial_ms: 10 } }
    })
    try {
      const agents = await runtime.list()
      const byId = new Map(agents.map((a) => [a.agentId, a]))
      for (const [agentId, state] of acked) {
        const found = byId.get(agentId)
        expect(found, `acknowledged agent ${agentId}`).toBeDefined()
        if (state === "suspended") expect(["suspended", "resuming", "running"]).toContain(found!.state)
        else expect(["running", "suspending", "suspended", "spawning", "failed"]).toContain(found!.state)
      }
      // In-flight operations complete: nothing stays pending or half-way.
      const settled = async () => {
        for (let i = 0; i < 200; i++) {
          const states = (await runtime.list()).map((a) => a.state)
          if (states.every((s) => s === "running" || s === "suspended")) return states
          await new Promise((r) => setTimeout(r, 100))
        }
        return (await runtime.list()).map((a) => a.state)
      }
      expect((await settled()).filter((s) => s !== "running" && s !== "suspended")).toEqual([])
      // Every process group left on the machine belongs to an agent that is running or paused, and
      // every such agent has its sandbox.
      const live = await runtime.list()
      const expected = new Set(live.map((a) => a.sandboxId).filter((id): id is string => id !== undefined))
      expect(sandboxProcesses(dir).sandboxes).toEqual(expected)
      for (const a of live) await runtime.terminate(a.agentId, { force: true })
      for (let i = 0; i < 50 && sandboxProcesses(dir).pids.length > 0; i++) await new Promise((r) => setTimeout(r, 100))
      expect(sandboxProcesses(dir).pids).toEqual([])
    } finally {
      await runtime.shutdown()
    }
  }, 120_000)
})
