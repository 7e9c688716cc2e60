// A workflow survives the loss of its supervisor: kill -9 during a node, then a new runtime on the
// same data directory (process backend, embedded SQLite store) resumes the run. The finished node is
// not run again, the interrupted node's agent is adopted (not spawned twice), and the run completes.
// A graceful restart during a node does the same without the step counting as a failed try.
import { type ChildProcess, spawn } from "node:child_process"
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { createInterface } from "node:readline"
import { afterEach, describe, expect, it } from "vitest"
import { createRuntime, type L02Runtime } from "../../src/runtime/createRuntime.ts"
import { crashGraph } from "./fixtures/crashGraph.ts"

const fixture = new URL("./fixtures/workflowHost.ts", import.meta.url).pathname
const options = (dataDir: string) =>
  ({ dataDir, backend: "process", env: {}, fillWarmPools: false, config: { lifecycle: { health_check_interval_seconds: 0 } } }) as const

let host: ChildProcess | undefined
let runtime: L02Runtime | undefined
let dir: string | undefined
afterEach(async () => {
  host?.kill("SIGKILL")
  if (runtime !== undefined) {
    for (const a of await runtime.list()) if (a.state !== "terminated") await runtime.terminate(a.agentId, { force: true }).catch(() => undefined)
    await runtime.shutdown()
  }
  runtime = undefined
  if (dir !== undefined) await rm(dir, { recursive: true, force: true })
})

const agentsByNode = async (r: L02Runtime, workflowId: string) => {
  const counts: Record<string, number> = {}
  for (const a of await r.list({ labels: { "workflow.l02.dev/run": workflowId } })) {
    const node = a.config.labels!["workflow.l02.dev/node"]!
    counts[node] = (counts[node] ?? 0) + 1
  }
  return counts
}

const starts = async (r: L02Runtime, workflowId: string) =>
  (await r.history({ agentId: workflowId })).filter((e) => e.type === "workflow.node.started").map((e) => (e.data as { node: string }).node)

describe("workflow durability", () => {
  it("resumes after kill -9 during a node: the finished node is not run again and the running node's agent is adopted", async () => {
    dir = await mkdtemp(join(tmpdir(), "l02-wf-crash-"))
    host = spawn(process.execPath, [fixture, dir], { stdio: ["ignore", "pipe", "inherit"] })
    let workflowId = ""
    await new Promise<void>((resolve, reject) => {
      const lines = createInterface({ input: host!.stdout! })
      lines.on("line", (line) => {
        const [kind, a, b] = line.split(" ")
        if (kind === "run") workflowId = a!
        // Killed while the slow node's step is under way (its agent answers after 3 s).
        if (kind === "node" && a === "slow" && b === "started") setTimeout(() => { host!.kill("SIGKILL"); resolve() }, 500)
      })
      host!.on("exit", () => resolve())
      setTimeout(() => reject(new Error("the host never started the slow node")), 60_000)
    })
    await new Promise((r) => host!.once("exit", r).once("close", r))
    expect(workflowId).not.toBe("")

    runtime = await createRuntime(options(dir))
    const done = await runtime.workflows.wait(workflowId)
    expect(done.state).toBe("completed")
    expect(done.nodes.last!.output).toMatchObject({ text: 'echo: after slow: "echo: first crash"' })
    // One agent per node: the slow node's agent was found again after the restart, not spawned twice.
    expect(await agentsByNode(runtime, workflowId)).toEqual({ first: 1, slow: 1, last: 1 })
    // The first node ran once; the slow node's step started once before the kill and once after.
    const started = await starts(runtime, workflowId)
    expect(started.filter((n) => n === "first")).toHaveLength(1)
    expect(started.filter((n) => n === "slow")).toHaveLength(2)
    expect(started.filter((n) => n === "last")).toHaveLength(1)
    expect(done.nodes.slow!.attempts).toBe(1)
  }, 120_000)

  it("resumes after a graceful shutdown during a node, without counting the cut-off step as a failed try", async () => {
    dir = await mkdtemp(join(tmpdir(), "l02-wf-restart-"))
    const first = await createRuntime(options(dir))
    const run = await first.workflows.start(crashGraph, { topic: "restart" })
    for (let i = 0; i < 200; i++) {
      if ((await first.workflows.get(run.workflowId)).nodes.slow!.state === "running") break
      await new Promise((r) => setTimeout(r, 50))
    }
    const before = Date.now()
    await first.shutdown()
    // The shutdown does not wait for the slow step's answer.
    expect(Date.now() - before).toBeLessThan(2500)

    runtime = await createRuntime(options(dir))
    const done = await runtime.workflows.wait(run.workflowId)
    expect(done.state).toBe("completed")
    expect(done.nodes.slow).toMatchObject({ state: "completed", attempts: 1 })
    expect(await agentsByNode(runtime, run.workflowId)).toEqual({ first: 1, slow: 1, last: 1 })
    expect((await starts(runtime, run.workflowId)).filter((n) => n === "first")).toHaveLength(1)
  }, 120_000)
})
