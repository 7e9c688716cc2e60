/**
 * Tools served by MCP servers (Model Context Protocol) through `@modelcontextprotocol/sdk`: a stdio
 * server started inside the agent's sandbox (`sandbox`), a stdio server the operator declared on the
 * supervisor's host (`stdio`, never from an agent config), or a streamable HTTP server at a URL.
 *
 * Connecting lists the server's tools (filtered by the server entry's allowlist); each becomes an
 * {@link AgentTool} whose JSON schema is the server's `inputSchema`, so the {@link Toolkit}
 * validates the model's input before the server sees it. A result the server marks `isError` goes
 * back to the model as an error result; a transport failure or timeout is E2086. The connection
 * lives in the caller's scope: closing it stops a stdio server.
 */
import { Client } from "@modelcontextprotocol/sdk/client/index.js"
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js"
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js"
import type { Transport } from "@modelcontextprotocol/sdk/shared/transport.js"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import { ToolFailed } from "../../domain/Errors.ts"
import type { AgentTool } from "./AgentTool.ts"
import { type SandboxStdioServer, sandboxStdioTransport } from "./SandboxStdioTransport.ts"
import { isAllowed } from "./Toolkit.ts"

/** How to reach one MCP server. */
export type McpTransportConfig =
  | { readonly type: "sandbox"; readonly server: SandboxStdioServer }
  | {
    readonly type: "stdio"
    readonly command: string
    readonly args?: ReadonlyArray<string> | undefined
    /** Added to the SDK's safe subset of the host environment (PATH, HOME, USER, ...), never the whole of it. */
    readonly env?: Readonly<Record<string, string>> | undefined
    readonly cwd?: string | undefined
  }
  | { readonly type: "http"; readonly url: string; readonly headers?: Readonly<Record<string, string>> | undefined }

/** One MCP server of an agent. */
export interface McpServerConfig {
  /** A short name, used in messages and as the tools' prefix when `prefix` is set. */
  readonly name: string
  readonly transport: McpTransportConfig
  /** Only these tools (names or `prefix*`) are taken from the server; all when absent. */
  readonly allowlist?: ReadonlyArray<string> | undefined
  /** Exposes the tools as `<name>__<tool>`, to keep servers' tool names apart. */
  readonly prefix?: boolean | undefined
  /** Timeout of one tool call. Default 60 s. */
  readonly timeoutMs?: number | undefined
}

/** The transport, and the tail of a stdio server's stderr (drained, so the server never blocks on it). */
const transportOf = (config: McpTransportConfig): Effect.Effect<{ transport: Transport; stderrTail: () => string }, never, Scope.Scope> => {
  if (config.type === "sandbox") return sandboxStdioTransport(config.server)
  if (config.type === "http") {
    return Effect.succeed({
      // Redirects are followed only within the URL's origin (the SDK's default), so a listed URL cannot send the client elsewhere.
      transport: new StreamableHTTPClientTransport(new URL(config.url), { requestInit: { headers: { ...config.headers } }, redirectPolicy: "same-origin" }),
      stderrTail: () => ""
    })
  }
  const transport = new StdioClientTransport({
    command: config.command,
    args: [...(config.args ?? [])],
    ...(config.env === undefined ? {} : { env: { ...config.env } }),
    ...(config.cwd === undefined ? {} : { cwd: config.cwd }),
    stderr: "pipe"
  })
  let tail = ""
  transport.stderr?.on("data", (chunk: Buffer) => {
    tail = (tail + chunk.toString("utf8")).slice(-2000)
  })
  return Effect.succeed({ transport, stderrTail: () => tail.trim() })
}

const withStderr = (message: string, stderr: string) => stderr === "" ? message : `${message}; its stderr ends with: ${stderr.slice(-500)}`

const where = (config: McpServerConfig) =>
  config.transport.type === "sandbox"
    ? `MCP server "${config.name}" (${config.transport.server.command}, in the sandbox)`
    : config.transport.type === "stdio"
    ? `MCP server "${config.name}" (${config.transport.command})`
    : `MCP server "${config.name}" at ${config.transport.url}`

interface ContentItem {
  readonly type: string
  readonly text?: string
  readonly mimeType?: string
  readonly resource?: { readonly uri?: string; readonly text?: string }
}

/** The text the model sees of a tool result's content items. */
const textOf = (content: ReadonlyArray<ContentItem>): string =>
  content
    .map((item) =>
      item.type === "text"
        ? item.text ?? ""
        : item.type === "resource"
        ? item.resource?.text ?? `[resource ${item.resource?.uri ?? ""}]`
        : `[${item.type}${item.mimeType === undefined ? "" : ` ${item.mimeType}`}]`
    )
    .join("\n")

/**
 * Connects to an MCP server in the current scope and returns its tools. Fails with E2086 when the
 * server cannot be started or reached, naming it.
 */
export const connectMcpServer = (config: McpServerConfig): Effect.Effect<ReadonlyArray<AgentTool>, ToolFailed, Scope.Scope> =>
  Effect.gen(function*() {
    const { transport, stderrTail } = yield* transportOf(config.transport)
    const client = yield* Effect.acquireRelease(
      Effect.tryPromise({
        try: async () => {
          const client = new Client({ name: "l02-agent-runtime", version: "0.1.0" })
          await client.connect(transport)
          return client
        },
        catch: (error) =>
          new ToolFailed({
            message: withStderr(`cannot connect to ${where(config)}: ${(error as Error).message}; check the command or URL`, stderrTail()),
            key: config.name
          })
      }),
      (client) => Effect.promise(() => client.close().catch(() => undefined))
    )
    const listed = yield* Effect.tryPromise({
      try: () => client.listTools(),
      catch: (error) =>
        new ToolFailed({ message: `${where(config)} could not list its tools: ${(error as Error).message}`, key: config.name })
    })
    const timeoutMs = config.timeoutMs ?? 60_000
    return listed.tools
      .filter((tool) => isAllowed(config.allowlist, tool.name))
      .map((tool): AgentTool => {
        const exposed = config.prefix === true ? `${config.name}__${tool.name}` : tool.name
        return {
          definition: {
            name: exposed,
            description: tool.description ?? tool.title ?? `${tool.name} from ${config.name}`,
            parameters: tool.inputSchema as Record<string, unknown>
          },
          run: (input) =>
            Effect.tryPromise({
              try: (signal) => client.callTool({ name: tool.name, arguments: { ...input } }, undefined, { signal, timeout: timeoutMs }),
              catch: (error) =>
                new ToolFailed({
                  message: withStderr(`${where(config)} failed running "${tool.name}": ${(error as Error).message}`, stderrTail()),
                  key: exposed
                })
            }).pipe(
              Effect.map((result) => {
                const content = Array.isArray(result.content)
                  ? textOf(result.content as ReadonlyArray<ContentItem>)
                  : JSON.stringify(result.toolResult ?? result.structuredContent ?? null)
                return { content, isError: result.isError === true }
              })
            )
        }
      })
  })
