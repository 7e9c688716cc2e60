// The contract every RunLog implementation passes. Tests use fresh ids (and runtime ids), so they
// never assume an empty store.
import { randomUUID } from "node:crypto"
import { expect, layer, type Vitest } from "@effect/vitest"
import { Effect, type Layer, Option } from "effect"
import type { ExecutionRun, RunEvent } from "../../src/domain/ExecutionRun.ts"
import { RunLog } from "../../src/services/RunLog.ts"

const at = (second: number) => new Date(Date.UTC(2026, 11, 4, 10, 0, second)).toISOString()

const newRun = (overrides: Partial<ExecutionRun> = {}): ExecutionRun => ({
  runId: randomUUID(),
  agentId: randomUUID(),
  runtimeId: `rt-${randomUUID().slice(0, 8)}`,
  status: "running",
  startedAt: at(0),
  lastSeq: 0,
  ...overrides
})

const eventsOf = (run: ExecutionRun, from: number, count: number): ReadonlyArray<RunEvent> =>
  Array.from({ length: count }, (_, i) => ({
    runId: run.runId,
    seq: from + i,
    at: at(from + i),
    agentState: i % 2 === 0 ? "busy" : "running",
    event: { type: "output", stream: "stdout", line: `line ${from + i} ü ✓`, data: { n: from + i, nested: [null, 1.5, "x"] } }
  }))

/** Registers the RunLog contract tests on `it`, whose layer provides the log under test. */
export const runLogTests = (it: Vitest.MethodsNonLive<RunLog>) => {
  it.effect("records a run, appends its events in batches and reads them back by sequence", () =>
    Effect.gen(function* () {
      const log = yield* RunLog
      const run = newRun()
      yield* log.create(run)
      expect(Option.getOrThrow(yield* log.get(run.runId))).toEqual(run)
      expect(Option.isNone(yield* log.get(randomUUID()))).toBe(true)
      const all = [...eventsOf(run, 1, 3), ...eventsOf(run, 4, 5)]
      yield* log.append(all.slice(0, 3))
      yield* log.append(all.slice(3))
      expect(yield* log.events(run.runId, 0)).toEqual(all)
      expect(yield* log.events(run.runId, 3, 2)).toEqual(all.slice(3, 5))
      expect(yield* log.events(run.runId, 8)).toEqual([])
      expect(Option.getOrThrow(yield* log.get(run.runId)).lastSeq).toBe(8)
    }))

  it.effect("a batch tried again writes nothing twice: an event already stored stays as stored, the rest go in", () =>
    Effect.gen(function* () {
      const log = yield* RunLog
      const run = newRun()
      yield* log.create(run)
      const first = eventsOf(run, 1, 2)
      yield* log.append(first)
      const retried = [{ ...first[1]!, event: { type: "text", text: "changed" } }, ...eventsOf(run, 3, 1)]
      yield* log.append(retried)
      const stored = yield* log.events(run.runId, 0)
      expect(stored.map((e) => e.seq)).toEqual([1, 2, 3])
      expect(stored[1]).toEqual(first[1])
    }))

  it.effect("finish ends a running run once, with its last event; a second finish or an unknown run changes nothing", () =>
    Effect.gen(function* () {
      const log = yield* RunLog
      const run = newRun()
      yield* log.create(run)
      yield* log.append(eventsOf(run, 1, 2))
      const error = { code: "E2036" as const, message: "interrupted", retryable: true }
      const last: RunEvent = { runId: run.runId, seq: 3, at: at(9), agentState: "running", event: { type: "error", error } }
      expect(yield* log.finish(run.runId, { status: "interrupted", endedAt: at(9), error, event: last })).toBe(true)
      expect(Option.getOrThrow(yield* log.get(run.runId))).toEqual({ ...run, status: "interrupted", endedAt: at(9), error, lastSeq: 3 })
      const again: RunEvent = { ...last, seq: 4 }
      expect(yield* log.finish(run.runId, { status: "completed", endedAt: at(10), event: again })).toBe(false)
      expect(Option.getOrThrow(yield* log.get(run.runId))).toMatchObject({ status: "interrupted", lastSeq: 3 })
      expect(yield* log.finish(randomUUID(), { status: "completed", endedAt: at(10) })).toBe(false)
      // Nothing goes after a run's end (a former owner's late writes, say).
      yield* log.append([{ ...last, seq: 4, event: { type: "output", stream: "stdout", line: "late" } }])
      expect((yield* log.events(run.runId, 0)).map((e) => e.seq)).toEqual([1, 2, 3])
    }))

  it.effect("lists runs newest first, by agent, runtime and status, with a limit", () =>
    Effect.gen(function* () {
      const log = yield* RunLog
      const agentId = randomUUID()
      const runtimeId = `rt-${randomUUID().slice(0, 8)}`
      const a = newRun({ agentId, runtimeId, startedAt: at(1) })
      const b = newRun({ agentId, runtimeId, startedAt: at(2) })
      const c = newRun({ agentId, runtimeId, startedAt: at(3) })
      for (const run of [b, a, c]) yield* log.create(run)
      yield* log.finish(b.runId, { status: "completed", endedAt: at(4) })
      expect((yield* log.list({ agentId })).map((r) => r.runId)).toEqual([c.runId, b.runId, a.runId])
      expect((yield* log.list({ agentId, limit: 2 })).map((r) => r.runId)).toEqual([c.runId, b.runId])
      expect((yield* log.list({ runtimeId, status: "running" })).map((r) => r.runId)).toEqual([c.runId, a.runId])
      expect((yield* log.list({ agentId, status: ["completed", "failed"] })).map((r) => r.runId)).toEqual([b.runId])
    }))

  it.effect("prune removes a runtime's ended runs past their retention with their events; running runs and other runtimes' stay", () =>
    Effect.gen(function* () {
      const log = yield* RunLog
      const agentId = randomUUID()
      const runtimeId = `rt-${randomUUID().slice(0, 8)}`
      const runs = [1, 2, 3, 4].map((s) => newRun({ agentId, runtimeId, startedAt: at(s) }))
      const running = newRun({ agentId, runtimeId, startedAt: at(0) })
      const other = newRun({ agentId, startedAt: at(0) })
      for (const run of [...runs, running, other]) {
        yield* log.create(run)
        yield* log.append(eventsOf(run, 1, 2))
      }
      for (const run of [...runs, other]) yield* log.finish(run.runId, { status: "completed", endedAt: run.startedAt })
      // Keep the newest two ended runs of the agent, and nothing that ended before second 2.
      expect(yield* log.prune({ runtimeId, keepPerAgent: 2, endedBefore: at(4) })).toBe(3)
      const left = (yield* log.list({ agentId, limit: 10 })).map((r) => r.runId)
      expect(new Set(left)).toEqual(new Set([runs[3]!.runId, running.runId, other.runId]))
      expect(yield* log.events(runs[0]!.runId, 0)).toEqual([])
      expect((yield* log.events(running.runId, 0)).length).toBe(2)
    }))

  it.effect("hands out copies: changing a read event does not change the stored one", () =>
    Effect.gen(function* () {
      const log = yield* RunLog
      const run = newRun()
      yield* log.create(run)
      yield* log.append(eventsOf(run, 1, 1))
      const read = (yield* log.events(run.runId, 0))[0]!.event as unknown as { line: string }
      read.line = "tampered"
      expect(((yield* log.events(run.runId, 0))[0]!.event as unknown as { line: string }).line).toBe("line 1 ü ✓")
    }))
}

/** The contract on a layer. */
export const runLogContract = (name: string, logLayer: Layer.Layer<RunLog, unknown>) =>
  layer(logLayer, { timeout: "60 seconds", excludeTestServices: true })(`RunLog contract: ${name}`, runLogTests)
