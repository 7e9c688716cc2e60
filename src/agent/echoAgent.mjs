#!/usr/bin/env node
// The default agent program of the process backend: speaks the JSON-lines stdio protocol
// (docs/protocol.md). For every {"type":"input","id":...,"input":...} line on stdin it answers one
// {"type":"output","id":...,"text":...} line and one {"type":"done","id":...} line on stdout.
// It writes {"type":"heartbeat"} every L02_HEARTBEAT_MS milliseconds when that is set.
import { createInterface } from "node:readline"

const write = (message) => process.stdout.write(`${JSON.stringify(message)}\n`)
const heartbeat = Number(process.env.L02_HEARTBEAT_MS ?? 0)
if (heartbeat > 0) setInterval(() => write({ type: "heartbeat", at: new Date().toISOString() }), heartbeat).unref()

let turns = 0
const lines = createInterface({ input: process.stdin })
lines.on("line", (line) => {
  let message
  try {
    message = JSON.parse(line)
  } catch {
    write({ type: "error", error: "expected one JSON object per line" })
    return
  }
  if (message?.type !== "input") return
  turns += 1
  const text = typeof message.input === "string" ? message.input : JSON.stringify(message.input)
  write({ type: "output", id: message.id, text: `echo: ${text}`, turn: turns, agentId: process.env.L02_AGENT_ID })
  write({ type: "done", id: message.id })
})
lines.on("close", () => process.exit(0))
process.on("SIGTERM", () => process.exit(0))
