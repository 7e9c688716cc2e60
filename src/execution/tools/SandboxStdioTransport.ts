/**
 * An MCP stdio transport whose server runs **inside an agent's sandbox**: the program is started with
 * the backend's `exec` (as the sandbox user, under the trust level's isolation and network policy)
 * with a streamed stdin, and JSON-RPC messages travel as newline-delimited JSON over its stdin and
 * stdout, as the MCP stdio transport specifies. The server never runs on the supervisor's host.
 *
 * The exec lives in the caller's scope: closing the transport ends the program's input (a server
 * exits at end of input), and closing the scope stops the program.
 */
import { ReadBuffer, serializeMessage } from "@modelcontextprotocol/sdk/shared/stdio.js"
import type { Transport } from "@modelcontextprotocol/sdk/shared/transport.js"
import type { JSONRPCMessage } from "@modelcontextprotocol/sdk/types.js"
import type * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type { SandboxBackendShape } from "../../services/SandboxBackend.ts"

/** Which program to start in which sandbox. */
export interface SandboxStdioServer {
  readonly backend: SandboxBackendShape
  readonly sandboxId: string
  readonly command: string
  readonly args?: ReadonlyArray<string> | undefined
  readonly env?: Readonly<Record<string, string>> | undefined
  readonly cwd?: string | undefined
}

/** A day: the exec lasts as long as the step's scope, this only bounds a forgotten one. */
const lifetimeMs = 24 * 60 * 60 * 1000

/** A transport to a stdio MCP server started in the sandbox, and the tail of its stderr. */
export const sandboxStdioTransport = (
  server: SandboxStdioServer
): Effect.Effect<{ readonly transport: Transport; readonly stderrTail: () => string }, never, Scope.Scope> =>
  Effect.gen(function* () {
    const input = yield* Queue.unbounded<string, Cause.Done>()
    const buffer = new ReadBuffer()
    let tail = ""
    let exited: string | undefined
    let closed = false
    const transport: Transport = {
      start: async () => {},
      send: async (message: JSONRPCMessage) => {
        if (exited !== undefined) throw new Error(exited)
        Queue.offerUnsafe(input, serializeMessage(message))
      },
      close: async () => {
        Queue.endUnsafe(input)
        if (!closed) {
          closed = true
          transport.onclose?.()
        }
      }
    }
    const end = (why: string) => {
      exited ??= why
      if (!closed) {
        closed = true
        transport.onclose?.()
      }
    }
    yield* Effect.forkScoped(
      server.backend
        .exec(server.sandboxId, {
          command: [server.command, ...(server.args ?? [])],
          stdin: Stream.fromQueue(input),
          ...(server.env === undefined ? {} : { env: server.env }),
          ...(server.cwd === undefined ? {} : { workingDir: server.cwd }),
          timeoutMs: lifetimeMs,
          maxOutputBytes: Number.MAX_SAFE_INTEGER
        })
        .pipe(
          Stream.runForEach((chunk) =>
            Effect.sync(() => {
              if (chunk._tag === "stderr") {
                tail = (tail + chunk.data).slice(-2000)
              } else if (chunk._tag === "stdout") {
                if (exited !== undefined) return
                try {
                  buffer.append(Buffer.from(chunk.data, "utf8"))
                } catch (error) {
                  // A line longer than the SDK's bound (10 MB): the server is broken or hostile; stop listening.
                  buffer.clear()
                  transport.onerror?.(error as Error)
                  end(`the MCP server ${server.command} in sandbox ${server.sandboxId} wrote a line over the size limit: ${(error as Error).message}`)
                  return
                }
                for (;;) {
                  let message: JSONRPCMessage | null
                  try {
                    message = buffer.readMessage()
                  } catch (error) {
                    transport.onerror?.(error as Error)
                    continue
                  }
                  if (message === null) break
                  transport.onmessage?.(message)
                }
              } else {
                end(`the MCP server ${server.command} in sandbox ${server.sandboxId} exited with code ${chunk.exitCode}`)
              }
            })
          ),
          Effect.catch((error) =>
            Effect.sync(() => {
              transport.onerror?.(new Error(error.message))
              end(`the MCP server ${server.command} in sandbox ${server.sandboxId} could not run: ${error.message}`)
            })
          )
        )
    )
    // Why the server went away (an exit code, an oversized line) goes with its stderr into failure messages.
    return { transport, stderrTail: () => [tail.trim(), exited ?? ""].filter((part) => part !== "").join("; ") }
  })
