import { Effect } from "effect"
import { afterEach, describe, expect, it } from "vitest"
import { eventually } from "../runtime/support.ts"
import { answeringAgent, readSse, startServer, type TestServer } from "./support.ts"

const open: Array<TestServer> = []
afterEach(async () => {
  for (const t of open.splice(0)) await t.close()
})
const start = async (...args: Parameters<typeof startServer>) => {
  const t = await startServer(...args)
  open.push(t)
  return t
}

const post = (t: TestServer, path: string, body: unknown) =>
  fetch(`${t.url}${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) })

describe("HTTP API routes on the in-memory runtime", () => {
  it("answers /healthz with the runtime id", async () => {
    const t = await start()
    const r = await t.request("GET", "/healthz")
    expect(r.status).toBe(200)
    expect(r.json).toEqual({ status: "ok", runtimeId: "rt-http" })
  })

  it("runs an agent through spawn, get, list, suspend, resume and terminate", async () => {
    const t = await start()
    const spawned = await t.request("POST", "/v1/agents", { body: { config: { ...answeringAgent, labels: { team: "search" } }, initialContext: { task: 1 } } })
    expect(spawned.status).toBe(201)
    expect(spawned.json).toMatchObject({ state: "running", sandbox: { trustLevel: "TRUSTED" } })
    const id: string = spawned.json.agentId

    const got = await t.request("GET", `/v1/agents/${id}`)
    expect(got.status).toBe(200)
    expect(got.json).toMatchObject({ agentId: id, state: "running", activity: "idle", name: "worker" })

    expect((await t.request("GET", "/v1/agents")).json.agents.map((a: { agentId: string }) => a.agentId)).toEqual([id])
    expect((await t.request("GET", "/v1/agents?state=running,failed&label=team=search")).json.agents).toHaveLength(1)
    expect((await t.request("GET", "/v1/agents?state=suspended")).json.agents).toHaveLength(0)
    expect((await t.request("GET", "/v1/agents?label=team=other")).json.agents).toHaveLength(0)
    expect((await t.request("GET", `/v1/agents?sessionId=${spawned.json.sessionId}`)).json.agents).toHaveLength(1)

    const paused = await t.request("POST", `/v1/agents/${id}/suspend`)
    expect(paused.status).toBe(200)
    expect(paused.json).toEqual({ agentId: id, state: "suspended" })
    expect((await t.request("POST", `/v1/agents/${id}/resume`, { body: {} })).json).toEqual({ agentId: id, state: "running" })

    const checkpointed = await t.request("POST", `/v1/agents/${id}/suspend`, { body: { checkpoint: true } })
    expect(checkpointed.json).toMatchObject({ agentId: id, state: "suspended", checkpointId: expect.any(String) })
    const resumed = await t.request("POST", `/v1/agents/${id}/resume`, { body: { checkpointId: checkpointed.json.checkpointId } })
    expect(resumed.json).toEqual({ agentId: id, state: "running" })

    const terminated = await t.request("DELETE", `/v1/agents/${id}?force=true&reason=done`)
    expect(terminated.status).toBe(200)
    expect(terminated.json).toEqual({ agentId: id, state: "terminated" })
    expect((await t.request("GET", `/v1/agents/${id}`)).json).toMatchObject({ state: "terminated" })
  })

  it("takes terminate options as a JSON body too, but not both forms at once", async () => {
    const t = await start()
    const { agentId } = await t.runtime.spawn(answeringAgent)
    const both = await t.request("DELETE", `/v1/agents/${agentId}?force=true`, { body: { reason: "x" } })
    expect(both.status).toBe(400)
    expect(both.json.error.code).toBe("E2001")
    expect((await t.runtime.getState(agentId)).state).toBe("running")
    const r = await t.request("DELETE", `/v1/agents/${agentId}`, { body: { force: true, reason: "cleanup" } })
    expect(r.json).toEqual({ agentId, state: "terminated" })
  })

  it("maps runtime errors to statuses with coded bodies", async () => {
    const t = await start()
    const { agentId } = await t.runtime.spawn(answeringAgent)
    const missing = "00000000-0000-4000-8000-000000000000"
    const notFound = await t.request("GET", `/v1/agents/${missing}`)
    expect(notFound.status).toBe(404)
    expect(notFound.json).toEqual({ error: { code: "E2021", tag: "AgentNotFound", message: expect.stringContaining(missing), agentId: missing } })
    const conflict = await t.request("POST", `/v1/agents/${agentId}/resume`)
    expect(conflict.status).toBe(409)
    expect(conflict.json.error).toMatchObject({ code: "E2020", tag: "InvalidTransition" })
    // A bare agent config instead of { config }: the answer says what the body must look like, and nothing runs.
    const bare = await t.request("POST", "/v1/agents", { body: { name: "bare", trustLevel: "TRUSTED" } })
    expect(bare.status).toBe(400)
    expect(bare.json.error).toMatchObject({ code: "E2001", key: "body.config" })
    expect(bare.json.error.message).toContain('{ "config": <agent config>')
    expect((await t.request("GET", "/v1/agents")).json.agents.map((a: { agentId: string }) => a.agentId)).toEqual([agentId])
    const limits = await t.request("POST", "/v1/agents", { body: { config: { name: "big", resources: { memory: "2Zi" } } } })
    expect(limits.status).toBe(400)
    expect(limits.json.error).toMatchObject({ code: "E2042", key: "resources" })
    const trust = await t.request("POST", "/v1/agents", { body: { config: { name: "t", trustLevel: "ROOT" } } })
    expect(trust.json.error.code).toBe("E2040")
    const unavailable = await t.request("POST", "/v1/agents", { body: { config: { name: "u", trustLevel: "UNTRUSTED" } } })
    expect(unavailable.status).toBe(400)
    expect(unavailable.json.error.code).toBe("E2041")
    const badCheckpoint = await t.request("POST", `/v1/agents/${agentId}/resume`, { body: { checkpointId: "not-a-uuid" } })
    expect(badCheckpoint.json.error).toMatchObject({ code: "E2001", key: "body.checkpointId" })
    expect((await t.runtime.list()).map((a) => a.state)).toEqual(["running"])
  })

  it("answers malformed requests with coded 4xx: bad JSON, media type, size, routes, methods, ids, query", async () => {
    const t = await start({ config: { http: { max_body_bytes: 1024 } } })
    const cases: Array<[() => Promise<{ status: number; json: any; headers: Headers }>, number, string]> = [
      [() => t.request("POST", "/v1/agents", { raw: "{nope", headers: { "content-type": "application/json" } }), 400, "body"],
      [() => t.request("POST", "/v1/agents", { raw: "{}", headers: { "content-type": "text/plain" } }), 415, "content-type"],
      [() => t.request("POST", "/v1/agents", { body: { config: { name: "x".repeat(2000) } } }), 413, "body"],
      [() => t.request("GET", "/v2/nothing"), 404, "path"],
      [() => t.request("GET", "/v1/agents/"), 400, "path.agentId"],
      [() => t.request("GET", "/v1/agents/x/y/z"), 404, "path"],
      [() => t.request("PATCH", "/v1/agents"), 405, "method"],
      [() => t.request("GET", "/v1/agents/42"), 400, "path.agentId"],
      [() => t.request("GET", "/v1/agents?state=sleeping"), 400, "query.state"],
      [() => t.request("GET", "/v1/agents?state=running&state=failed"), 400, "query.state"],
      [() => t.request("GET", "/v1/agents?colour=red"), 400, "query.colour"],
      [() => t.request("GET", "/v1/agents?label=nokey"), 400, "query.label"],
      [() => t.request("GET", "/v1/agents/%E0%A4%A"), 400, "path"],
      [() => t.request("POST", "/v1/agents", { body: [] }), 400, "body"],
      [() => t.request("POST", "/v1/agents"), 400, "body"]
    ]
    for (const [reply, status, key] of cases) {
      const r = await reply()
      expect(r.status, key).toBe(status)
      expect(r.json.error.code, key).toBe("E2001")
      expect(r.json.error.key, JSON.stringify(r.json)).toBe(key)
    }
    const wrongMethod = await t.request("PUT", "/v1/agents/00000000-0000-4000-8000-000000000000")
    expect(wrongMethod.headers.get("allow")).toBe("GET, DELETE")
    expect(await t.runtime.list()).toEqual([])
  })

  it("answers a request line or headers too large for HTTP with a coded 431", async () => {
    const t = await start()
    const r = await t.request("GET", `/v1/agents/${"a".repeat(20_000)}`)
    expect(r.status).toBe(431)
    expect(r.json.error.code).toBe("E2001")
  })

  it("streams an execute answer as Server-Sent Events: output lines, then done", async () => {
    const t = await start()
    const { agentId } = await t.runtime.spawn(answeringAgent)
    const response = await post(t, `/v1/agents/${agentId}/execute`, { input: { question: "hi" } })
    expect(response.status).toBe(200)
    expect(response.headers.get("content-type")).toMatch(/^text\/event-stream/)
    const events = await readSse(response)
    expect(events.map((e) => e.event)).toEqual(["output", "done"])
    expect(events[0]!.data).toMatchObject({ type: "output", stream: "stdout", data: { type: "output", data: { question: "hi" } } })
    expect(events[1]!.data).toMatchObject({ type: "done", executionId: expect.any(String) })
    await eventually(async () => expect((await t.runtime.getState(agentId)).activity).toBe("idle"))
  })

  it("answers execute errors before the stream with a status, and mid-stream failures as an error event", async () => {
    const t = await start()
    const missing = await post(t, "/v1/agents/00000000-0000-4000-8000-000000000000/execute", { input: 1 })
    expect(missing.status).toBe(404)
    expect(((await missing.json()) as any).error.code).toBe("E2021")
    // l02-echo echoes the input but never sends done: the step times out.
    const { agentId } = await t.runtime.spawn({ name: "echo", trustLevel: "TRUSTED", command: ["l02-echo"] })
    const response = await post(t, `/v1/agents/${agentId}/execute`, { input: "x", timeoutMs: 200 })
    expect(response.status).toBe(200)
    const events = await readSse(response)
    expect(events.at(-1)).toMatchObject({ event: "error", data: { error: { code: "E2029", tag: "ExecuteFailed" } } })
    // A second step while one is in progress is refused before streaming.
    const controller = new AbortController()
    const running = await fetch(`${t.url}/v1/agents/${agentId}/execute`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ input: "y" }),
      signal: controller.signal
    })
    expect(running.status).toBe(200)
    const busy = await post(t, `/v1/agents/${agentId}/execute`, { input: "z" })
    expect(busy.status).toBe(409)
    expect(((await busy.json()) as any).error).toMatchObject({ code: "E2020", tag: "InvalidTransition" })
    controller.abort()
  })

  it("a client that disconnects leaves the run going; one that asked for cancelOnDisconnect cancels it and the agent goes back to idle", async () => {
    const silent = (context: { readonly terminated: Effect.Effect<void> }) => Effect.as(context.terminated, 143)
    const t = await start({ backend: { programs: { "l02-silent": silent } } })
    const { agentId } = await t.runtime.spawn({ name: "echo", trustLevel: "TRUSTED", command: ["l02-echo"] })
    const controller = new AbortController()
    const response = await fetch(`${t.url}/v1/agents/${agentId}/execute`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ input: "x" }),
      signal: controller.signal
    })
    expect(response.status).toBe(200)
    const runId = response.headers.get("l02-run-id")!
    expect((await t.runtime.getState(agentId)).activity).toBe("busy")
    controller.abort()
    await new Promise((resolve) => setTimeout(resolve, 300))
    expect((await t.runtime.getState(agentId)).activity).toBe("busy")
    expect(await t.runtime.runs.get(runId)).toMatchObject({ status: "running", agentId })
    await t.runtime.runs.cancel(runId)
    expect((await t.runtime.getState(agentId)).activity).toBe("idle")

    // cancelOnDisconnect, even before the agent's first output line (the answer's headers are never sent).
    const quiet = await t.runtime.spawn({ name: "silent", trustLevel: "TRUSTED", command: ["l02-silent"] })
    const leaving = new AbortController()
    const pending = fetch(`${t.url}/v1/agents/${quiet.agentId}/execute`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ input: "x", cancelOnDisconnect: true }),
      signal: leaving.signal
    }).catch((error: unknown) => error)
    await eventually(async () => expect((await t.runtime.getState(quiet.agentId)).activity).toBe("busy"))
    leaving.abort()
    await pending
    await eventually(async () => expect((await t.runtime.getState(quiet.agentId)).activity).toBe("idle"))
    const [run] = await t.runtime.runs.list({ agentId: quiet.agentId })
    expect(run).toMatchObject({ status: "cancelled", error: { code: "E2037" } })
  })

  it("streams lifecycle events as Server-Sent Events, optionally for one agent", async () => {
    const t = await start()
    const first = await t.runtime.spawn(answeringAgent)
    const all = await fetch(`${t.url}/v1/events`)
    const one = await fetch(`${t.url}/v1/events?agentId=${first.agentId}`)
    expect(all.headers.get("content-type")).toMatch(/^text\/event-stream/)
    const allEvents = readSse(all, (es) => es.some((e) => e.data.toState === "terminated"))
    const oneEvents = readSse(one, (es) => es.some((e) => e.data.toState === "suspended"))
    const second = await t.runtime.spawn({ ...answeringAgent, name: "other" })
    await t.runtime.suspend(first.agentId)
    await t.runtime.terminate(second.agentId)
    const seen = await allEvents
    expect(seen.filter((e) => e.data.agentId === second.agentId).map((e) => e.data.toState)).toEqual(["pending", "spawning", "running", "terminating", "terminated"])
    expect(seen.every((e) => e.id !== undefined && String(e.data.eventId) === e.id)).toBe(true)
    const mine = await oneEvents
    expect(new Set(mine.map((e) => e.data.agentId))).toEqual(new Set([first.agentId]))
    expect(mine.map((e) => e.data.toState)).toEqual(["suspending", "suspended"])
  })

  it("replays recorded events before the live ones: the newest N (recent), or those after an id (after, Last-Event-ID), without repeats", async () => {
    const t = await start()
    const { agentId } = await t.runtime.spawn(answeringAgent)
    const recorded = await t.runtime.history({ agentId })
    expect(recorded.map((e) => e.toState)).toEqual(["pending", "spawning", "running"])
    const ids = recorded.map((e) => e.eventId!)
    // The newest two, oldest first, then what happens next.
    const recent = readSse(await fetch(`${t.url}/v1/events?agentId=${agentId}&recent=2`), (es) => es.some((e) => e.data.toState === "suspended"))
    // A client that got the first event reconnects with its id: it gets the rest, then what happens next.
    const resumed = readSse(await fetch(`${t.url}/v1/events?agentId=${agentId}`, { headers: { "last-event-id": String(ids[0]) } }), (es) => es.some((e) => e.data.toState === "suspended"))
    await new Promise((r) => setTimeout(r, 100))
    await t.runtime.suspend(agentId)
    expect((await recent).map((e) => e.data.toState)).toEqual(["spawning", "running", "suspending", "suspended"])
    const again = await resumed
    expect(again.map((e) => e.data.toState)).toEqual(["spawning", "running", "suspending", "suspended"])
    expect(again.map((e) => Number(e.id))).toEqual([...again.map((e) => Number(e.id))].sort((a, b) => a - b))
    expect((await t.request("GET", "/v1/events?recent=many")).json.error).toMatchObject({ code: "E2001", key: "query.recent" })
    // A Last-Event-ID that is not an event id (a path, a negative or huge number) replays nothing: live events only.
    for (const hostile of ["../../etc/passwd", "-1", "1e9", "9".repeat(40)]) {
      const live = readSse(await fetch(`${t.url}/v1/events?agentId=${agentId}`, { headers: { "last-event-id": hostile } }), (es) => es.length > 0)
      await new Promise((r) => setTimeout(r, 50))
      await t.runtime.resume(agentId)
      await t.runtime.suspend(agentId)
      expect((await live)[0]!.data.toState, hostile).toBe("resuming")
    }
  })

  it("reports the fleet", async () => {
    const t = await start()
    await t.runtime.spawn(answeringAgent)
    const r = await t.request("GET", "/v1/fleet")
    expect(r.status).toBe(200)
    expect(r.json).toMatchObject({ runtimeId: "rt-http", total: 1, byState: { running: 1 }, restartsTotal: 0 })
  })

  it("closes open event streams and frees the port on close", async () => {
    const t = await startServer()
    const stream = await fetch(`${t.url}/v1/events`)
    const reading = readSse(stream)
    await t.close()
    await expect(reading).resolves.toEqual([])
    await expect(fetch(`${t.url}/healthz`)).rejects.toThrow()
  })
})
