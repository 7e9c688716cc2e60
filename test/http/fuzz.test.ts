// Malformed requests of every kind answer a coded 4xx and change nothing: at least 10,000 generated
// per run (L02_FUZZ_RUNS), from a seed that is printed (L02_FUZZ_SEED replays one), with the agents,
// the store, the event log and the sandboxes compared before and after every one.
import fc from "fast-check"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { answeringAgent, startServer, type TestServer } from "./support.ts"

let t: TestServer
let agentId: string
beforeAll(async () => {
  t = await startServer({ config: { http: { max_body_bytes: 4096 } } })
  agentId = (await t.runtime.spawn(answeringAgent)).agentId
})
afterAll(async () => {
  await t.close()
})

const unknownId = "00000000-0000-4000-8000-000000000000"
const agentRoutes = ["", "/suspend", "/resume", "/execute"]

interface Malformed {
  readonly method: string
  readonly path: string
  readonly body?: string | undefined
  readonly contentType?: string | undefined
}

/** A non-UUID id: odd characters, huge, empty-ish, traversal-looking. */
const oddId = fc.oneof(
  fc.string({ minLength: 1, maxLength: 60 }).filter((s) => !/^[0-9a-f-]{36}$/i.test(s)),
  fc.integer({ min: 1, max: 12_000 }).map((n) => "a".repeat(n)),
  fc.constantFrom("..", "%2e%2e", "null", "undefined", "0", "-1", " ", "\u0000", "💥", "DROP TABLE agents;", `${unknownId}x`)
)

/** JSON text that no JSON parser accepts. */
const badJson = fc.oneof(
  fc.string({ maxLength: 200 }).map((s) => `{${s},]`),
  fc.constantFrom("{", "[1,", "undefined", "{'a':1}", "NaN", '{"a":1}}', "\uFEFF{")
)

/** Valid JSON of the wrong shape for every body: never an object. */
const wrongShape = fc.jsonValue({ maxDepth: 2 }).filter((v) => typeof v !== "object" || v === null || Array.isArray(v)).map((v) => JSON.stringify(v))

/** An object with a field no body schema has (so it can never be a valid request). */
const unknownField = fc
  .tuple(fc.dictionary(fc.constantFrom("config", "input", "checkpoint", "checkpointId", "force", "reason", "timeoutMs", "initialContext"), fc.jsonValue({ maxDepth: 2 })), fc.string({ maxLength: 20 }), fc.jsonValue({ maxDepth: 1 }))
  .map(([known, key, value]) => JSON.stringify({ ...known, [`x-${key}`]: value }))

/** Known fields with wrong types. */
const wrongTypes = fc.constantFrom(
  { config: 5 },
  { config: "worker" },
  { config: { name: 7 } },
  { config: { name: "ok", resources: { cpu: -1 } } },
  { config: { name: "ok", trustLevel: "ROOT" } },
  { config: { name: "Bad Name" } },
  { config: { name: "ok", labels: { "l02.dev/agent-id": "x" } } },
  { checkpoint: "yes" },
  { checkpointId: 42 },
  { checkpointId: "latest" },
  { input: 1, timeoutMs: -5 },
  { input: 1, timeoutMs: 1.5 },
  { input: 1, timeoutMs: "soon" },
  { force: "true" },
  { reason: 12 },
  { input: 1, detach: "yes" },
  { input: 1, cancelOnDisconnect: 1 }
).map((v) => JSON.stringify(v))

/** Malformed requests, some aimed at the real agent `agentId` (which must stay untouched). */
const malformedFor = (agentId: string): fc.Arbitrary<Malformed> => fc.oneof(
  // execute runs: wrong methods, odd or unknown run ids, bad queries
  fc.record({
    method: fc.constantFrom("PUT", "PATCH", "DELETE"),
    path: fc.constantFrom("/v1/runs", `/v1/runs/${unknownId}`, `/v1/runs/${unknownId}/events`, `/v1/runs/${unknownId}/cancel`)
  }),
  fc.record({ method: fc.constant("GET"), path: fc.constantFrom(`/v1/runs/${unknownId}`, `/v1/runs/${unknownId}/events`, `/v1/runs/${unknownId}/cancel`) }),
  fc.record({ method: fc.constant("POST"), path: fc.constantFrom(`/v1/runs/${unknownId}/cancel`, "/v1/runs") }),
  fc.record({
    method: fc.constantFrom("GET", "POST"),
    // `..` is left out here: the client itself resolves /v1/runs/../events to /v1/events, a live stream.
    path: fc.tuple(oddId.filter((id) => id !== ".."), fc.constantFrom("", "/events", "/cancel")).map(([id, tail]) => `/v1/runs/${encodeURIComponent(id)}${tail}`)
  }),
  fc.record({
    method: fc.constant("GET"),
    path: fc.oneof(
      fc.string({ minLength: 1, maxLength: 30 }).filter((v) => v.split(",").some((p) => !["running", "completed", "failed", "cancelled", "interrupted"].includes(p))).map((v) => `/v1/runs?status=${encodeURIComponent(v)}`),
      fc.constantFrom("/v1/runs?limit=-1", "/v1/runs?limit=99999", "/v1/runs?limit=1.5", "/v1/runs?agentId=42", `/v1/runs/${unknownId}/events?from=x`, `/v1/runs/${unknownId}/events?from=-1`, "/v1/runs?colour=red")
    )
  }),
  // wrong method on a known path
  fc.record({
    method: fc.constantFrom("PUT", "PATCH", "OPTIONS"),
    path: fc.constantFrom("/v1/agents", `/v1/agents/${unknownId}`, "/v1/fleet", "/v1/events", "/metrics", "/healthz")
  }),
  fc.record({ method: fc.constant("GET"), path: fc.constantFrom(`/v1/agents/${unknownId}/suspend`, `/v1/agents/${unknownId}/resume`, `/v1/agents/${unknownId}/execute`) }),
  fc.record({ method: fc.constant("DELETE"), path: fc.constantFrom("/v1/agents", "/v1/fleet", `/v1/agents/${unknownId}/suspend`) }),
  // unknown routes
  fc.record({
    method: fc.constantFrom("GET", "POST", "DELETE"),
    path: fc.array(fc.webSegment(), { minLength: 1, maxLength: 5 }).map((segments) => `/v1/zz/${segments.join("/")}`)
  }),
  // odd ids on every agent route
  fc.record({
    method: fc.constantFrom("GET", "DELETE"),
    path: oddId.map((id) => `/v1/agents/${encodeURIComponent(id)}`)
  }),
  fc.record({
    method: fc.constant("POST"),
    path: fc.tuple(oddId, fc.constantFrom("/suspend", "/resume", "/execute")).map(([id, tail]) => `/v1/agents/${encodeURIComponent(id)}${tail}`),
    body: fc.constant("{}"),
    contentType: fc.constant("application/json")
  }),
  // malformed bodies on the routes that take one (the real agent's id: nothing may change it)
  fc.record({
    method: fc.constantFrom("POST"),
    path: fc.constantFrom("/v1/agents", ...agentRoutes.slice(1).map((r) => `/v1/agents/${agentId}${r}`)),
    body: fc.oneof(badJson, wrongShape, unknownField, wrongTypes),
    contentType: fc.constantFrom("application/json", "application/json; charset=utf-8")
  }),
  fc.record({
    method: fc.constant("DELETE"),
    path: fc.constant(`/v1/agents/${agentId}`),
    body: fc.oneof(badJson, wrongShape, unknownField),
    contentType: fc.constant("application/json")
  }),
  // JSON sent as something else
  fc.record({
    method: fc.constant("POST"),
    path: fc.constantFrom("/v1/agents", `/v1/agents/${agentId}/suspend`),
    body: fc.constant(JSON.stringify({ config: answeringAgent })),
    contentType: fc.constantFrom("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x")
  }),
  // bodies over the limit
  fc.record({
    method: fc.constant("POST"),
    path: fc.constantFrom("/v1/agents", `/v1/agents/${agentId}/execute`),
    body: fc.integer({ min: 4097, max: 20_000 }).map((n) => JSON.stringify({ input: "x".repeat(n) })),
    contentType: fc.constant("application/json")
  }),
  // unknown, repeated or ill-typed query parameters
  fc.record({
    method: fc.constant("GET"),
    path: fc.oneof(
      fc.tuple(fc.webSegment(), fc.string({ maxLength: 30 })).map(([k, v]) => `/v1/agents?x${k}=${encodeURIComponent(v)}`),
      fc.string({ minLength: 1, maxLength: 30 }).filter((s) => s.split(",").some((p) => !["pending", "spawning", "running", "suspending", "suspended", "resuming", "terminating", "terminated", "failed"].includes(p))).map((s) => `/v1/agents?state=${encodeURIComponent(s)}`),
      fc.constantFrom("/v1/agents?state=running&state=failed", "/v1/agents?label=novalue", "/v1/events?agentId=42", `/v1/agents/${agentId}?force=1`)
    )
  }),
  fc.record({
    method: fc.constant("DELETE"),
    path: fc.constantFrom(`/v1/agents/${agentId}?force=yes`, `/v1/agents/${agentId}?force=true&force=false`, `/v1/agents/${agentId}?colour=red`, `/v1/agents/${agentId}?reason=${"r".repeat(1100)}`)
  })
)

const snapshot = async () => ({
  agents: await t.runtime.list(),
  stored: await t.services.run(({ store }) => store.listAgents({})),
  events: (await t.services.run(({ log }) => log.query({}))).length,
  sandboxes: (await t.services.run(({ backend }) => backend.list({}))).map((s) => `${s.sandboxId}:${s.status}`),
  runs: (await t.services.run(({ runLog }) => runLog.list({ limit: 1000 }))).map((r) => `${r.runId}:${r.status}:${r.lastSeq}`)
})

const runs = Number(process.env.L02_FUZZ_RUNS ?? 10_000)
const seed = Number(process.env.L02_FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31))

describe("HTTP API under malformed requests", () => {
  it("answers every malformed request with a coded 4xx and leaves the runtime and store unchanged", { timeout: 600_000 }, async () => {
    console.log(`HTTP fuzz: ${runs} requests, seed ${seed} (replay with L02_FUZZ_SEED=${seed})`)
    const before = await snapshot()
    expect(before.agents).toHaveLength(1)
    expect(agentId).toMatch(/^[0-9a-f-]{36}$/)
    await fc.assert(
      fc.asyncProperty(malformedFor(agentId), async (m) => {
        const headers: Record<string, string> = {}
        if (m.contentType !== undefined) headers["content-type"] = m.contentType
        const response = await fetch(`${t.url}${m.path}`, { method: m.method, headers, ...(m.body === undefined ? {} : { body: m.body }) })
        const text = await response.text()
        expect(response.status, `${m.method} ${m.path.slice(0, 200)} ${m.body?.slice(0, 200)} -> ${text.slice(0, 300)}`).toBeGreaterThanOrEqual(400)
        expect(response.status).toBeLessThan(500)
        const body = JSON.parse(text)
        expect(body.error.code, text).toMatch(/^E20\d\d$/)
        expect(typeof body.error.message).toBe("string")
        expect(typeof body.error.tag).toBe("string")
        expect(await snapshot(), `${m.method} ${m.path.slice(0, 200)} changed something`).toEqual(before)
      }),
      {
        numRuns: runs,
        seed,
        // Regression: a JSON `null` body was taken for "no body" and suspended the agent.
        examples: [
          [{ method: "POST", path: `/v1/agents/${agentId}/suspend`, body: "null", contentType: "application/json" }],
          [{ method: "POST", path: `/v1/agents/${agentId}/resume`, body: "null", contentType: "application/json" }]
        ]
      }
    )
    expect(await snapshot()).toEqual(before)
  })
})
