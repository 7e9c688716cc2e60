// Shared by the run crash tests (process backend, Docker): a host killed with SIGKILL during a long
// step, and what the next runtime must answer of its run.
import { type ChildProcess, spawn } from "node:child_process"
import { createInterface } from "node:readline"
import { expect } from "vitest"
import type { RunEvent } from "../../src/domain/ExecutionRun.ts"
import type { createRuntime } from "../../src/runtime/createRuntime.ts"

const fixture = new URL("./fixtures/runHost.ts", import.meta.url).pathname

let host: ChildProcess | undefined
/** Kills the host if it still runs (for afterEach). */
export const stopHost = () => host?.kill("SIGKILL")

/** Runs the host until it has printed `events` events, then kills it with SIGKILL; answers what it saw. */
export const killDuringRun = async (dataDir: string, backend: "process" | "docker", events: number) => {
  host = spawn(process.execPath, [fixture, dataDir, backend], { stdio: ["ignore", "pipe", "inherit"] })
  const seen: Array<{ seq: number; type: string; line: string }> = []
  let runId: string | undefined
  let agentId: string | undefined
  await new Promise<void>((resolve, reject) => {
    const lines = createInterface({ input: host!.stdout! })
    lines.on("line", (line) => {
      const [kind, a, b, ...rest] = line.split(" ")
      if (kind === "run") [runId, agentId] = [a, b]
      if (kind === "event") seen.push({ seq: Number(a), type: b!, line: rest.join(" ") })
      if (seen.length >= events) {
        host!.kill("SIGKILL")
        resolve()
      }
    })
    host!.on("exit", () => resolve())
    setTimeout(() => reject(new Error(`the host printed ${seen.length} events, not ${events}`)), 90_000)
  })
  await new Promise((r) => host!.once("exit", r).once("close", r))
  return { seen, runId: runId!, agentId: agentId! }
}

/** What the next runtime answers of the killed host's run. */
export const checkInterrupted = async (runtime: Awaited<ReturnType<typeof createRuntime>>, killed: Awaited<ReturnType<typeof killDuringRun>>) => {
  const run = await runtime.runs.get(killed.runId)
  expect(run).toMatchObject({ runId: killed.runId, agentId: killed.agentId, status: "interrupted", error: { code: "E2036" } })
  const replayed: Array<RunEvent> = []
  for await (const e of runtime.runs.attach(killed.runId)) replayed.push(e)
  const stored = replayed.slice(0, -1)
  // What was written before the kill: a gapless prefix of what the host saw (at most its last write window behind).
  expect(stored.length).toBeGreaterThanOrEqual(3)
  expect(stored.map((e) => e.seq)).toEqual(Array.from({ length: stored.length }, (_, i) => i + 1))
  expect(stored.map((e) => [e.seq, e.event.type, (e.event as { line?: string }).line])).toEqual(
    killed.seen.slice(0, stored.length).map((e) => [e.seq, e.type, e.line])
  )
  expect(stored.every((e) => e.event.type === "output" && /tick \d+/.test(String((e.event as { line?: string }).line)))).toBe(true)
  expect(replayed.at(-1)).toMatchObject({ seq: stored.length + 1, event: { type: "end", status: "interrupted", error: { code: "E2036" } } })
  expect(run.lastSeq).toBe(stored.length + 1)
  expect(run.error!.message).toContain(`after event ${stored.length}`)
}

