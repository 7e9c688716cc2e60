// The execute-run routes: detach, follow from any sequence (from, Last-Event-ID), list, cancel, refusals.
import { randomUUID } from "node:crypto"
import { afterEach, describe, expect, it } from "vitest"
import { eventually, ticker } from "../runtime/support.ts"
import { readSse, startServer, type TestServer } from "./support.ts"

const open: Array<TestServer> = []
afterEach(async () => {
  for (const t of open.splice(0)) await t.close()
})
const start = async (options: Omit<Parameters<typeof startServer>[0] & {}, "backend"> = {}) => {
  const t = await startServer({ ...options, backend: { programs: { "l02-ticker": ticker } } })
  open.push(t)
  return t
}
const tickerAgent = { name: "ticker", trustLevel: "TRUSTED", command: ["l02-ticker"] }

describe("execute runs over HTTP", () => {
  it("a detached execute answers 202 with the run; its events stream with id = sequence, from any point, ending with end", async () => {
    const t = await start()
    const { agentId } = await t.runtime.spawn(tickerAgent)
    const started = await t.request("POST", `/v1/agents/${agentId}/execute`, { body: { input: { count: 5, everyMs: 5 }, detach: true } })
    expect(started.status).toBe(202)
    expect(started.json).toMatchObject({ agentId, status: "running", runtimeId: "rt-http" })
    const runId: string = started.json.runId

    const all = await readSse(await fetch(`${t.url}/v1/runs/${runId}/events`))
    expect(all.map((e) => e.id)).toEqual(["1", "2", "3", "4", "5", "6", "7"])
    expect(all.map((e) => e.event)).toEqual(["output", "output", "output", "output", "output", "done", "end"])
    expect(all.every((e) => e.data.runId === runId && String(e.data.seq) === e.id)).toBe(true)
    expect(all.at(-1)!.data.event).toEqual({ type: "end", status: "completed" })

    // A client reconnecting says what it saw last: Last-Event-ID, or from.
    const resumed = await readSse(await fetch(`${t.url}/v1/runs/${runId}/events`, { headers: { "last-event-id": "4" } }))
    expect(resumed.map((e) => e.id)).toEqual(["5", "6", "7"])
    expect((await readSse(await fetch(`${t.url}/v1/runs/${runId}/events?from=6`))).map((e) => e.id)).toEqual(["7"])

    expect((await t.request("GET", `/v1/runs/${runId}`)).json).toMatchObject({ runId, status: "completed", lastSeq: 7 })
    const listed = await t.request("GET", `/v1/runs?agentId=${agentId}&status=completed,failed`)
    expect(listed.json.runs.map((r: { runId: string }) => r.runId)).toEqual([runId])
  })

  it("an attached execute streams with id = sequence and names its run; a client cut off mid-stream reattaches with Last-Event-ID and misses nothing", async () => {
    const t = await start()
    const { agentId } = await t.runtime.spawn(tickerAgent)
    const controller = new AbortController()
    const response = await fetch(`${t.url}/v1/agents/${agentId}/execute`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ input: { count: 30, everyMs: 10 } }),
      signal: controller.signal
    })
    expect(response.status).toBe(200)
    const runId = response.headers.get("l02-run-id")!
    const first = await readSse(response, (es) => es.length === 3)
    controller.abort()
    expect(first.map((e) => e.id)).toEqual(["1", "2", "3"])
    expect(first[0]!.data).toEqual({ type: "output", stream: "stdout", line: '{"type":"output","data":{"i":1}}', data: { type: "output", data: { i: 1 } } })
    const rest = await readSse(await fetch(`${t.url}/v1/runs/${runId}/events`, { headers: { "last-event-id": "3" } }))
    expect([...first, ...rest].map((e) => Number(e.id))).toEqual(Array.from({ length: 32 }, (_, i) => i + 1))
    expect(rest.at(-2)!.data.event).toMatchObject({ type: "done", executionId: runId })
  })

  it("cancel ends a running run with E2037 and the agent idle; an unknown run is 404 E2035; bad ids and queries are 400 E2001", async () => {
    const t = await start()
    const { agentId } = await t.runtime.spawn(tickerAgent)
    const { json: run } = await t.request("POST", `/v1/agents/${agentId}/execute`, { body: { input: { count: 1000, everyMs: 5 }, detach: true } })
    const cancelled = await t.request("POST", `/v1/runs/${run.runId}/cancel`)
    expect(cancelled.status).toBe(200)
    expect(cancelled.json).toMatchObject({ status: "cancelled", error: { code: "E2037" } })
    await eventually(async () => expect((await t.runtime.getState(agentId)).activity).toBe("idle"))
    const events = await readSse(await fetch(`${t.url}/v1/runs/${run.runId}/events`))
    expect(events.at(-1)).toMatchObject({ event: "end", data: { event: { status: "cancelled", error: { code: "E2037" } } } })

    const unknown = await t.request("GET", `/v1/runs/${randomUUID()}`)
    expect(unknown.status).toBe(404)
    expect(unknown.json.error).toMatchObject({ code: "E2035" })
    expect((await fetch(`${t.url}/v1/runs/${randomUUID()}/events`)).status).toBe(404)
    expect((await t.request("GET", "/v1/runs/not-a-run")).json.error).toMatchObject({ code: "E2001", key: "runId" })
    expect((await t.request("GET", "/v1/runs?status=sleeping")).json.error).toMatchObject({ code: "E2001", key: "query.status" })
    expect((await t.request("GET", `/v1/runs/${run.runId}/events?from=-1`)).status).toBe(400)
    expect((await t.request("POST", `/v1/agents/${agentId}/execute`, { body: { input: 1, detach: "yes" } })).json.error).toMatchObject({ code: "E2001" })
  })

  it("a read key sees a run's record but not its output or its cancel (E2003); an operate key follows and cancels it", async () => {
    const t = await start({
      apiKeys: [{ key_env: "READER", scopes: ["read"] }, { key_env: "OPERATOR", scopes: ["operate"] }],
      env: { READER: "reader-secret", OPERATOR: "operator-secret" }
    })
    const { agentId } = await t.runtime.spawn(tickerAgent)
    const run = await t.runtime.runs.start(agentId, { count: 2, everyMs: 0 })
    expect((await t.request("GET", `/v1/runs/${run.runId}`, { token: "reader-secret" })).status).toBe(200)
    expect((await t.request("GET", `/v1/runs?agentId=${agentId}`, { token: "reader-secret" })).json.runs).toHaveLength(1)
    const refused = await t.request("GET", `/v1/runs/${run.runId}/events`, { token: "reader-secret" })
    expect([refused.status, refused.json.error.code]).toEqual([403, "E2003"])
    expect((await t.request("POST", `/v1/runs/${run.runId}/cancel`, { token: "reader-secret" })).json.error.code).toBe("E2003")
    expect((await t.request("GET", `/v1/runs/${run.runId}/events`)).status).toBe(401)
    const events = await readSse(await fetch(`${t.url}/v1/runs/${run.runId}/events`, { headers: { authorization: "Bearer operator-secret" } }))
    expect(events.map((e) => e.event)).toEqual(["output", "output", "done", "end"])
  })

  it("runs are lifecycle events of their agent (run.started, run.ended with status and last sequence) and metrics", async () => {
    const t = await start()
    const { agentId } = await t.runtime.spawn(tickerAgent)
    const done = await t.request("POST", `/v1/agents/${agentId}/execute`, { body: { input: { count: 2, everyMs: 0 }, detach: true } })
    await eventually(async () => expect((await t.runtime.runs.get(done.json.runId)).status).toBe("completed"))
    const long = await t.runtime.runs.start(agentId, { count: 1000, everyMs: 5 })
    await t.runtime.runs.cancel(long.runId)
    await eventually(async () => {
      const events = (await t.runtime.history({ agentId })).filter((e) => e.type.startsWith("run."))
      expect(events.map((e) => [e.type, (e.data as { runId: string }).runId, (e.data as { status?: string }).status])).toEqual([
        ["run.started", done.json.runId, undefined],
        ["run.ended", done.json.runId, "completed"],
        ["run.started", long.runId, undefined],
        ["run.ended", long.runId, "cancelled"]
      ])
      expect(events[1]!.data).toMatchObject({ lastSeq: 4 })
    })
    const metrics = (await t.request("GET", "/metrics")).text
    expect(metrics).toContain("l02_execute_runs_started_total 2")
    expect(metrics).toContain('l02_execute_runs_ended_total{status="completed"} 1')
    expect(metrics).toContain('l02_execute_runs_ended_total{status="cancelled"} 1')
  })
})
