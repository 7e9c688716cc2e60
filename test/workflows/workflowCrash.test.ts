// A workflow survives the loss of its supervisor: kill -9 during a node, then a new runtime on the
// same data directory (process backend, embedded SQLite store) resumes the run. The finished node is
// not run again, the interrupted node's agent is adopted (not spawned twice), and the run completes.
// A graceful restart during a node does the same without the step counting as a failed try.
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { randomUUID } from "node:crypto"
import { Effect } from "effect"
import { afterEach, describe, expect, it } from "vitest"
import { WorkflowStore } from "../../src/services/WorkflowStore.ts"
import * as Store from "../../src/store/Store.ts"
import { createRuntime } from "../../src/runtime/createRuntime.ts"
import { agentsByNode, type CrashScene, cleanUpScene, crashRuntimeOptions, killDuringSlowNodeThenResume, starts } from "./crashSupport.ts"
import { crashGraph } from "./fixtures/crashGraph.ts"

const scene: CrashScene = {}
let dir: string | undefined
afterEach(async () => {
  await cleanUpScene(scene)
  if (dir !== undefined) await rm(dir, { recursive: true, force: true })
})

describe("workflow durability", () => {
  it("resumes after kill -9 during a node: the finished node is not run again and the running node's agent is adopted", async () => {
    dir = await mkdtemp(join(tmpdir(), "l02-wf-crash-"))
    await killDuringSlowNodeThenResume(scene, dir)
  }, 120_000)

  it("resumes after a graceful shutdown during a node, without counting the cut-off step as a failed try", async () => {
    dir = await mkdtemp(join(tmpdir(), "l02-wf-restart-"))
    const first = await createRuntime(crashRuntimeOptions(dir))
    const run = await first.workflows.start(crashGraph, { topic: "restart" })
    for (let i = 0; i < 200; i++) {
      if ((await first.workflows.get(run.workflowId)).nodes.slow!.state === "running") break
      await new Promise((r) => setTimeout(r, 50))
    }
    const before = Date.now()
    await first.shutdown()
    // The shutdown does not wait for the slow step's answer.
    expect(Date.now() - before).toBeLessThan(2500)

    const runtime = await createRuntime(crashRuntimeOptions(dir))
    scene.runtime = runtime
    const done = await runtime.workflows.wait(run.workflowId)
    expect(done.state).toBe("completed")
    expect(done.nodes.slow).toMatchObject({ state: "completed", attempts: 1 })
    expect(await agentsByNode(runtime, run.workflowId)).toEqual({ first: 1, slow: 1, last: 1 })
    expect((await starts(runtime, run.workflowId)).filter((n) => n === "first")).toHaveLength(1)
  }, 120_000)

  it("hands over at start a run whose record was written but which the engine never received", async () => {
    dir = await mkdtemp(join(tmpdir(), "l02-wf-pending-"))
    const workflowId = randomUUID()
    const at = new Date().toISOString()
    const graph = { name: "orphan", nodes: [{ id: "only", kind: "agent" as const, spawn: { name: "only", trustLevel: "TRUSTED" as const }, input: "hello" }] }
    // What a process that stopped right after writing the record leaves behind.
    await Effect.runPromise(
      Effect.gen(function* () {
        const store = yield* WorkflowStore
        yield* store.save({ workflowId, name: "orphan", state: "pending", graph, input: null, origin: "embedding", nodes: { only: { state: "pending", attempts: 0 } }, createdAt: at, updatedAt: at })
      }).pipe(Effect.provide(Store.layer({ pglite: "file", dataDir: dir })))
    )
    const runtime = await createRuntime(crashRuntimeOptions(dir))
    scene.runtime = runtime
    const done = await runtime.workflows.wait(workflowId)
    expect(done.state).toBe("completed")
    expect(done.nodes.only!.output).toMatchObject({ text: "echo: hello" })
  }, 60_000)
})
