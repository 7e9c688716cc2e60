// The routes for an agent's checkpoints and health, warm pools, scaling and fleet operations, on a
// server over the in-memory backend: each answers what the runtime says, refuses bad input with a
// coded 4xx, and needs its scope.
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { eventually } from "../runtime/support.ts"
import { startServer, type TestServer } from "./support.ts"

const template = { name: "worker", trustLevel: "TRUSTED" }
const keys = { READER: "reader-key", OPERATOR: "operator-key" }

describe("agent details, pools and fleet operations over HTTP", () => {
  let t: TestServer
  beforeAll(async () => {
    t = await startServer({
      apiKeys: [
        { key_env: "READER", scopes: ["read"] },
        { key_env: "OPERATOR", scopes: ["operate"], trust_levels: ["TRUSTED"] }
      ],
      env: keys,
      config: { pools: { warm: [{ name: "workers", template, size: 2, max: 3 }] } }
    })
  })
  afterAll(() => t.close())

  it("reports an agent's checkpoints and health", async () => {
    const { agentId } = (await t.request("POST", "/v1/agents", { token: keys.OPERATOR, body: { config: { ...template, name: "details" } } })).json as { agentId: string }
    const suspended = await t.request("POST", `/v1/agents/${agentId}/suspend`, { token: keys.OPERATOR, body: { checkpoint: true } })
    expect(suspended.status).toBe(200)
    const list = await t.request("GET", `/v1/agents/${agentId}/checkpoints`, { token: keys.READER })
    expect(list.status).toBe(200)
    expect((list.json as { checkpoints: Array<{ checkpointId: string }> }).checkpoints.map((c) => c.checkpointId)).toEqual([(suspended.json as { checkpointId: string }).checkpointId])
    const health = await t.request("GET", `/v1/agents/${agentId}/health`, { token: keys.READER })
    expect(health.json).toMatchObject({ agentId, live: true, ready: false })
    expect((await t.request("GET", "/v1/agents/00000000-0000-4000-8000-000000000000/health", { token: keys.READER })).json).toMatchObject({ error: { code: "E2021" } })
    expect((await t.request("GET", "/v1/agents/not-a-uuid/checkpoints", { token: keys.READER })).status).toBe(400)
  })

  it("lists and resizes warm pools; a spawn of the template takes a ready sandbox", async () => {
    await eventually(async () => expect(((await t.request("GET", "/v1/pools", { token: keys.READER })).json as { pools: Array<{ ready: number }> }).pools[0]!.ready).toBe(2))
    const spawned = (await t.request("POST", "/v1/agents", { token: keys.OPERATOR, body: { config: template } })).json as { sandboxId: string }
    expect(spawned.sandboxId).toBeDefined()
    await eventually(async () => expect(((await t.request("GET", "/v1/pools", { token: keys.READER })).json as { pools: Array<unknown> }).pools[0]).toMatchObject({ name: "workers", claimedTotal: 1, ready: 2 }))
    const resized = await t.request("PUT", "/v1/pools/workers", { token: keys.OPERATOR, body: { size: 3 } })
    expect(resized.status).toBe(200)
    expect(resized.json).toMatchObject({ name: "workers", size: 3 })
    const tooBig = await t.request("PUT", "/v1/pools/workers", { token: keys.OPERATOR, body: { size: 4 } })
    expect(tooBig.status).toBe(400)
    expect(tooBig.json).toMatchObject({ error: { code: "E2001", key: "size" } })
    expect((await t.request("PUT", "/v1/pools/nobody", { token: keys.OPERATOR, body: { size: 1 } })).json).toMatchObject({ error: { code: "E2001", key: "name" } })
    expect((await t.request("PUT", "/v1/pools/workers", { token: keys.OPERATOR, body: { size: "3" } })).status).toBe(400)
    expect((await t.request("PUT", "/v1/pools/workers", { token: keys.READER, body: { size: 2 } })).json).toMatchObject({ error: { code: "E2003" } })
    expect(((await t.request("GET", "/v1/pools", { token: keys.READER })).json as { pools: Array<{ size: number }> }).pools[0]!.size).toBe(3)
  })

  it("scales a pool of agents and lists the operation; refuses bad requests changing nothing", async () => {
    const scaled = await t.request("POST", "/v1/fleet/scale", { token: keys.OPERATOR, body: { pool: "crew", replicas: 2, template: { name: "crew", trustLevel: "TRUSTED" } } })
    expect(scaled.status).toBe(200)
    expect(scaled.json).toMatchObject({ operationType: "scale", targetReplicas: 2, status: "completed" })
    const members = (await t.request("GET", "/v1/agents?label=pool.l02.dev/name=crew", { token: keys.READER })).json as { agents: Array<unknown> }
    expect(members.agents).toHaveLength(2)
    const operations = (await t.request("GET", "/v1/fleet/operations?limit=1", { token: keys.READER })).json as { operations: Array<{ operationId: string }> }
    expect(operations.operations.map((o) => o.operationId)).toEqual([(scaled.json as { operationId: string }).operationId])
    for (const body of [{ pool: "crew", replicas: -1 }, { pool: "bad pool", replicas: 1 }, { pool: "crew", replicas: 1, extra: true }, { pool: "crew", replicas: 1, template: { name: "x", trustLevel: "NOPE" } }]) {
      const refused = await t.request("POST", "/v1/fleet/scale", { token: keys.OPERATOR, body })
      expect(refused.status, JSON.stringify(body)).toBe(400)
    }
    expect((await t.request("GET", "/v1/fleet/operations?limit=0", { token: keys.READER })).status).toBe(400)
    expect(((await t.request("GET", "/v1/agents?label=pool.l02.dev/name=crew", { token: keys.READER })).json as { agents: Array<unknown> }).agents).toHaveLength(2)
    expect((await t.request("POST", "/v1/fleet/scale", { token: keys.READER, body: { pool: "crew", replicas: 0 } })).status).toBe(403)
  })
})
