import { afterEach, describe, expect, it } from "vitest"
import { sha256Hex } from "../../src/http/ApiKeys.ts"
import { serve } from "../../src/http/serve.ts"
import { answeringAgent, startServer, type TestServer } from "./support.ts"

const open: Array<TestServer> = []
afterEach(async () => {
  for (const t of open.splice(0)) await t.close()
})

const keys = { reader: "read-key-0123456789", operator: "op-key-abcdefghij", admin: "admin-key-zyxwvut" }

const start = async () => {
  const t = await startServer({
    apiKeys: [
      { key_env: "TEST_READ_KEY", scopes: ["read"] },
      { key_env: "TEST_OPERATE_KEY", scopes: ["operate"], trust_levels: ["TRUSTED", "STANDARD"] },
      { key_sha256: sha256Hex(keys.admin), scopes: ["admin"] }
    ],
    env: { TEST_READ_KEY: keys.reader, TEST_OPERATE_KEY: keys.operator }
  })
  open.push(t)
  return t
}

describe("HTTP API keys and scopes", () => {
  it("answers 401 E2002 without a key, with a malformed header and with an unknown key, never echoing the key", async () => {
    const t = await start()
    const none = await t.request("GET", "/v1/agents")
    expect(none.status).toBe(401)
    expect(none.json.error).toMatchObject({ code: "E2002", tag: "Unauthenticated" })
    expect(none.headers.get("www-authenticate")).toMatch(/^Bearer/)
    const basic = await t.request("GET", "/v1/agents", { headers: { authorization: "Basic dXNlcjpwYXNz" } })
    expect(basic.status).toBe(401)
    const wrong = await t.request("GET", "/v1/agents", { token: "guessed-secret-key" })
    expect(wrong.status).toBe(401)
    expect(wrong.json.error.code).toBe("E2002")
    expect(wrong.text).not.toContain("guessed-secret-key")
  })

  it("lets a read key GET but answers 403 E2003 naming the scope for lifecycle operations", async () => {
    const t = await start()
    expect((await t.request("GET", "/v1/agents", { token: keys.reader })).status).toBe(200)
    expect((await t.request("GET", "/v1/fleet", { token: keys.reader })).status).toBe(200)
    expect((await t.request("GET", "/metrics", { token: keys.reader })).status).toBe(200)
    const spawn = await t.request("POST", "/v1/agents", { token: keys.reader, body: { config: answeringAgent } })
    expect(spawn.status).toBe(403)
    expect(spawn.json.error).toMatchObject({ code: "E2003", tag: "Forbidden", key: "operate" })
    expect(spawn.text).not.toContain(keys.reader)
    expect(await t.runtime.list()).toEqual([])
  })

  it("lets an operate key run lifecycle operations but not read, and an admin key do everything", async () => {
    const t = await start()
    const spawned = await t.request("POST", "/v1/agents", { token: keys.operator, body: { config: answeringAgent } })
    expect(spawned.status).toBe(201)
    const read = await t.request("GET", `/v1/agents/${spawned.json.agentId}`, { token: keys.operator })
    expect(read.status).toBe(403)
    expect(read.json.error.key).toBe("read")
    expect((await t.request("GET", `/v1/agents/${spawned.json.agentId}`, { token: keys.admin })).status).toBe(200)
    expect((await t.request("DELETE", `/v1/agents/${spawned.json.agentId}`, { token: keys.admin })).status).toBe(200)
  })

  it("checks the key before decoding, so an unauthenticated malformed request is 401, not 400", async () => {
    const t = await start()
    const r = await t.request("POST", "/v1/agents", { raw: "{bad json", headers: { "content-type": "application/json" } })
    expect(r.status).toBe(401)
  })

  it("keeps /healthz, /openapi.json and /docs open", async () => {
    const t = await start()
    expect((await t.request("GET", "/healthz")).status).toBe(200)
    expect((await t.request("GET", "/openapi.json")).status).toBe(200)
    expect((await t.request("GET", "/docs")).status).toBe(200)
  })

  it("refuses to start with E2000 when a key's variable is unset, or on a public host without keys", async () => {
    const t = await startServer()
    open.push(t)
    await expect(serve({ runtime: t.runtime, port: 0, apiKeys: [{ key_env: "NOT_SET_ANYWHERE", scopes: ["read"] }], env: {} })).rejects.toMatchObject({
      code: "E2000",
      key: "http.api_keys.0.key_env",
      message: expect.stringContaining("NOT_SET_ANYWHERE")
    })
    await expect(serve({ runtime: t.runtime, port: 0, host: "0.0.0.0", apiKeys: [], env: {} })).rejects.toMatchObject({ code: "E2000", key: "http.api_keys" })
  })

  it("reports a port in use as E2000 naming http.port", async () => {
    const t = await startServer()
    open.push(t)
    await expect(serve({ runtime: t.runtime, port: t.server.port, apiKeys: [], env: {} })).rejects.toMatchObject({ code: "E2000", key: "http.port" })
  })
})
