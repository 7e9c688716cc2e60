// Workflows over HTTP: a three-agent pipeline with a join and an approval driven through the routes,
// its progress as Server-Sent Events; refusals with their codes; and the trust boundary: a graph sent
// over HTTP is a remote config (no host resources, the key's trust levels), checked before anything runs.
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { answeringAgent, readSse, startServer, type TestServer } from "./support.ts"

const operateKey = "operate-key-wf-0123456789"
const readKey = "read-key-wf-0123456789"
const standardKey = "standard-key-wf-0123456789"

const agent = (name: string) => ({ ...answeringAgent, name })
const pipeline = {
  name: "http-pipeline",
  nodes: [
    { id: "research", kind: "agent", spawn: agent("research"), input: "research {{ input.topic }}" },
    { id: "draft", kind: "agent", spawn: agent("draft"), input: "draft from {{ nodes.research.output.data }}" },
    { id: "facts", kind: "agent", spawn: agent("facts"), input: "check {{ nodes.research.output.data }}" },
    { id: "approve", kind: "approval", prompt: "publish?" },
    { id: "publish", kind: "agent", spawn: agent("publish"), input: { draft: "{{ nodes.draft.output.data }}", facts: "{{ nodes.facts.output.data }}" } }
  ],
  edges: [
    { from: "research", to: "draft" },
    { from: "research", to: "facts" },
    { from: "draft", to: "approve" },
    { from: "facts", to: "approve" },
    { from: "approve", to: "publish", when: { path: "nodes.approve.output.ok", equals: true } }
  ]
}

describe("workflow routes", () => {
  let t: TestServer
  beforeAll(async () => {
    t = await startServer({
      apiKeys: [
        { key_env: "OPERATE", scopes: ["operate", "read"], trust_levels: ["TRUSTED", "STANDARD"] },
        { key_env: "READ", scopes: ["read"] },
        { key_env: "STANDARD", scopes: ["operate", "read"], trust_levels: ["STANDARD"] }
      ],
      env: { OPERATE: operateKey, READ: readKey, STANDARD: standardKey }
    })
  })
  afterAll(async () => t.close())

  it("runs a pipeline with a join and an approval: start, follow its events, signal, read the result", async () => {
    const started = await t.request("POST", "/v1/workflows", { token: operateKey, body: { graph: pipeline, input: { topic: "sandboxes" } } })
    expect(started.json.error).toBeUndefined()
    expect(started.status).toBe(201)
    expect(started.json).toMatchObject({ name: "http-pipeline", origin: "remote", state: "pending" })
    const id: string = started.json.workflowId
    const stream = await fetch(`${t.url}/v1/workflows/${id}/events`, { headers: { authorization: `Bearer ${readKey}` } })
    expect(stream.headers.get("content-type")).toMatch(/text\/event-stream/)
    const reading = readSse(stream)
    for (let i = 0; i < 200; i++) {
      if ((await t.request("GET", `/v1/workflows/${id}`, { token: readKey })).json.state === "waiting") break
      await new Promise((r) => setTimeout(r, 25))
    }
    // A read key may look but not signal.
    expect((await t.request("POST", `/v1/workflows/${id}/signal`, { token: readKey, body: { node: "approve", value: { ok: true } } })).json.error.code).toBe("E2003")
    const early = await t.request("POST", `/v1/workflows/${id}/signal`, { token: operateKey, body: { node: "publish", value: {} } })
    expect(early.status).toBe(409)
    expect(early.json.error.code).toBe("E2031")
    const signalled = await t.request("POST", `/v1/workflows/${id}/signal`, { token: operateKey, body: { node: "approve", value: { ok: true } } })
    expect(signalled.status).toBe(200)
    const events = await reading
    // The stream ends with the run's end; ids are the event log's.
    expect(events.at(-1)!.data.type).toBe("workflow.completed")
    expect(events.every((e) => e.id !== undefined && Number(e.id) > 0)).toBe(true)
    const types = events.map((e) => `${e.data.type}${e.data.data?.node === undefined ? "" : `:${e.data.data.node}`}`)
    expect(types.indexOf("workflow.node.completed:draft")).toBeLessThan(types.indexOf("workflow.node.waiting:approve"))
    expect(types.indexOf("workflow.node.completed:facts")).toBeLessThan(types.indexOf("workflow.node.waiting:approve"))
    expect(types.indexOf("workflow.signalled:approve")).toBeLessThan(types.indexOf("workflow.node.started:publish"))
    const done = await t.request("GET", `/v1/workflows/${id}`, { token: readKey })
    expect(done.json).toMatchObject({
      state: "completed",
      nodes: { publish: { state: "completed", output: { data: { draft: "draft from research sandboxes", facts: "check research sandboxes" } } } }
    })
    const listed = await t.request("GET", "/v1/workflows?state=completed", { token: readKey })
    expect(listed.json.workflows.map((w: { workflowId: string }) => w.workflowId)).toContain(id)
    expect(listed.json.workflows[0].graph).toBeUndefined()
    // The server's metrics count the run and its nodes.
    await new Promise((r) => setTimeout(r, 50))
    const metrics = (await t.request("GET", "/metrics", { token: readKey })).text
    expect(metrics).toMatch(/^l02_workflow_runs_ended_total\{end="completed"\} [1-9]/m)
    expect(metrics).toMatch(/^l02_workflow_nodes_total\{outcome="completed"\} ([5-9]|\d\d)/m)
    expect(metrics).toMatch(/^l02_workflow_node_duration_seconds_count ([4-9]|\d\d)/m)
    // Resuming the stream after its last event gives nothing more than the end.
    const again = await fetch(`${t.url}/v1/workflows/${id}/events`, { headers: { authorization: `Bearer ${readKey}`, "last-event-id": events.at(-2)!.id! } })
    expect((await readSse(again)).map((e) => e.data.type)).toEqual(["workflow.completed"])
  }, 60_000)

  it("cancels over HTTP, and refuses a second cancel with 409", async () => {
    const graph = { name: "hold", nodes: [{ id: "wait", kind: "approval" }] }
    const started = await t.request("POST", "/v1/workflows", { token: operateKey, body: { graph } })
    const id: string = started.json.workflowId
    for (let i = 0; i < 200; i++) {
      if ((await t.request("GET", `/v1/workflows/${id}`, { token: readKey })).json.state === "waiting") break
      await new Promise((r) => setTimeout(r, 25))
    }
    const cancelled = await t.request("POST", `/v1/workflows/${id}/cancel`, { token: operateKey, body: { reason: "changed my mind" } })
    expect(cancelled.status).toBe(200)
    for (let i = 0; i < 200; i++) {
      if ((await t.request("GET", `/v1/workflows/${id}`, { token: readKey })).json.state === "cancelled") break
      await new Promise((r) => setTimeout(r, 25))
    }
    expect((await t.request("GET", `/v1/workflows/${id}`, { token: readKey })).json.state).toBe("cancelled")
    const second = await t.request("POST", `/v1/workflows/${id}/cancel`, { token: operateKey, body: {} })
    expect(second.status).toBe(409)
    expect(second.json.error.code).toBe("E2031")
  }, 60_000)

  it("refuses a bad graph (400 E2006 naming the node), unknown and malformed ids (404 E2032, 400 E2001)", async () => {
    const before = (await t.request("GET", "/v1/workflows", { token: readKey })).json.workflows.length
    const bad = await t.request("POST", "/v1/workflows", {
      token: operateKey,
      body: { graph: { name: "loop", nodes: [{ id: "a", kind: "timer", seconds: 1 }, { id: "b", kind: "timer", seconds: 1 }], edges: [{ from: "a", to: "b" }, { from: "b", to: "a" }] } }
    })
    expect(bad.status).toBe(400)
    expect(bad.json.error).toMatchObject({ code: "E2006", tag: "WorkflowGraphInvalid" })
    expect(bad.json.error.message).toMatch(/cycle/)
    expect((await t.request("POST", "/v1/workflows", { token: operateKey, body: { graph: pipeline, extra: 1 } })).json.error.code).toBe("E2001")
    const unknown = await t.request("GET", "/v1/workflows/6c6f0f55-0b1e-4bb5-9d43-5d0c3a6a7f10", { token: readKey })
    expect(unknown.status).toBe(404)
    expect(unknown.json.error.code).toBe("E2032")
    expect((await t.request("GET", "/v1/workflows/not-an-id/events", { token: readKey })).json.error.code).toBe("E2001")
    expect((await t.request("GET", "/v1/workflows", { token: readKey })).json.workflows.length).toBe(before)
  })

  it("checks a graph's agent configs as remote ones before anything runs: host resources (E2004) and the key's trust levels (E2003)", async () => {
    const agentsBefore = (await t.request("GET", "/v1/agents", { token: readKey })).json.agents.length
    const runsBefore = (await t.request("GET", "/v1/workflows", { token: readKey })).json.workflows.length
    const stealKey = {
      name: "steal",
      nodes: [
        { id: "ok", kind: "agent", spawn: agent("ok"), input: "x" },
        {
          id: "undo",
          kind: "agent",
          spawn: agent("undo"),
          input: "y",
          compensate: { spawn: { name: "thief", model: { provider: "openai-chat", model: "m", baseUrl: "https://api.example.com/v1", apiKeyFile: "/etc/shadow" } }, input: "z" }
        }
      ]
    }
    const refused = await t.request("POST", "/v1/workflows", { token: operateKey, body: { graph: stealKey } })
    expect(refused.status).toBe(403)
    expect(refused.json.error).toMatchObject({ code: "E2004", key: "model.apiKeyFile" })
    expect(refused.json.error.message).toMatch(/^node undo \(compensation\): /)
    // Nested in a sub-workflow it is found all the same.
    const nested = { name: "nested", nodes: [{ id: "outer", kind: "workflow", graph: { name: "inner", nodes: [{ id: "in", kind: "agent", spawn: { name: "x", model: { provider: "openai-chat", model: "m", baseUrl: "http://169.254.169.254/", apiKeyEnv: "HOME" } }, input: "q" }] } }] }
    expect((await t.request("POST", "/v1/workflows", { token: operateKey, body: { graph: nested } })).json.error).toMatchObject({ code: "E2004" })
    // A key limited to STANDARD may not start a workflow that spawns a TRUSTED agent.
    const trusted = await t.request("POST", "/v1/workflows", { token: standardKey, body: { graph: pipeline } })
    expect(trusted.status).toBe(403)
    expect(trusted.json.error).toMatchObject({ code: "E2003", key: "trustLevel" })
    // Nobody may plant an agent a run's step would find again as its own.
    const planted = await t.request("POST", "/v1/agents", {
      token: operateKey,
      body: { config: { ...agent("planted"), labels: { "workflow.l02.dev/run": "6c6f0f55-0b1e-4bb5-9d43-5d0c3a6a7f10", "workflow.l02.dev/node": "publish", "workflow.l02.dev/try": "step-0" } } }
    })
    expect(planted.status).toBe(400)
    expect(planted.json.error).toMatchObject({ code: "E2001" })
    expect((await t.request("GET", "/v1/agents", { token: readKey })).json.agents.length).toBe(agentsBefore)
    expect((await t.request("GET", "/v1/workflows", { token: readKey })).json.workflows.length).toBe(runsBefore)
  })
})
