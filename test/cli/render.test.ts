// What a person sees of an exec: the agent's words on stdout, tool calls, results and errors on
// stderr, and nothing of the protocol's own lines.
import { describe, expect, it } from "vitest"
import { makeRenderer } from "../../src/cli/render.ts"

const render = (events: Array<Parameters<ReturnType<typeof makeRenderer>>[0]>) => {
  let out = ""
  let err = ""
  const show = makeRenderer({ out: (t) => (out += t), err: (t) => (err += t) })
  for (const e of events) show(e)
  return { out, err }
}

describe("exec rendering", () => {
  it("shows a program's answer text, not its JSON lines, and hides heartbeats", () => {
    const output = (line: string, stream: "stdout" | "stderr" = "stdout") => {
      let data: unknown
      try {
        data = JSON.parse(line)
      } catch {
        data = undefined
      }
      return { type: "output" as const, stream, line, data }
    }
    const { out, err } = render([
      output('{"type":"heartbeat","at":"2026-12-03T00:00:00Z"}'),
      output('{"type":"output","id":"1","text":"echo: hi"}'),
      output("plain words"),
      output("warning: low disk", "stderr"),
      output('{"type":"error","error":"expected one JSON object per line"}'),
      { type: "done", executionId: "1" }
    ])
    expect(out).toBe("echo: hi\nplain words\n")
    expect(err).toBe("warning: low disk\nerror: expected one JSON object per line\n")
  })

  it("streams a model's text, shows tool calls and results, and errors as CODE: message", () => {
    const { out, err } = render([
      { type: "text", text: "Let me " },
      { type: "text", text: "look." },
      { type: "tool.call", id: "c1", name: "read_file", arguments: '{"path":"a.txt"}' },
      { type: "tool.result", toolCallId: "c1", name: "read_file", content: Array.from({ length: 9 }, (_, i) => `line ${i}`).join("\n"), isError: false },
      { type: "usage", inputTokens: 10, outputTokens: 5 },
      { type: "text", text: "Done." },
      { type: "error", error: { code: "E2084", message: "budget", retryable: false } }
    ])
    expect(out).toBe("Let me look.\nDone.\n")
    expect(err).toBe('-> read_file({"path":"a.txt"})\n<- read_file:\n    line 0\n    line 1\n    line 2\n    line 3\n    line 4\n    line 5\n    ... (3 more lines)\nE2084: budget\n')
  })
})
