/**
 * How `l02 exec` shows a step to a person: the agent's words, its tool calls and their results, and
 * errors in CLI words; `--json` prints the events themselves instead.
 */
import type { ExecuteEvent } from "../runtime/AgentRuntimeApi.ts"

/** Where rendered text goes: the answer to stdout, notes and errors to stderr. */
export interface RenderSink {
  readonly out: (text: string) => void
  readonly err: (text: string) => void
}

const firstLines = (text: string, lines = 6): string => {
  const all = text.replace(/\s+$/, "").split("\n")
  return all.length <= lines ? all.join("\n") : `${all.slice(0, lines).join("\n")}\n... (${all.length - lines} more lines)`
}

const indent = (text: string) => text.split("\n").map((l) => `    ${l}`).join("\n")

/** A line of a program's JSON-lines answer as a person reads it; undefined for protocol chatter. */
const programLine = (line: string, data: unknown): { readonly text: string; readonly toErr: boolean } | undefined => {
  const message = data as { type?: unknown; text?: unknown; error?: unknown } | undefined
  if (message === undefined || typeof message !== "object" || message === null) return { text: line, toErr: false }
  if (message.type === "output" && typeof message.text === "string") return { text: message.text, toErr: false }
  if (message.type === "error") return { text: `error: ${typeof message.error === "string" ? message.error : JSON.stringify(message.error)}`, toErr: true }
  // heartbeats and other protocol lines are for the runtime, not the reader
  if (typeof message.type === "string") return undefined
  return { text: line, toErr: false }
}

/** Makes a renderer that keeps the state a stream of model text needs (whether a line is open). */
export const makeRenderer = (sink: RenderSink) => {
  let open = false
  const close = () => {
    if (open) sink.out("\n")
    open = false
  }
  return (event: ExecuteEvent): void => {
    switch (event.type) {
      case "output": {
        const shown = programLine(event.line, event.data)
        if (shown === undefined) return
        close()
        if (event.stream === "stderr" || shown.toErr) sink.err(`${shown.text}\n`)
        else sink.out(`${shown.text}\n`)
        return
      }
      case "text":
        sink.out(event.text)
        open = !event.text.endsWith("\n")
        return
      case "tool.call":
        close()
        sink.err(`-> ${event.name}(${event.arguments.length > 200 ? `${event.arguments.slice(0, 200)}...` : event.arguments})\n`)
        return
      case "tool.result":
        close()
        sink.err(`<- ${event.name}${event.isError ? " failed" : ""}:\n${indent(firstLines(event.content))}\n`)
        return
      case "usage":
        return
      case "error":
        close()
        sink.err(`${event.error.code}: ${event.error.message}\n`)
        return
      case "done":
        close()
        return
    }
  }
}
