import { Validator } from "@seriousme/openapi-schema-validator"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { endpointScopes } from "../../src/http/HttpApi.ts"
import { routes } from "../../src/http/internal/routes.ts"
import { startServer, type TestServer } from "./support.ts"

let t: TestServer
beforeAll(async () => {
  t = await startServer()
})
afterAll(async () => {
  await t.close()
})

const operations = (spec: any): Array<{ method: string; path: string; operation: any }> =>
  Object.entries(spec.paths as Record<string, Record<string, unknown>>).flatMap(([path, item]) =>
    Object.entries(item).map(([method, operation]) => ({ method: method.toUpperCase(), path, operation }))
  )

describe("OpenAPI document", () => {
  it("is served at /openapi.json and validates as OpenAPI 3.1", async () => {
    const r = await t.request("GET", "/openapi.json")
    expect(r.status).toBe(200)
    expect(r.json.openapi).toMatch(/^3\.1/)
    const result = await new Validator().validate(r.json)
    expect(result.errors ?? []).toEqual([])
    expect(result.valid).toBe(true)
  })

  it("lists every route the server answers, and the server answers every route it lists", async () => {
    const spec = (await t.request("GET", "/openapi.json")).json
    const listed = operations(spec).map((o) => `${o.method} ${o.path}`).sort()
    const expected = [
      "POST /v1/agents",
      "GET /v1/agents",
      "GET /v1/agents/{agentId}",
      "POST /v1/agents/{agentId}/suspend",
      "POST /v1/agents/{agentId}/resume",
      "DELETE /v1/agents/{agentId}",
      "POST /v1/agents/{agentId}/execute",
      "GET /v1/agents/{agentId}/checkpoints",
      "GET /v1/agents/{agentId}/health",
      "GET /v1/pools",
      "PUT /v1/pools/{name}",
      "GET /v1/events",
      "GET /v1/fleet",
      "POST /v1/fleet/scale",
      "GET /v1/fleet/operations",
      "GET /metrics",
      "GET /healthz",
      "POST /v1/workflows",
      "GET /v1/workflows",
      "GET /v1/workflows/{workflowId}",
      "POST /v1/workflows/{workflowId}/signal",
      "POST /v1/workflows/{workflowId}/cancel",
      "GET /v1/runs",
      "GET /v1/runs/{runId}",
      "GET /v1/runs/{runId}/events",
      "POST /v1/runs/{runId}/cancel",
      "GET /v1/workflows/{workflowId}/events"
    ].sort()
    const beside = ["GET /dashboard", "GET /v1/machines/{name}", "GET /openapi.json", "GET /docs"]
    expect(listed).toEqual([...expected, ...beside].sort())
    expect(routes.map((r) => `${r.method} ${r.path.replace(/:(\w+)/g, "{$1}")}`).sort()).toEqual(expected)
    // Every listed operation is routed: a request to it is never 404 (unknown route) or 405.
    for (const { method, path } of operations(spec)) {
      if (path.endsWith("/execute") || path === "/v1/events") continue
      const r = await t.request(method, path.replace("{agentId}", "00000000-0000-4000-8000-000000000000").replace("{name}", "agent").replace("{workflowId}", "00000000-0000-4000-8000-000000000000"))
      expect([404, 405].includes(r.status) ? r.json.error.code : "routed", `${method} ${path}`).not.toBe("E2001")
    }
  })

  it("documents request bodies, error answers with ErrorBody, SSE streams and the scope of each operation", async () => {
    const spec = (await t.request("GET", "/openapi.json")).json
    const byId = Object.fromEntries(operations(spec).map((o) => [o.operation.operationId, o.operation]))
    expect(byId["agents.spawn"].requestBody.content["application/json"].schema.$ref).toBe("#/components/schemas/SpawnRequest")
    expect(byId["agents.spawn"].responses["201"]).toBeDefined()
    for (const status of ["400", "401", "403", "404", "409", "502", "503"]) {
      expect(byId["agents.spawn"].responses[status].content["application/json"].schema.$ref).toBe("#/components/schemas/ErrorBody")
    }
    expect(Object.keys(spec.components.schemas)).not.toContain("ErrorBody_1")
    expect(byId["agents.execute"].responses["200"].content["text/event-stream"]["x-l02-stream"].errorEvent).toBe("error")
    expect(byId["fleet.events"].responses["200"].content["text/event-stream"]).toBeDefined()
    expect(spec.components.securitySchemes.apiKey).toMatchObject({ type: "http", scheme: "bearer" })
    for (const { operation } of operations(spec)) {
      if (operation.operationId.startsWith("pages.")) continue
      const name = operation.operationId.split(".")[1] as keyof typeof endpointScopes
      expect(operation["x-l02-scope"]).toBe(endpointScopes[name])
      expect(operation.security).toEqual(endpointScopes[name] === "public" ? [] : [{ apiKey: [] }])
    }
  })

  it("renders every operation on /docs as self-contained HTML", async () => {
    const r = await t.request("GET", "/docs")
    expect(r.status).toBe(200)
    expect(r.headers.get("content-type")).toMatch(/^text\/html/)
    expect(r.headers.get("content-security-policy")).toContain("default-src 'none'")
    const spec = (await t.request("GET", "/openapi.json")).json
    for (const { operation } of operations(spec)) expect(r.text).toContain(`id="${operation.operationId}"`)
    expect(r.text).not.toMatch(/<script/i)
  })
})
