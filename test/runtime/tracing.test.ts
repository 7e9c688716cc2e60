// OpenTelemetry traces: with telemetry.traces.exporter otlp, every lifecycle operation reaches an OTLP/HTTP
// collector (a plain node:http server here) as a span with the agent, trust level, backend and, on
// failure, the error's code; supervision decisions too. With the default configuration nothing is sent.
import { createServer, type Server } from "node:http"
import type { AddressInfo } from "node:net"
import { Effect } from "effect"
import { afterEach, describe, expect, it } from "vitest"
import { createRuntime } from "../../src/runtime/createRuntime.ts"
import { memoryServices } from "./support.ts"

interface OtlpSpan {
  readonly name: string
  readonly traceId: string
  readonly spanId: string
  readonly parentSpanId?: string
  readonly attributes: ReadonlyArray<{ readonly key: string; readonly value: Record<string, unknown> }>
  readonly status?: { readonly code?: number }
}

const collectors: Array<Server> = []
afterEach(async () => {
  for (const c of collectors.splice(0)) await new Promise((r) => c.close(r))
})

/** An OTLP/HTTP traces collector: the spans it received, and the raw requests (path, headers). */
const collector = async () => {
  const spans: Array<OtlpSpan & { readonly service: unknown }> = []
  const requests: Array<{ readonly path: string; readonly headers: Record<string, unknown> }> = []
  const server = createServer((req, res) => {
    let body = ""
    req.on("data", (d: Buffer) => (body += d.toString()))
    req.on("end", () => {
      requests.push({ path: req.url ?? "", headers: req.headers })
      const data = JSON.parse(body) as { resourceSpans: Array<{ resource: { attributes: Array<{ key: string; value: { stringValue?: string } }> }; scopeSpans: Array<{ spans: Array<OtlpSpan> }> }> }
      for (const rs of data.resourceSpans) {
        const service = rs.resource.attributes.find((a) => a.key === "service.name")?.value.stringValue
        for (const ss of rs.scopeSpans) for (const span of ss.spans) spans.push({ ...span, service })
      }
      res.writeHead(200, { "content-type": "application/json" }).end("{}")
    })
  })
  collectors.push(server)
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/traces`, spans, requests }
}

const attr = (span: OtlpSpan, key: string) => {
  const value = span.attributes.find((a) => a.key === key)?.value
  return value === undefined ? undefined : (Object.values(value)[0] as unknown)
}

describe("traces", () => {
  it("exports a span per lifecycle operation and supervision decision to an OTLP collector", async () => {
    const c = await collector()
    const services = await memoryServices()
    const runtime = await createRuntime({
      layer: services.layer,
      env: {},
      config: {
        store: { pglite: "memory" },
        runtime: { runtime_id: "rt-traces" },
        lifecycle: { restart_backoff_initial_ms: 10 },
        telemetry: { traces: { exporter: "otlp", endpoint: c.url, service_name: "l02-test", headers: { "x-collector-key": "secret-value" }, export_interval_ms: 100 } }
      }
    })
    try {
      const { agentId, sandboxId } = await runtime.spawn({ name: "traced", trustLevel: "TRUSTED", command: ["l02-agent"] })
      await runtime.suspend(agentId)
      await runtime.resume(agentId)
      await expect(runtime.resume(agentId)).rejects.toMatchObject({ code: "E2020" })
      for await (const event of runtime.execute(agentId, "hello")) if (event.type === "done") break
      // The agent's program exits on its own: the restart decision is a span too.
      await services.run(({ backend }) => Effect.scoped(Effect.flatMap(backend.attach(sandboxId!), (a) => a.write("exit 3"))))
      for (let i = 0; i < 100 && (await runtime.getState(agentId)).restartCount === 0; i++) await new Promise((r) => setTimeout(r, 20))
      await runtime.terminate(agentId)
    } finally {
      await runtime.shutdown()
      await services.close()
    }
    const names = c.spans.map((s) => s.name)
    for (const name of ["l02.spawn", "l02.suspend", "l02.resume", "l02.execute", "l02.fleet.restart", "l02.terminate"]) expect(names).toContain(name)
    const spawn = c.spans.find((s) => s.name === "l02.spawn")!
    expect(spawn.service).toBe("l02-test")
    expect(attr(spawn, "l02.agent.name")).toBe("traced")
    expect(attr(spawn, "l02.trust_level")).toBe("TRUSTED")
    expect(attr(spawn, "l02.backend")).toBe("custom")
    const agentId = attr(spawn, "l02.agent_id")
    expect(agentId).toEqual(expect.any(String))
    expect(c.spans.filter((s) => s.name === "l02.resume").map((s) => attr(s, "l02.agent_id"))).toEqual([agentId, agentId])
    const refused = c.spans.find((s) => s.name === "l02.resume" && attr(s, "l02.error.code") !== undefined)!
    expect(attr(refused, "l02.error.code")).toBe("E2020")
    expect(refused.status?.code).toBe(2)
    expect(c.spans.find((s) => s.name === "l02.terminate")?.status?.code).not.toBe(2)
    expect(c.requests.every((r) => r.path === "/v1/traces" && r.headers["x-collector-key"] === "secret-value")).toBe(true)
  })

  it("exports a span per workflow operation and per node try, with the step's own agent spans inside it", async () => {
    const c = await collector()
    const runtime = await createRuntime({
      backend: "memory",
      env: {},
      fillWarmPools: false,
      config: { store: { pglite: "memory" }, runtime: { runtime_id: "rt-wf-traces" }, telemetry: { traces: { exporter: "otlp", endpoint: c.url, service_name: "l02-test", export_interval_ms: 100 } } }
    })
    let workflowId = ""
    try {
      const graph = {
        name: "traced-flow",
        nodes: [
          { id: "ask", kind: "agent", spawn: { name: "asker", trustLevel: "TRUSTED", command: ["l02-agent"] }, input: "hi" },
          { id: "approve", kind: "approval" }
        ],
        edges: [{ from: "ask", to: "approve" }]
      }
      const run = await runtime.workflows.start(graph)
      workflowId = run.workflowId
      for (let i = 0; i < 200 && (await runtime.workflows.get(workflowId)).state !== "waiting"; i++) await new Promise((r) => setTimeout(r, 20))
      await expect(runtime.workflows.signal(workflowId, "ask", 1)).rejects.toMatchObject({ code: "E2031" })
      await runtime.workflows.signal(workflowId, "approve", true)
      await runtime.workflows.wait(workflowId)
    } finally {
      await runtime.shutdown()
    }
    const start = c.spans.find((s) => s.name === "l02.workflow.start")!
    expect(attr(start, "l02.workflow_id")).toBe(workflowId)
    expect(attr(start, "l02.workflow.name")).toBe("traced-flow")
    const node = c.spans.find((s) => s.name === "l02.workflow.node")!
    expect(attr(node, "l02.workflow.node")).toBe("ask")
    expect(attr(node, "l02.workflow.attempt")).toBe(0)
    // The step's spawn and execute are spans of the node's try.
    const children = c.spans.filter((s) => s.parentSpanId === node.spanId).map((s) => s.name)
    expect(children).toEqual(expect.arrayContaining(["l02.spawn", "l02.execute"]))
    const signals = c.spans.filter((s) => s.name === "l02.workflow.signal")
    expect(signals.map((s) => attr(s, "l02.error.code"))).toEqual(["E2031", undefined])
  })

  it("sends nothing with the default configuration", async () => {
    const c = await collector()
    const services = await memoryServices()
    const runtime = await createRuntime({
      layer: services.layer,
      env: {},
      config: { store: { pglite: "memory" }, telemetry: { traces: { endpoint: c.url, export_interval_ms: 50 } } }
    })
    const { agentId } = await runtime.spawn({ name: "quiet", trustLevel: "TRUSTED" })
    await runtime.terminate(agentId)
    await runtime.shutdown()
    await services.close()
    await new Promise((r) => setTimeout(r, 200))
    expect(c.requests).toEqual([])
  })
})
