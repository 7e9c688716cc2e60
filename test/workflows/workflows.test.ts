// Workflows on a real runtime (in-memory backend and store, the durable engine on an in-memory
// SQLite database): a pipeline with a fan-out, a join and an approval; conditions; retries;
// a failure with its compensation; cancel; refusals that change nothing; sub-workflows and timers.
import { afterEach, describe, expect, it } from "vitest"
import { createRuntime, type L02Runtime } from "../../src/runtime/createRuntime.ts"
import type { LifecycleEvent } from "../../src/domain/LifecycleEvent.ts"
import { eventually, failureOf } from "../runtime/support.ts"

const agent = (name: string, command: ReadonlyArray<string> = ["l02-agent"]) => ({ name, trustLevel: "TRUSTED", command })
const step = (id: string, input: unknown, extra: Record<string, unknown> = {}) => ({ id, kind: "agent", spawn: agent(id), input, ...extra })

let runtimes: Array<L02Runtime> = []
const newRuntime = async (runtimeConfig: Record<string, unknown> = {}) => {
  const runtime = await createRuntime({ backend: "memory", env: {}, fillWarmPools: false, config: { store: { pglite: "memory" }, runtime: runtimeConfig } })
  runtimes.push(runtime)
  return runtime
}
afterEach(async () => {
  for (const r of runtimes) await r.shutdown()
  runtimes = []
})

const collect = async (runtime: L02Runtime, workflowId: string) => {
  const events: Array<LifecycleEvent> = []
  for await (const e of runtime.workflows.events(workflowId)) events.push(e)
  return events
}
const nodeEvents = (events: ReadonlyArray<LifecycleEvent>) =>
  events.filter((e) => e.type.startsWith("workflow.node.")).map((e) => `${e.type.slice("workflow.node.".length)}:${(e.data as { node: string }).node}`)

const pipeline = {
  name: "plan-code-review",
  nodes: [
    step("plan", "plan {{ input.topic }}"),
    step("code", { step: "code", plan: "{{ nodes.plan.output.data }}" }),
    step("tests", { step: "tests", plan: "{{ nodes.plan.output.data }}" }),
    { id: "approve", kind: "approval", prompt: "ship it?" },
    step("review", { code: "{{ nodes.code.output.data }}", tests: "{{ nodes.tests.output.data.step }}", note: "{{ nodes.approve.output.note }}" }),
    step("rework", "rework: {{ nodes.approve.output.note }}")
  ],
  edges: [
    { from: "plan", to: "code" },
    { from: "plan", to: "tests" },
    { from: "code", to: "approve" },
    { from: "tests", to: "approve" },
    { from: "approve", to: "review", when: { path: "nodes.approve.output.approved", equals: true } },
    { from: "approve", to: "rework", when: { path: "nodes.approve.output.approved", equals: false } }
  ]
}

describe("workflows", () => {
  it("runs a pipeline: fan-out, join, an approval signalled, the branch its condition takes, and ends with the sinks' outputs", async () => {
    const runtime = await newRuntime()
    const run = await runtime.workflows.start(pipeline, { topic: "a parser" })
    expect(run).toMatchObject({ name: "plan-code-review", state: "pending", origin: "embedding" })
    const events = collect(runtime, run.workflowId)
    await eventually(async () => expect((await runtime.workflows.get(run.workflowId)).state).toBe("waiting"), 10_000)
    const waiting = await runtime.workflows.get(run.workflowId)
    expect(waiting.nodes.approve!.state).toBe("waiting")
    expect(waiting.nodes.code).toMatchObject({ state: "completed", attempts: 1, output: { data: { step: "code", plan: "plan a parser" } } })
    // A signal to a node that does not wait is refused and changes nothing.
    const early = await failureOf(runtime.workflows.signal(run.workflowId, "review", { approved: true }))
    expect(early).toMatchObject({ code: "E2031" })
    expect(early.message).toMatch(/waits for a signal to approve/)
    expect((await runtime.workflows.get(run.workflowId)).state).toBe("waiting")

    await runtime.workflows.signal(run.workflowId, "approve", { approved: true, note: "lgtm" })
    const done = await runtime.workflows.wait(run.workflowId)
    expect(done.state).toBe("completed")
    expect(done.nodes.rework!.state).toBe("skipped")
    expect(done.nodes.review!.output).toMatchObject({ data: { code: { step: "code", plan: "plan a parser" }, tests: "tests", note: "lgtm" } })
    // The run's output: the outputs of the nodes nothing follows that ran.
    expect(Object.keys(done.output as object)).toEqual(["review"])
    const seen = nodeEvents(await events)
    expect(seen.indexOf("completed:plan")).toBeLessThan(seen.indexOf("started:code"))
    expect(seen.indexOf("completed:code")).toBeLessThan(seen.indexOf("waiting:approve"))
    expect(seen.indexOf("completed:tests")).toBeLessThan(seen.indexOf("waiting:approve"))
    expect(seen).toContain("skipped:rework")
    expect(seen.filter((s) => s.startsWith("started:"))).toHaveLength(4)
    // Every agent a step spawned was terminated when its step ended.
    await eventually(async () => expect((await runtime.list()).filter((a) => a.state !== "terminated")).toEqual([]))
    expect(await failureOf(runtime.workflows.signal(run.workflowId, "approve", {}))).toMatchObject({ code: "E2031" })
    expect((await runtime.workflows.list()).map((r) => [r.workflowId, r.state])).toEqual([[run.workflowId, "completed"]])
  }, 30_000)

  it("takes the other branch when the condition says so", async () => {
    const runtime = await newRuntime()
    const run = await runtime.workflows.start(pipeline, { topic: "x" })
    await eventually(async () => expect((await runtime.workflows.get(run.workflowId)).state).toBe("waiting"), 10_000)
    await runtime.workflows.signal(run.workflowId, "approve", { approved: false, note: "tests are thin" })
    const done = await runtime.workflows.wait(run.workflowId)
    expect(done.nodes.review!.state).toBe("skipped")
    expect(done.nodes.rework!.output).toMatchObject({ data: "rework: tests are thin" })
  }, 30_000)

  it("captures a model step's text", async () => {
    const runtime = await newRuntime()
    const writer = { ...agent("writer"), model: { provider: "scripted", model: "scripted-1", script: [{ text: "A short poem." }] } }
    const run = await runtime.workflows.start({ name: "model", nodes: [{ id: "write", kind: "agent", spawn: writer, input: "write" }] })
    const done = await runtime.workflows.wait(run.workflowId)
    expect(done.nodes.write!.output).toMatchObject({ text: "A short poem." })
  }, 30_000)

  it("retries a failed step after its backoff, and goes on once a try succeeds", async () => {
    const runtime = await newRuntime()
    const graph = { name: "retry", nodes: [{ id: "ask", kind: "agent", agent: "helper", input: "hello", retry: { attempts: 3, backoffSeconds: 0.2 } }] }
    const run = await runtime.workflows.start(graph)
    // The first try finds no agent named helper (E2021); the test starts one before the retry.
    const events = collect(runtime, run.workflowId)
    await eventually(async () => expect((await runtime.history({ agentId: run.workflowId })).some((e) => e.type === "workflow.node.retry")).toBe(true), 10_000)
    const { agentId } = await runtime.spawn(agent("helper"))
    const done = await runtime.workflows.wait(run.workflowId)
    expect(done.state).toBe("completed")
    expect(done.nodes.ask).toMatchObject({ state: "completed", attempts: 2, output: { agentId, data: "hello" } })
    const retry = (await events).find((e) => e.type === "workflow.node.retry")!
    expect(retry.data).toMatchObject({ node: "ask", attempt: 0, error: { code: "E2021" }, delayMs: 200 })
    // A named agent is not the step's: it keeps running.
    expect((await runtime.getState(agentId)).state).toBe("running")
  }, 30_000)

  it("fails with E2033 naming the node after its retries, and runs the compensations of the nodes that completed", async () => {
    const runtime = await newRuntime()
    const graph = {
      name: "compensated",
      nodes: [
        step("book", "book a room", { compensate: { spawn: agent("undo"), input: { undo: "{{ nodes.book.output.data }}", because: "{{ failure.message }}" } } }),
        { id: "pay", kind: "agent", agent: "nobody", input: "pay", retry: { attempts: 1, backoffSeconds: 0.05 } }
      ],
      edges: [{ from: "book", to: "pay" }]
    }
    const run = await runtime.workflows.start(graph)
    const events = collect(runtime, run.workflowId)
    const done = await runtime.workflows.wait(run.workflowId)
    expect(done.state).toBe("failed")
    expect(done.error).toMatchObject({ code: "E2033" })
    expect(done.error!.message).toMatch(/node pay .* failed: E2021/)
    expect(done.nodes.pay).toMatchObject({ state: "failed", attempts: 2, error: { code: "E2021" } })
    expect(done.nodes.book!.state).toBe("compensated")
    const types = (await events).map((e) => e.type)
    expect(types).toContain("workflow.compensation.started")
    expect(types).toContain("workflow.compensation.completed")
    expect(types.at(-1)).toBe("workflow.failed")
    const compensation = (await events).find((e) => e.type === "workflow.compensation.completed")!
    expect(compensation.data).toMatchObject({ output: { data: { undo: "book a room", because: expect.stringMatching(/node pay/) } } })
  }, 30_000)

  it("cancels a run: the running step's agent is terminated and the completed steps compensated", async () => {
    const runtime = await newRuntime()
    const graph = {
      name: "long",
      nodes: [
        step("prepare", "prepare", { compensate: { spawn: agent("cleanup"), input: "clean up {{ nodes.prepare.output.data }}" } }),
        { id: "wait", kind: "agent", spawn: agent("sleeper", ["l02-sleep", "600"]), input: "never answered" }
      ],
      edges: [{ from: "prepare", to: "wait" }]
    }
    const run = await runtime.workflows.start(graph)
    await eventually(async () => expect((await runtime.workflows.get(run.workflowId)).nodes.wait).toMatchObject({ state: "running", agentId: expect.any(String) }), 10_000)
    const sleeper = (await runtime.workflows.get(run.workflowId)).nodes.wait!.agentId!
    await runtime.workflows.cancel(run.workflowId, "not needed")
    const done = await runtime.workflows.wait(run.workflowId)
    expect(done.state).toBe("cancelled")
    expect(done.nodes.wait!.state).toBe("cancelled")
    expect(done.nodes.prepare!.state).toBe("compensated")
    await eventually(async () => expect((await runtime.getState(sleeper)).state).toBe("terminated"), 10_000)
    expect(await failureOf(runtime.workflows.cancel(run.workflowId))).toMatchObject({ code: "E2031" })
    const history = await runtime.history({ agentId: run.workflowId })
    expect(history.find((e) => e.type === "workflow.cancelled")!.data).toMatchObject({ reason: "not needed" })
  }, 30_000)

  it("refuses an invalid graph, a remote graph naming a host resource, and unknown runs, creating nothing", async () => {
    const runtime = await newRuntime()
    expect(await failureOf(runtime.workflows.start({ name: "bad", nodes: [step("a", "{{ nodes.b.output }}"), step("b", "x")] }))).toMatchObject({ code: "E2006", node: "a" })
    const hostile = { name: "hostile", nodes: [{ id: "steal", kind: "agent", spawn: { name: "thief", model: { provider: "openai-chat", model: "gpt", baseUrl: "https://api.openai.com/v1", apiKeyEnv: "HOME" } }, input: "x" }] }
    const refused = await failureOf(runtime.workflows.start(hostile, undefined, { policy: { origin: "remote" } }))
    expect(refused).toMatchObject({ code: "E2004" })
    expect(refused.message).toMatch(/^node steal: /)
    expect(await runtime.workflows.list()).toEqual([])
    expect(await runtime.list()).toEqual([])
    expect(await failureOf(runtime.workflows.get("6c6f0f55-0b1e-4bb5-9d43-5d0c3a6a7f10"))).toMatchObject({ code: "E2032" })
    expect(await failureOf(runtime.workflows.get("../etc/passwd"))).toMatchObject({ code: "E2001" })
  }, 30_000)

  it("runs a sub-workflow and a durable timer", async () => {
    const runtime = await newRuntime()
    const graph = {
      name: "outer",
      nodes: [
        { id: "pause", kind: "timer", seconds: 0.3 },
        { id: "inner", kind: "workflow", graph: { name: "inner", nodes: [step("echo", "{{ input.word }}")] }, input: { word: "nested" } }
      ],
      edges: [{ from: "pause", to: "inner" }]
    }
    const started = Date.now()
    const run = await runtime.workflows.start(graph)
    const done = await runtime.workflows.wait(run.workflowId)
    expect(done.state).toBe("completed")
    expect(Date.now() - started).toBeGreaterThanOrEqual(300)
    expect(done.nodes.inner!.output).toEqual({ echo: expect.objectContaining({ data: "nested" }) })
    // The child run is a run of its own, listed under its parent.
    const children = await runtime.workflows.list({ parentId: run.workflowId })
    expect(children).toHaveLength(1)
    expect(children[0]).toMatchObject({ name: "inner", state: "completed", parentId: run.workflowId })
  }, 30_000)

  it("lets a run that waits go from memory after hibernate_idle_after_seconds, and takes its signal all the same", async () => {
    const runtime = await newRuntime({ hibernate_idle_after_seconds: 1 })
    const run = await runtime.workflows.start({ name: "hold", nodes: [{ id: "approve", kind: "approval" }, step("after", "{{ nodes.approve.output }}")], edges: [{ from: "approve", to: "after" }] })
    await eventually(async () => expect((await runtime.workflows.get(run.workflowId)).state).toBe("waiting"), 10_000)
    expect(runtime.workflows.actorOf(run.workflowId)).toBeDefined()
    await eventually(() => expect(runtime.workflows.actorOf(run.workflowId)).toBeUndefined(), 10_000)
    expect(await failureOf(runtime.workflows.signal(run.workflowId, "after", 1))).toMatchObject({ code: "E2031" })
    await runtime.workflows.signal(run.workflowId, "approve", "go")
    const done = await runtime.workflows.wait(run.workflowId)
    expect(done.nodes.after!.output).toMatchObject({ data: "go" })
  }, 30_000)

  it("records each node's events once although the engine replays the run after the signal, and never moves a node back", async () => {
    const runtime = await newRuntime()
    const graph = {
      name: "replayed",
      nodes: [
        { id: "flaky", kind: "agent", agent: "late", input: "x", retry: { attempts: 2, backoffSeconds: 0.1 } },
        { id: "pause", kind: "timer", seconds: 0.2 },
        { id: "approve", kind: "approval" }
      ],
      edges: [{ from: "flaky", to: "pause" }, { from: "pause", to: "approve" }]
    }
    const run = await runtime.workflows.start(graph)
    await eventually(async () => expect((await runtime.history({ agentId: run.workflowId })).some((e) => e.type === "workflow.node.retry")).toBe(true), 10_000)
    await runtime.spawn(agent("late"))
    await eventually(async () => expect((await runtime.workflows.get(run.workflowId)).state).toBe("waiting"), 10_000)
    await runtime.workflows.signal(run.workflowId, "approve", "ok")
    const done = await runtime.workflows.wait(run.workflowId)
    expect(done.state).toBe("completed")
    expect(done.nodes.flaky).toMatchObject({ state: "completed", attempts: 2 })
    expect(done.nodes.flaky!.error).toBeUndefined()
    const seen = nodeEvents(await runtime.history({ agentId: run.workflowId }))
    expect(seen.filter((e) => e === "retry:flaky")).toHaveLength(1)
    expect(seen.filter((e) => e === "completed:flaky")).toHaveLength(1)
    expect(seen.filter((e) => e === "completed:pause")).toHaveLength(1)
    expect(seen.filter((e) => e === "completed:approve")).toHaveLength(1)
  }, 30_000)

  it("cancels a sub-workflow with its parent: both runs end cancelled", async () => {
    const runtime = await newRuntime()
    const graph = { name: "outer", nodes: [{ id: "inner", kind: "workflow", graph: { name: "inner", nodes: [{ id: "hold", kind: "approval" }] } }] }
    const run = await runtime.workflows.start(graph)
    await eventually(async () => expect((await runtime.workflows.list({ parentId: run.workflowId }))[0]?.state).toBe("waiting"), 10_000)
    const child = (await runtime.workflows.list({ parentId: run.workflowId }))[0]!
    await runtime.workflows.cancel(run.workflowId, "stop all")
    expect((await runtime.workflows.wait(run.workflowId)).state).toBe("cancelled")
    const ended = await runtime.workflows.wait(child.workflowId)
    expect(ended.state).toBe("cancelled")
    expect(ended.nodes.hold!.state).toBe("cancelled")
  }, 30_000)

  it("refuses an agent config that names the labels of workflow steps (nobody may plant an agent a run would adopt)", async () => {
    const runtime = await newRuntime()
    const planted = await failureOf(runtime.spawn({ ...agent("planted"), labels: { "workflow.l02.dev/run": "6c6f0f55-0b1e-4bb5-9d43-5d0c3a6a7f10" } }, undefined, { origin: "remote" }))
    expect(planted).toMatchObject({ code: "E2001", key: "labels.workflow.l02.dev/run" })
    expect(await runtime.list()).toEqual([])
  })

  it("an approval with a timeout: the default value when no signal comes in time, E2033 without one, and no signal taken after", async () => {
    const runtime = await newRuntime()
    const graph = (onTimeout?: unknown) => ({
      name: "deadline",
      nodes: [
        { id: "approve", kind: "approval", timeoutSeconds: 0.3, ...(onTimeout === undefined ? {} : { onTimeout: { value: onTimeout } }) },
        step("after", "{{ nodes.approve.output }}")
      ],
      edges: [{ from: "approve", to: "after" }]
    })
    const defaulted = await runtime.workflows.start(graph({ approved: false }))
    const done = await runtime.workflows.wait(defaulted.workflowId)
    expect(done.state).toBe("completed")
    expect(done.nodes.approve).toMatchObject({ state: "completed", output: { approved: false } })
    expect(done.nodes.after!.output).toMatchObject({ data: { approved: false } })
    expect((await runtime.history({ agentId: defaulted.workflowId })).map((e) => e.type)).toContain("workflow.node.timedOut")
    expect(await failureOf(runtime.workflows.signal(defaulted.workflowId, "approve", true))).toMatchObject({ code: "E2031" })

    const strict = await runtime.workflows.start(graph())
    const failed = await runtime.workflows.wait(strict.workflowId)
    expect(failed.state).toBe("failed")
    expect(failed.error).toMatchObject({ code: "E2033" })
    expect(failed.error!.message).toMatch(/no signal within 0.3 s/)
    expect(failed.nodes.after!.state).toBe("cancelled")

    // A signal in time wins the race.
    const inTime = await runtime.workflows.start({ ...graph({ approved: false }), nodes: [{ id: "approve", kind: "approval", timeoutSeconds: 30, onTimeout: { value: "late" } }, step("after", "{{ nodes.approve.output }}")] })
    await eventually(async () => expect((await runtime.workflows.get(inTime.workflowId)).state).toBe("waiting"), 10_000)
    await runtime.workflows.signal(inTime.workflowId, "approve", "yes")
    expect((await runtime.workflows.wait(inTime.workflowId)).nodes.approve!.output).toBe("yes")
    expect(await failureOf(runtime.workflows.start({ name: "x", nodes: [{ id: "a", kind: "approval", onTimeout: { value: 1 } }] }))).toMatchObject({ code: "E2006", node: "a" })
  }, 30_000)
})

