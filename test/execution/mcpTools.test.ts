// MCP tools against a real MCP server built with the SDK, over stdio (a child process) and over
// streamable HTTP (an in-process node:http server): listing, allowlists, schema validation before
// the server sees the input, isError results, timeouts, and the server's process ended with the scope.
import { readdirSync, readFileSync } from "node:fs"
import { randomUUID } from "node:crypto"
import { createServer } from "node:http"
import type { AddressInfo } from "node:net"
import { fileURLToPath } from "node:url"
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js"
import { Effect, Layer } from "effect"
import { describe, expect, it } from "@effect/vitest"
import { run } from "../../src/execution/AgentLoop.ts"
import * as ScriptedModel from "../../src/execution/providers/ScriptedModel.ts"
import { layerMemory as budgetMemory } from "../../src/execution/TokenBudget.ts"
import { connectMcpServer, type McpServerConfig } from "../../src/execution/tools/McpTools.ts"
import { makeToolkit } from "../../src/execution/tools/Toolkit.ts"
import { ModelGateway } from "../../src/services/ModelGateway.ts"
import { makeMcpServer } from "./fixtures/mcpServer.ts"
import { collect, ofType } from "./support.ts"

const stdioServer: McpServerConfig = {
  name: "calc",
  transport: {
    type: "stdio",
    command: process.execPath,
    args: [fileURLToPath(new URL("./fixtures/mcpServer.ts", import.meta.url)), "--stdio"],
    cwd: fileURLToPath(new URL("../..", import.meta.url))
  },
  allowlist: ["add", "shout", "broken", "slow"]
}

/** An in-process streamable HTTP MCP server (stateless: one server and transport per request). */
const httpServer = Effect.acquireRelease(
  Effect.promise(() =>
    new Promise<{ url: string; close: () => Promise<void> }>((resolve) => {
      const http = createServer((req, res) => {
        const server = makeMcpServer()
        const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined })
        res.on("close", () => {
          void transport.close()
          void server.close()
        })
        void server.connect(transport).then(() => transport.handleRequest(req, res))
      })
      http.listen(0, "127.0.0.1", () =>
        resolve({
          url: `http://127.0.0.1:${(http.address() as AddressInfo).port}/mcp`,
          close: () => new Promise<void>((done) => {
            http.closeAllConnections()
            http.close(() => done())
          })
        })
      )
    })
  ),
  (server) => Effect.promise(() => server.close())
)

const callsOf = (calls: ReadonlyArray<{ name: string; arguments: unknown }>) =>
  ScriptedModel.make([{ toolCalls: calls }, { text: "finished" }])

describe("MCP tools", () => {
  it.live("over stdio: lists the allowed tools, runs them in the loop, returns isError and invalid input as results", () =>
    Effect.gen(function*() {
      const tools = yield* connectMcpServer(stdioServer)
      expect(tools.map((t) => t.definition.name)).toEqual(["add", "shout", "broken", "slow"])
      const scripted = callsOf([
        { name: "add", arguments: { a: 2, b: 40 } },
        { name: "add", arguments: { a: "two", b: 40 } },
        { name: "broken", arguments: {} },
        { name: "secret", arguments: {} }
      ])
      const events = yield* collect(run("compute", { tools: makeToolkit(tools), model: { name: "scripted" }, maxSteps: 3 })).pipe(
        Effect.provide(Layer.mergeAll(Layer.succeed(ModelGateway, scripted.gateway), budgetMemory))
      )
      const results = ofType(events, "tool.result")
      expect(results.map((r) => [r.content.split(":")[0], r.isError, r.error?.code])).toEqual([
        ["42", false, undefined],
        ["E2087 ToolInputInvalid", true, "E2087"],
        ["the database is down", true, undefined],
        ["E2088 ToolNotAllowed", true, "E2088"]
      ])
      expect(scripted.requests()[0]?.tools.find((t) => t.name === "add")?.parameters).toMatchObject({ required: ["a", "b"] })
      expect(events.at(-1)).toMatchObject({ type: "done", reason: "final", text: "finished" })
    }).pipe(Effect.scoped))

  it.live("over stdio: a call beyond the server's timeout fails with E2086", () =>
    Effect.gen(function*() {
      const tools = yield* connectMcpServer({ ...stdioServer, timeoutMs: 200 })
      const toolkit = makeToolkit(tools)
      const outcome = yield* toolkit.call({ id: "c1", name: "slow", arguments: "{\"ms\":5000}" })
      expect(outcome.error?.code).toBe("E2086")
      expect(outcome.output.content).toMatch(/timed out/i)
      // The connection survives a timed-out call.
      const next = yield* toolkit.call({ id: "c2", name: "shout", arguments: "{\"text\":\"ok\"}" })
      expect(next.output).toEqual({ content: "OK", isError: false })
    }).pipe(Effect.scoped))

  it.live("over streamable HTTP: prefixed names, allowlist, calls", () =>
    Effect.gen(function*() {
      const server = yield* httpServer
      const tools = yield* connectMcpServer({ name: "remote", transport: { type: "http", url: server.url }, prefix: true, allowlist: ["shout", "add"] })
      expect(tools.map((t) => t.definition.name)).toEqual(["remote__add", "remote__shout"])
      const toolkit = makeToolkit(tools, ["remote__shout"])
      expect(toolkit.definitions.map((d) => d.name)).toEqual(["remote__shout"])
      expect((yield* toolkit.call({ id: "1", name: "remote__shout", arguments: "{\"text\":\"hi\"}" })).output).toEqual({ content: "HI", isError: false })
      expect((yield* toolkit.call({ id: "2", name: "remote__add", arguments: "{\"a\":1,\"b\":2}" })).error?.code).toBe("E2088")
    }).pipe(Effect.scoped))

  it.live("closing the scope ends the stdio server's process", () =>
    Effect.gen(function*() {
      const marker = `--marker=${randomUUID()}`
      const running = () =>
        readdirSync("/proc").filter((pid) => /^\d+$/.test(pid)).some((pid) => {
          try {
            return readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(marker)
          } catch {
            return false
          }
        })
      const transport = { ...stdioServer.transport, args: [...(stdioServer.transport.type === "stdio" ? stdioServer.transport.args ?? [] : []), marker] }
      yield* Effect.scoped(Effect.gen(function*() {
        yield* connectMcpServer({ ...stdioServer, transport } as McpServerConfig)
        expect(running()).toBe(true)
      }))
      yield* Effect.sleep("300 millis")
      expect(running()).toBe(false)
    }))

  it.live("a server that cannot be started or reached fails with E2086 naming it", () =>
    Effect.gen(function*() {
      const missing = yield* Effect.flip(connectMcpServer({ name: "ghost", transport: { type: "stdio", command: "/nonexistent/mcp-server" } }))
      expect(missing.code).toBe("E2086")
      expect(missing.message).toMatch(/MCP server "ghost"/)
      const crashing = yield* Effect.flip(connectMcpServer({
        name: "crash",
        transport: { type: "stdio", command: process.execPath, args: ["-e", "console.error('config file missing: /etc/mcp.json'); process.exit(3)"] }
      }))
      expect(crashing.code).toBe("E2086")
      expect(crashing.message).toMatch(/stderr ends with: config file missing: \/etc\/mcp.json/)
      const unreachable = yield* Effect.flip(connectMcpServer({ name: "far", transport: { type: "http", url: "http://127.0.0.1:9/mcp" } }))
      expect(unreachable.code).toBe("E2086")
    }).pipe(Effect.scoped))
})
