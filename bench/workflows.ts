// Workflow benchmarks on the embedded default (process backend, SQLite file store): the dispatch
// overhead of a workflow of sequential agent steps against the same executes called directly, in one
// run; and the memory of many runs waiting on an approval, with the time to resume one.
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { createRuntime, type L02Runtime } from "../src/runtime/createRuntime.ts"

const median = (xs: ReadonlyArray<number>) => {
  const sorted = [...xs].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)]!
}
const round = (x: number) => Math.round(x * 100) / 100

const withRuntime = async <A>(backend: "process" | "memory", f: (runtime: L02Runtime) => Promise<A>, hibernateSeconds = 60): Promise<A> => {
  const dataDir = await mkdtemp(join(tmpdir(), "l02-bench-wf-"))
  const runtime = await createRuntime({
    dataDir,
    backend,
    env: {},
    fillWarmPools: false,
    config: { lifecycle: { health_check_interval_seconds: 0 }, runtime: { hibernate_idle_after_seconds: hibernateSeconds } }
  })
  try {
    return await f(runtime)
  } finally {
    for (const a of await runtime.list()) if (a.state !== "terminated") await runtime.terminate(a.agentId, { force: true }).catch(() => undefined)
    await runtime.shutdown()
    await rm(dataDir, { recursive: true, force: true })
  }
}

/** `steps` sequential agent steps on one running agent, as a workflow and as direct executes, alternating. */
export const benchWorkflowDispatch = (steps = 10, rounds = 15) =>
  withRuntime("process", async (runtime) => {
    await runtime.spawn({ name: "bench-worker", trustLevel: "TRUSTED" })
    const agentId = (await runtime.list()).find((a) => a.config.name === "bench-worker")!.agentId
    const graph = {
      name: "sequential",
      nodes: Array.from({ length: steps }, (_, i) => ({ id: `s${i}`, kind: "agent", agent: "bench-worker", input: `step ${i}` })),
      edges: Array.from({ length: steps - 1 }, (_, i) => ({ from: `s${i}`, to: `s${i + 1}` }))
    }
    const direct: Array<number> = []
    const workflow: Array<number> = []
    const once = async () => {
      const t0 = performance.now()
      for (let i = 0; i < steps; i++) for await (const _ of runtime.execute(agentId, `step ${i}`)) { /* drained */ }
      direct.push(performance.now() - t0)
      const t1 = performance.now()
      const run = await runtime.workflows.start(graph)
      const done = await runtime.workflows.wait(run.workflowId)
      if (done.state !== "completed") throw new Error(`the bench workflow ended ${done.state}: ${JSON.stringify(done.error)}`)
      workflow.push(performance.now() - t1)
    }
    // The first round loads and starts the engine; it is not counted.
    await once()
    direct.length = 0
    workflow.length = 0
    for (let r = 0; r < rounds; r++) await once()
    const d = median(direct)
    const w = median(workflow)
    return { steps, rounds, directP50Ms: round(d), workflowP50Ms: round(w), ratio: round(w / d), addedPerNodeMs: round((w - d) / steps) }
  })

/** `runs` workflows each waiting on an approval: heap per waiting run, and the time from a signal to the run's end. */
export const benchWaitingWorkflows = (runs = 10_000) =>
  withRuntime("memory", async (runtime) => {
    const gc = (globalThis as { gc?: () => void }).gc
    const graph = { name: "wait", nodes: [{ id: "approve", kind: "approval" }] }
    // Engine loaded first, so its code is not counted per run.
    const warm = await runtime.workflows.start(graph)
    await runtime.workflows.cancel(warm.workflowId).catch(() => undefined)
    const idle = Number(process.env.L02_BENCH_WAIT_IDLE_MS ?? 25_000)
    await new Promise((r) => setTimeout(r, idle))
    gc?.()
    gc?.()
    const before = process.memoryUsage().heapUsed
    const ids: Array<string> = []
    const started = performance.now()
    for (let i = 0; i < runs; i += 100) {
      const batch = await Promise.all(Array.from({ length: Math.min(100, runs - i) }, () => runtime.workflows.start(graph)))
      ids.push(...batch.map((r) => r.workflowId))
    }
    // Every run reached its approval.
    for (const id of ids) while ((await runtime.workflows.get(id)).state !== "waiting") await new Promise((r) => setTimeout(r, 5))
    const startMs = performance.now() - started
    // Waiting is the steady state of a run that waits for a person: past the engine's idle time (its
    // reaper lets idle workflow entities go 10-20 s after their last message) and the runs' hibernation.
    await new Promise((r) => setTimeout(r, idle))
    gc?.()
    gc?.()
    const heapPerRun = (process.memoryUsage().heapUsed - before) / runs
    const resumes: Array<number> = []
    for (const id of ids.slice(0, 20)) {
      const t = performance.now()
      await runtime.workflows.signal(id, "approve", { ok: true })
      await runtime.workflows.wait(id)
      resumes.push(performance.now() - t)
    }
    return { runs, startAllMs: Math.round(startMs), heapBytesPerWaitingRun: Math.round(heapPerRun), resumeP50Ms: round(median(resumes)) }
  }, 5)

if (import.meta.main) {
  console.log(JSON.stringify(await benchWorkflowDispatch(), null, 2))
  console.log(JSON.stringify(await benchWaitingWorkflows(Number(process.argv[2] ?? 10_000)), null, 2))
}
