import { afterEach, describe, expect, it } from "vitest"
import { latencyBuckets, makeMetrics } from "../../src/http/Metrics.ts"
import { eventually } from "../runtime/support.ts"
import { answeringAgent, startServer, type TestServer } from "./support.ts"

const fleet = { runtimeId: "rt", backend: "memory", total: 2, byState: { running: 1, failed: 1 }, hibernated: 1, pendingRestarts: 1, restartsTotal: 3 }
const at = (ms: number) => new Date(Date.UTC(2026, 0, 1) + ms).toISOString()

/** Parses exposition text into `name{labels}` -> value. */
const parse = (text: string): Map<string, number> =>
  new Map(
    text
      .split("\n")
      .filter((l) => l !== "" && !l.startsWith("#"))
      .map((l) => {
        const space = l.lastIndexOf(" ")
        return [l.slice(0, space), Number(l.slice(space + 1))] as const
      })
  )

describe("Prometheus metrics from lifecycle events", () => {
  it("measures spawn, suspend and resume latency from the events' timestamps", () => {
    const m = makeMetrics()
    m.observe({ agentId: "a", type: "agent.created", toState: "pending", at: at(0) })
    m.observe({ agentId: "a", type: "agent.state", fromState: "pending", toState: "spawning", at: at(10) })
    m.observe({ agentId: "a", type: "agent.state", fromState: "spawning", toState: "running", at: at(300) })
    m.observe({ agentId: "a", type: "agent.state", fromState: "running", toState: "suspending", at: at(1000) })
    m.observe({ agentId: "a", type: "agent.state", fromState: "suspending", toState: "suspended", at: at(1040) })
    m.observe({ agentId: "a", type: "agent.state", fromState: "suspended", toState: "resuming", at: at(2000) })
    m.observe({ agentId: "a", type: "agent.state", fromState: "resuming", toState: "running", at: at(9000) })
    const values = parse(m.render(fleet))
    expect(values.get("l02_spawn_duration_seconds_count")).toBe(1)
    expect(values.get("l02_spawn_duration_seconds_sum")).toBeCloseTo(0.3)
    expect(values.get('l02_spawn_duration_seconds_bucket{le="0.25"}')).toBe(0)
    expect(values.get('l02_spawn_duration_seconds_bucket{le="0.5"}')).toBe(1)
    expect(values.get("l02_suspend_duration_seconds_sum")).toBeCloseTo(0.04)
    expect(values.get("l02_resume_duration_seconds_sum")).toBeCloseTo(7)
    expect(values.get('l02_resume_duration_seconds_bucket{le="5"}')).toBe(0)
    expect(values.get('l02_resume_duration_seconds_bucket{le="10"}')).toBe(1)
    expect(values.get('l02_resume_duration_seconds_bucket{le="+Inf"}')).toBe(1)
    expect(latencyBuckets.every((b, i) => i === 0 || b > latencyBuckets[i - 1]!)).toBe(true)
  })

  it("does not count a spawn that failed, and counts backend errors by code", () => {
    const m = makeMetrics()
    m.observe({ agentId: "b", type: "agent.created", toState: "pending", at: at(0) })
    m.observe({ agentId: "b", type: "agent.state", fromState: "spawning", toState: "failed", data: { error: { code: "E2022", message: "x", retryable: true } }, at: at(50) })
    m.observe({ agentId: "b", type: "agent.state", fromState: "running", toState: "failed", data: { error: { code: "E2046", message: "x", retryable: true } }, at: at(60) })
    m.observe({ agentId: "b", type: "agent.state", fromState: "running", toState: "failed", data: { error: { code: "E2046", message: "x", retryable: true } }, at: at(70) })
    m.observe({ agentId: "b", type: "agent.state", fromState: "spawning", toState: "running", at: at(90) })
    const values = parse(m.render(fleet))
    expect(values.get("l02_spawn_duration_seconds_count")).toBe(0)
    expect(values.get('l02_backend_errors_total{code="E2046"}')).toBe(2)
    expect(values.get('l02_backend_errors_total{code="E2022"}')).toBe(1)
  })

  it("reports agents by state, restarts and pending restarts from the fleet status", () => {
    const values = parse(makeMetrics().render(fleet))
    expect(values.get('l02_agents{state="running"}')).toBe(1)
    expect(values.get('l02_agents{state="failed"}')).toBe(1)
    expect(values.get('l02_agents{state="suspended"}')).toBe(0)
    expect(values.get("l02_restarts_total")).toBe(3)
    expect(values.get("l02_pending_restarts")).toBe(1)
    expect(values.get("l02_agents_hibernated")).toBe(1)
  })
})

describe("GET /metrics", () => {
  let t: TestServer | undefined
  afterEach(async () => {
    await t?.close()
  })

  it("serves the exposition format with the runtime's operations counted", async () => {
    t = await startServer()
    const { agentId } = await t.runtime.spawn(answeringAgent)
    await t.runtime.suspend(agentId)
    await t.runtime.resume(agentId)
    await eventually(async () => {
      const r = await t!.request("GET", "/metrics")
      expect(r.status).toBe(200)
      expect(r.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/)
      const values = parse(r.text)
      expect(values.get('l02_agents{state="running"}')).toBe(1)
      expect(values.get("l02_spawn_duration_seconds_count")).toBe(1)
      expect(values.get("l02_suspend_duration_seconds_count")).toBe(1)
      expect(values.get("l02_resume_duration_seconds_count")).toBe(1)
      expect(values.get('l02_http_requests_total{endpoint="metrics",status="200"}')).toBeGreaterThanOrEqual(0)
      // The running agent's own usage, by id and name (the memory backend's accounting).
      expect(values.get(`l02_agent_cpu_percent{agent_id="${agentId}",name="worker"}`)).toBe(0)
      expect(values.get(`l02_agent_memory_bytes{agent_id="${agentId}",name="worker"}`)).toBeGreaterThanOrEqual(0)
      for (const line of r.text.split("\n").filter((l) => l !== "" && !l.startsWith("#"))) {
        expect(line).toMatch(/^[a-z_:][a-z0-9_:]*(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? -?[0-9.e+-]+$/)
      }
    })
  })

  it("gives an agent's token use as a gauge once its conversation has used some", async () => {
    t = await startServer()
    const { agentId } = await t.runtime.spawn({
      name: "talker",
      trustLevel: "TRUSTED",
      model: { provider: "scripted", model: "s", script: [{ text: "hello", usage: { inputTokens: 12, outputTokens: 30 } }] }
    })
    for await (const _ of t.runtime.execute(agentId, "hi")) void _
    const values = parse((await t.request("GET", "/metrics")).text)
    expect(values.get(`l02_agent_tokens_used{agent_id="${agentId}",name="talker"}`)).toBe(42)
  })
})
