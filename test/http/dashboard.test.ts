// The dashboard routes of `l02 serve`: the page (self-contained, strict CSP), the machine definitions
// (read scope), and the ?access_token= credential of the event stream (read scope, that route only).
import { createHash } from "node:crypto"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { fleetMachine } from "../../machines/fleetMachine.ts"
import { agentMachine } from "../../machines/agentMachine.ts"
import { dashboardPage } from "../../src/http/dashboard/DashboardPage.ts"
import { machineSvg } from "../../src/http/dashboard/machineSvg.ts"
import { machineJson } from "../../src/runtime/inspector.ts"
import { answeringAgent, startServer, type TestServer } from "./support.ts"

const keys = { READ_KEY: "read-secret", OPERATE_KEY: "operate-secret", ADMIN_KEY: "admin-secret" }

describe("dashboard routes", () => {
  let t: TestServer
  beforeAll(async () => {
    t = await startServer({
      apiKeys: [
        { key_env: "READ_KEY", scopes: ["read"] },
        { key_env: "OPERATE_KEY", scopes: ["operate"] },
        { key_env: "ADMIN_KEY", scopes: ["admin"] }
      ],
      env: keys
    })
  })
  afterAll(async () => {
    await t.close()
  })

  it("serves the page without a key, with no external assets and a CSP allowing exactly its inline script and style", async () => {
    const reply = await t.request("GET", "/dashboard")
    expect(reply.status).toBe(200)
    expect(reply.headers.get("content-type")).toBe("text/html; charset=utf-8")
    const csp = reply.headers.get("content-security-policy")!
    expect(csp).toContain("default-src 'none'")
    expect(csp).toContain("connect-src 'self'")
    const script = /<script>([\s\S]*)<\/script>/.exec(reply.text)![1]!
    const style = /<style>([\s\S]*)<\/style>/.exec(reply.text)![1]!
    expect(csp).toContain(`script-src 'sha256-${createHash("sha256").update(script).digest("base64")}'`)
    expect(csp).toContain(`style-src 'sha256-${createHash("sha256").update(style).digest("base64")}'`)
    // Nothing is loaded from elsewhere: no src/href attributes, no URLs other than the SVG namespace.
    expect(reply.text).not.toMatch(/\s(src|href)="(?!data:)/)
    expect(new Set(reply.text.match(/https?:\/\/[^\s"'<]+/g))).toEqual(new Set(["http://www.w3.org/2000/svg"]))
    expect(reply.text).toContain('data-state="running.idle"')
  })

  it("serves the machine definitions to read keys, 401 without a key, 404 naming the machines for an unknown one", async () => {
    expect((await t.request("GET", "/v1/machines/agent")).status).toBe(401)
    const agent = await t.request("GET", "/v1/machines/agent", { token: keys.READ_KEY })
    expect(agent.status).toBe(200)
    expect(agent.json).toEqual(machineJson("agent"))
    expect((await t.request("GET", "/v1/machines/fleet", { token: keys.ADMIN_KEY })).json.id).toBe("fleet")
    expect((await t.request("GET", "/v1/machines/fleet", { token: keys.OPERATE_KEY })).json.error.code).toBe("E2003")
    expect((await t.request("GET", "/v1/machines/workflow", { token: keys.READ_KEY })).json.id).toBe("workflow")
    const missing = await t.request("GET", "/v1/machines/pipeline", { token: keys.READ_KEY })
    expect(missing.status).toBe(404)
    expect(missing.json.error).toMatchObject({ code: "E2001" })
    expect(missing.json.error.message).toContain("agent, fleet, workflow")
  })

  it("accepts ?access_token= on the event stream only, and only for the read scope", async () => {
    const controller = new AbortController()
    const stream = await fetch(`${t.url}/v1/events?access_token=${keys.READ_KEY}`, { signal: controller.signal })
    expect(stream.status).toBe(200)
    const reader = stream.body!.getReader()
    const decoder = new TextDecoder()
    let text = decoder.decode((await reader.read()).value)
    expect(text).toContain(": connected")
    const spawned = await t.request("POST", "/v1/agents", { token: keys.ADMIN_KEY, body: { config: answeringAgent } })
    expect(spawned.status).toBe(201)
    while (!text.includes(spawned.json.agentId)) text += decoder.decode((await reader.read()).value)
    controller.abort()

    expect((await fetch(`${t.url}/v1/events?access_token=wrong`)).status).toBe(401)
    // An operate-only key has no read scope, and the admin key gives only read through the URL.
    expect((await fetch(`${t.url}/v1/events?access_token=${keys.OPERATE_KEY}`)).status).toBe(403)
    const admin = new AbortController()
    expect((await fetch(`${t.url}/v1/events?access_token=${keys.ADMIN_KEY}`, { signal: admin.signal })).status).toBe(200)
    admin.abort()
    // Anywhere else the parameter is no credential.
    expect((await fetch(`${t.url}/v1/fleet?access_token=${keys.ADMIN_KEY}`)).status).toBe(401)
    expect((await fetch(`${t.url}/v1/agents?access_token=${keys.ADMIN_KEY}`)).status).toBe(401)
  })
})

describe("machine SVG", () => {
  it("draws every state of the agent machine once, every transition between top-level states, and escapes text", () => {
    const { svg, states } = machineSvg(agentMachine as never)
    expect(states).toEqual(
      expect.arrayContaining(["pending", "spawning", "running", "running.idle", "running.busy", "suspended", "terminating.graceful", "terminating.forced", "failed"])
    )
    for (const state of states) expect(svg.split(`data-state="${state}"`).length - 1).toBe(1)
    expect(svg).toContain('data-from="running" data-to="suspending"')
    expect(svg).toContain('data-from="failed" data-to="spawning"')
    expect(svg).toContain("from any state: agent.terminate → terminating")
    expect(svg).not.toMatch(/NaN|undefined/)
  })

  it("keeps edge labels apart: one event per line, short enough for the gap, and an arc over a row instead of a line through its states", () => {
    const { svg } = machineSvg(agentMachine as never)
    const lines = [...svg.matchAll(/<tspan [^>]*>([^<]*)<\/tspan>/g)].map((m) => m[1]!)
    expect(lines.length).toBeGreaterThan(10)
    for (const line of lines.filter((l) => !l.includes(","))) expect(line.length, line).toBeLessThanOrEqual(18)
    // resuming -> running skips suspending and suspended on the same row: drawn as an arc (a path), not a line.
    const resumed = /<g class="edge" data-from="resuming" data-to="running">.*?<\/g>/.exec(svg)?.[0] ?? ""
    expect(resumed).toContain("<path ")
    expect(resumed).not.toContain("<line ")
  })

  it("draws the fleet machine too", () => {
    const { svg, states } = machineSvg(fleetMachine as never)
    expect(states.length).toBeGreaterThan(0)
    expect(svg.startsWith("<svg")).toBe(true)
    expect(svg).not.toMatch(/NaN|undefined/)
  })

  it("the page is the same for the same machine (cacheable)", () => {
    expect(dashboardPage().html).toBe(dashboardPage().html)
  })
})
