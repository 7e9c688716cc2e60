// The kill -9 scenario of the workflow durability tests, on the embedded store or on PostgreSQL: a host
// process starts the crash graph and is killed while the slow node's step is under way; a runtime on
// the same data directory and store resumes the run, and the test checks what ran.
import { type ChildProcess, spawn } from "node:child_process"
import { createInterface } from "node:readline"
import { expect } from "vitest"
import { createRuntime, type L02Runtime } from "../../src/runtime/createRuntime.ts"

const fixture = new URL("./fixtures/workflowHost.ts", import.meta.url).pathname

/** The options of a runtime like the host's, on the embedded store or the PostgreSQL URL. */
export const crashRuntimeOptions = (dataDir: string, storeUrl?: string) =>
  ({
    dataDir,
    backend: "process",
    env: {},
    fillWarmPools: false,
    config: { lifecycle: { health_check_interval_seconds: 0 }, ...(storeUrl === undefined ? {} : { store: { url: storeUrl } }) }
  }) as const

/** Agents of the run, counted by the node that spawned them. */
export const agentsByNode = async (r: L02Runtime, workflowId: string) => {
  const counts: Record<string, number> = {}
  for (const a of await r.list({ labels: { "workflow.l02.dev/run": workflowId } })) {
    const node = a.config.labels!["workflow.l02.dev/node"]!
    counts[node] = (counts[node] ?? 0) + 1
  }
  return counts
}

/** The nodes whose tries started, one entry per start, in order. */
export const starts = async (r: L02Runtime, workflowId: string) =>
  (await r.history({ agentId: workflowId })).filter((e) => e.type === "workflow.node.started").map((e) => (e.data as { node: string }).node)

/** What the scenario leaves to clean up: the host (if alive) and the resuming runtime. */
export interface CrashScene {
  host?: ChildProcess | undefined
  runtime?: L02Runtime | undefined
}

/** Runs the scenario; `scene` keeps the host and runtime for the test's cleanup. */
export const killDuringSlowNodeThenResume = async (scene: CrashScene, dataDir: string, storeUrl?: string) => {
  const host = spawn(process.execPath, [fixture, dataDir, ...(storeUrl === undefined ? [] : [storeUrl])], { stdio: ["ignore", "pipe", "inherit"] })
  scene.host = host
  let workflowId = ""
  await new Promise<void>((resolve, reject) => {
    const lines = createInterface({ input: host.stdout! })
    lines.on("line", (line) => {
      const [kind, a, b] = line.split(" ")
      if (kind === "run") workflowId = a!
      // Killed while the slow node's step is under way (its agent answers after 3 s).
      if (kind === "node" && a === "slow" && b === "started") {
        setTimeout(() => {
          host.kill("SIGKILL")
          resolve()
        }, 500)
      }
    })
    host.on("exit", () => resolve())
    setTimeout(() => reject(new Error("the host never started the slow node")), 60_000)
  })
  await new Promise((r) => host.once("exit", r).once("close", r))
  expect(workflowId).not.toBe("")

  const runtime = await createRuntime(crashRuntimeOptions(dataDir, storeUrl))
  scene.runtime = runtime
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
}

/** Ends what the scenario left: the host, the runtime's agents and the runtime. */
export const cleanUpScene = async (scene: CrashScene) => {
  scene.host?.kill("SIGKILL")
  if (scene.runtime !== undefined) {
    for (const a of await scene.runtime.list()) if (a.state !== "terminated") await scene.runtime.terminate(a.agentId, { force: true }).catch(() => undefined)
    await scene.runtime.shutdown()
  }
  scene.host = undefined
  scene.runtime = undefined
}
