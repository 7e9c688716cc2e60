// The dashboard in a real headless Chromium: it asks for the API key, goes live over SSE, shows an agent
// spawned through the API, and follows it to suspended, highlighting the state on the machine diagram.
// Needs Debian's chromium (.ci/setup-browser.sh); runs when L02_TEST_BROWSER=1.
import { chromium, type Browser, type Page } from "playwright-core"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { answeringAgent, startServer, type TestServer } from "../http/support.ts"

const keys = { DASH_READ: "dash-read-key", DASH_ADMIN: "dash-admin-key" }
const screenshot = process.env.L02_DASHBOARD_SCREENSHOT ?? "/tmp/l02-dashboard.png"

describe.skipIf(!process.env.L02_TEST_BROWSER)("dashboard in headless Chromium", () => {
  let t: TestServer
  let browser: Browser
  let page: Page
  const problems: Array<string> = []

  beforeAll(async () => {
    t = await startServer({
      apiKeys: [
        { key_env: "DASH_READ", scopes: ["read"] },
        { key_env: "DASH_ADMIN", scopes: ["admin"] }
      ],
      env: keys
    })
    browser = await chromium.launch({
      executablePath: process.env.L02_CHROMIUM ?? "/usr/bin/chromium",
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run"]
    })
    page = await browser.newPage({ viewport: { width: 1400, height: 900 } })
    page.on("pageerror", (error) => problems.push(`page error: ${error.message}`))
    page.on("console", (message) => {
      // The first requests without a key answer 401 by design; anything else (a CSP violation) is a problem.
      if (message.type() === "error" && !/401/.test(message.text())) problems.push(`console: ${message.text()}`)
    })
  })

  afterAll(async () => {
    await browser?.close()
    await t?.close()
  })

  it("asks for a key, goes live, shows a spawned agent and follows it to suspended", async () => {
    // An agent that ran before the page opened: its transitions are listed at once (replayed from the log).
    const early = await t.request("POST", "/v1/agents", { token: keys.DASH_ADMIN, body: { config: { ...answeringAgent, name: "dash-early" } } })
    expect(early.status).toBe(201)
    // The page finishes loading (its event stream opens after the load event).
    await page.goto(`${t.url}/dashboard`, { waitUntil: "load", timeout: 10_000 })
    // API keys are configured: the page asks for one.
    await page.locator("#auth").waitFor({ state: "visible" })
    await page.fill("#key", "not-a-key")
    await page.click("#auth button")
    await expect.poll(() => page.textContent("#auth-error")).toContain("E2002")
    await page.fill("#key", keys.DASH_READ)
    await page.click("#auth button")
    await page.locator("#auth").waitFor({ state: "hidden" })
    await expect.poll(() => page.textContent("#conn"), { timeout: 10_000 }).toBe("live")
    await expect.poll(() => page.textContent("#transitions"), { timeout: 10_000 }).toContain(`${early.json.agentId as string}  agent.state  spawning → running`)

    const spawned = await t.request("POST", "/v1/agents", { token: keys.DASH_ADMIN, body: { config: { ...answeringAgent, name: "dash-worker" } } })
    expect(spawned.status).toBe(201)
    const agentId = spawned.json.agentId as string
    const row = page.locator(`#agents tr[data-agent-id="${agentId}"]`)
    await expect.poll(() => row.locator("td.state").textContent(), { timeout: 10_000 }).toBe("running/idle")
    expect(await row.locator("td").nth(1).textContent()).toBe("dash-worker")
    // Live usage of a running agent (the memory backend's own accounting): cpu and memory are numbers.
    await expect.poll(() => row.locator("td").nth(4).textContent(), { timeout: 10_000 }).toMatch(/^\d+\.\d %$/)
    await expect.poll(() => row.locator("td").nth(5).textContent(), { timeout: 10_000 }).not.toBe("-")

    await row.click()
    await expect.poll(() => page.getAttribute("svg.machine .state.current", "data-state")).toBe("running")
    expect(await page.locator('svg.machine .state.current[data-state="running.idle"]').count()).toBe(1)

    const suspended = await t.request("POST", `/v1/agents/${agentId}/suspend`, { token: keys.DASH_ADMIN, body: {} })
    expect(suspended.status).toBe(200)
    await expect.poll(() => row.locator("td.state").textContent(), { timeout: 10_000 }).toBe("suspended")
    await expect.poll(() => page.getAttribute("svg.machine .state.current", "data-state")).toBe("suspended")
    expect(await page.locator("svg.machine .state.current").count()).toBe(1)
    await expect.poll(() => page.textContent("#transitions")).toContain("→ suspended")
    await expect.poll(() => page.textContent("#fleet-suspended b"), { timeout: 10_000 }).toBe("1")
    expect(await page.locator(`#agents tr[data-agent-id="${early.json.agentId as string}"] td.state`).textContent()).toBe("running/idle")
    expect(await page.textContent("#server-health b")).toBe("ok")

    await page.screenshot({ path: screenshot, fullPage: true })
    expect(problems).toEqual([])
  })

  it("draws a workflow run's graph with each node's live state, following it over the event stream", async () => {
    const graph = {
      name: "dash-flow",
      nodes: [
        { id: "first", kind: "agent", spawn: { ...answeringAgent, name: "dash-first" }, input: "go" },
        { id: "approve", kind: "approval" },
        { id: "last", kind: "agent", spawn: { ...answeringAgent, name: "dash-last" }, input: "{{ nodes.approve.output }}" }
      ],
      edges: [{ from: "first", to: "approve" }, { from: "approve", to: "last" }]
    }
    const started = await t.request("POST", "/v1/workflows", { token: keys.DASH_ADMIN, body: { graph } })
    expect(started.status).toBe(201)
    const id = started.json.workflowId as string
    const row = page.locator(`#runs tr[data-workflow-id="${id}"]`)
    await expect.poll(() => row.locator("td.state").textContent(), { timeout: 10_000 }).toBe("waiting")
    await row.click()
    await expect.poll(() => page.getAttribute('svg.graph .node[data-node="approve"]', "class"), { timeout: 10_000 }).toBe("node waiting")
    expect(await page.getAttribute('svg.graph .node[data-node="first"]', "class")).toBe("node completed")
    expect(await page.getAttribute('svg.graph .node[data-node="last"]', "class")).toBe("node pending")
    expect(await page.locator("svg.graph path").count()).toBe(2)
    const signalled = await t.request("POST", `/v1/workflows/${id}/signal`, { token: keys.DASH_ADMIN, body: { node: "approve", value: "ok" } })
    expect(signalled.status).toBe(200)
    await expect.poll(() => page.getAttribute('svg.graph .node[data-node="last"]', "class"), { timeout: 10_000 }).toBe("node completed")
    await expect.poll(() => row.locator("td.state").textContent(), { timeout: 10_000 }).toBe("completed")
    expect(await page.textContent("#run-title")).toContain("dash-flow")
    await page.screenshot({ path: screenshot.replace(/\.png$/, "-workflow.png"), fullPage: true })
    expect(problems).toEqual([])
  })
})
