// The standard input of an exec, as the wrapper of execScripts.ts reads it: bounded, so the client
// never has to end the WebSocket's stdin (on v4.channel.k8s.io that closes the connection, and the
// exit status with it). A known input goes as its bytes with their count; a stream as base64 lines
// ended by a line ".". The Readable handed to the client never ends; `close` frees it after the exec.
import { Readable } from "node:stream"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type * as Stream from "effect/Stream"
import { pipeStdin } from "../../../services/ExecStdin.ts"
import type { ExecInputMode } from "./execScripts.ts"

/** An exec's input: how the wrapper reads it, what the client sends, and how it is fed and freed. */
export interface ExecInput {
  readonly mode: ExecInputMode
  /** What the exec client reads from; undefined: the exec has no stdin. */
  readonly readable: Readable | undefined
  /** Pumps a streamed input in the current scope (nothing for a known one). */
  readonly feed: Effect.Effect<void, never, Scope.Scope>
  /** Frees the input once the exec has ended. */
  readonly close: () => void
}

const noInput: ExecInput = { mode: { _tag: "none" }, readable: undefined, feed: Effect.void, close: () => undefined }

/** One line of the streamed framing: a chunk as base64 (whose alphabet never spells "."). */
export const framedLine = (chunk: string): string => `${Buffer.from(chunk, "utf8").toString("base64")}\n`

/** The line that ends a streamed input. */
export const endLine = ".\n"

/** The input of an exec from a request's stdin (a string or bytes: known; a stream: framed). */
export const execInputOf = (stdin: string | Uint8Array | Stream.Stream<string> | undefined): ExecInput => {
  if (stdin === undefined) return noInput
  const readable = new Readable({ read: () => undefined })
  const close = () => readable.destroy()
  if (typeof stdin === "string" || stdin instanceof Uint8Array) {
    const bytes = typeof stdin === "string" ? Buffer.from(stdin, "utf8") : Buffer.from(stdin)
    if (bytes.length > 0) readable.push(bytes)
    return { mode: { _tag: "bytes", length: bytes.length }, readable, feed: Effect.void, close }
  }
  const push = (line: string) => void (readable.destroyed ? undefined : readable.push(line))
  return {
    mode: { _tag: "lines" },
    readable,
    feed: pipeStdin(stdin, {
      write: (data) => push(framedLine(data)),
      end: (data) => {
        if (data !== undefined && data !== "") push(framedLine(data))
        push(endLine)
      }
    }),
    close
  }
}
