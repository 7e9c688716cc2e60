// Durable execute runs on the in-memory services: sequence numbers, detach and reattach, cancel,
// interruption at shutdown and after a crash, and random disconnects (fast-check).
import { randomUUID } from "node:crypto"
import { Effect } from "effect"
import fc from "fast-check"
import { afterEach, describe, expect, it } from "vitest"
import type { RunEvent } from "../../src/domain/ExecutionRun.ts"
import { createRuntime, type L02Runtime } from "../../src/runtime/createRuntime.ts"
import { eventually, memoryServices, ticker } from "./support.ts"

const cleanups: Array<() => Promise<void>> = []
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c()
})

const setup = async (options: { readonly config?: Record<string, Record<string, unknown>>; readonly now?: () => number } = {}) => {
  const services = await memoryServices({ programs: { "l02-ticker": ticker } })
  const start = () =>
    createRuntime({ layer: services.layer, env: {}, config: { runtime: { runtime_id: "rt-runs" }, ...options.config }, ...(options.now === undefined ? {} : { now: options.now }) })
  let current: L02Runtime | undefined = await start()
  cleanups.push(async () => {
    await current?.shutdown()
    await services.close()
  })
  return {
    runtime: () => current!,
    services,
    restart: async () => {
      await current?.shutdown()
      current = await start()
      return current
    }
  }
}

const collect = async <A>(iterable: AsyncIterable<A>): Promise<Array<A>> => {
  const out: Array<A> = []
  for await (const item of iterable) out.push(item)
  return out
}

const tickerAgent = { name: "ticker", trustLevel: "TRUSTED", command: ["l02-ticker"] }

describe("execute runs", () => {
  it("every step is a run: events numbered 1, 2, 3... in the store, done.executionId is the run's id, and the run ends with end", async () => {
    const t = await setup()
    const runtime = t.runtime()
    const { agentId } = await runtime.spawn(tickerAgent)
    const streamed = await collect(runtime.execute(agentId, { count: 3, everyMs: 0 }))
    expect(streamed.map((e) => e.type)).toEqual(["output", "output", "output", "done"])
    const runId = (streamed[3] as { executionId: string }).executionId
    const run = await runtime.runs.get(runId)
    expect(run).toMatchObject({ runId, agentId, runtimeId: "rt-runs", status: "completed", lastSeq: 5 })
    const replayed = await collect(runtime.runs.attach(runId))
    expect(replayed.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5])
    expect(replayed.map((e) => e.event)).toEqual([...streamed, { type: "end", status: "completed" }])
    expect(replayed.every((e) => e.runId === runId && e.agentState === "running")).toBe(true)
    // From a sequence number: only what came after it.
    expect((await collect(runtime.runs.attach(runId, { from: 3 }))).map((e) => e.seq)).toEqual([4, 5])
    expect(await collect(runtime.runs.attach(runId, { from: 5 }))).toEqual([])
    // What the store holds is what was streamed.
    await eventually(async () => expect(await t.services.run(({ runLog }) => runLog.events(runId, 0))).toEqual(replayed))
    expect((await runtime.runs.list({ agentId })).map((r) => r.runId)).toEqual([runId])
  })

  it("a detached step goes on without a reader; a caller that stops reading leaves it running, and attaching again delivers the rest", async () => {
    const t = await setup()
    const runtime = t.runtime()
    const { agentId } = await runtime.spawn(tickerAgent)
    const run = await runtime.runs.start(agentId, { count: 20, everyMs: 5 })
    expect(run).toMatchObject({ status: "running", agentId, lastSeq: 0 })
    expect((await runtime.getState(agentId)).activity).toBe("busy")
    const seen: Array<RunEvent> = []
    for await (const e of runtime.runs.attach(run.runId)) {
      seen.push(e)
      if (seen.length === 4) break
    }
    expect((await runtime.runs.get(run.runId)).status).toBe("running")
    for await (const e of runtime.runs.attach(run.runId, { from: seen.at(-1)!.seq })) seen.push(e)
    expect(seen.map((e) => e.seq)).toEqual(Array.from({ length: 22 }, (_, i) => i + 1))
    expect(seen.at(-1)!.event).toEqual({ type: "end", status: "completed" })
    expect((await runtime.getState(agentId)).activity).toBe("idle")
  })

  it("execute's caller that stops reading leaves the run going; with cancelOnDisconnect it is cancelled", async () => {
    const t = await setup()
    const runtime = t.runtime()
    const { agentId } = await runtime.spawn(tickerAgent)
    for await (const _ of runtime.execute(agentId, { count: 10, everyMs: 10 })) break
    const runId = (await runtime.runs.list({ agentId }))[0]!.runId
    expect((await runtime.runs.get(runId)).status).toBe("running")
    await eventually(async () => expect((await runtime.runs.get(runId)).status).toBe("completed"))

    for await (const _ of runtime.execute(agentId, { count: 100, everyMs: 10 }, { cancelOnDisconnect: true })) break
    const [latest] = await runtime.runs.list({ agentId, limit: 1 })
    await eventually(async () => expect(await runtime.runs.get(latest!.runId)).toMatchObject({ status: "cancelled", error: { code: "E2037" } }))
    expect((await runtime.getState(agentId)).activity).toBe("idle")
  })

  it("cancel stops the step: the run ends cancelled (E2037) for every reader, the agent is idle, and a second cancel answers the ended run", async () => {
    const t = await setup()
    const runtime = t.runtime()
    const { agentId } = await runtime.spawn(tickerAgent)
    const streaming = collect(runtime.execute(agentId, { count: 1000, everyMs: 5 })).catch((error: unknown) => error)
    await eventually(async () => expect((await runtime.runs.list({ agentId }))[0]?.lastSeq).toBeGreaterThan(2))
    const [run] = await runtime.runs.list({ agentId })
    const cancelled = await runtime.runs.cancel(run!.runId)
    expect(cancelled).toMatchObject({ status: "cancelled", error: { code: "E2037" } })
    expect(await streaming).toMatchObject({ code: "E2037", _tag: "RunCancelled" })
    expect((await runtime.getState(agentId)).activity).toBe("idle")
    const events = await collect(runtime.runs.attach(run!.runId))
    expect(events.at(-1)!.event).toMatchObject({ type: "end", status: "cancelled", error: { code: "E2037" } })
    expect(events.at(-1)!.seq).toBe(cancelled.lastSeq)
    expect(await runtime.runs.cancel(run!.runId)).toEqual(cancelled)
    // The agent takes the next step.
    const next = await runtime.runs.start(agentId, { count: 1, everyMs: 0 })
    expect(next.status).toBe("running")
    await runtime.runs.cancel(next.runId)
  })

  it("a step refused before it is under way records no run: E2020 while busy, E2021 unknown agent, E2001 bad ids and options; E2035 an unknown run", async () => {
    const t = await setup()
    const runtime = t.runtime()
    const { agentId } = await runtime.spawn(tickerAgent)
    const run = await runtime.runs.start(agentId, { count: 50, everyMs: 5 })
    await expect(runtime.runs.start(agentId, { count: 1, everyMs: 0 })).rejects.toMatchObject({ code: "E2020" })
    await expect(runtime.runs.start(randomUUID(), {})).rejects.toMatchObject({ code: "E2021" })
    await expect(runtime.runs.start("nope", {})).rejects.toMatchObject({ code: "E2001", key: "agentId" })
    await expect(runtime.runs.get("nope")).rejects.toMatchObject({ code: "E2001", key: "runId" })
    await expect(runtime.runs.get(randomUUID())).rejects.toMatchObject({ code: "E2035", _tag: "RunNotFound" })
    await expect(collect(runtime.runs.attach(randomUUID()))).rejects.toMatchObject({ code: "E2035" })
    await expect(collect(runtime.runs.attach(run.runId, { from: -1 }))).rejects.toMatchObject({ code: "E2001", key: "options.from" })
    await expect(collect(runtime.runs.attach(run.runId, { from: 1, extra: 1 } as never))).rejects.toMatchObject({ code: "E2001", key: "options.extra" })
    await expect(runtime.runs.list({ status: "sleeping" } as never)).rejects.toMatchObject({ code: "E2001", key: "query.status" })
    expect((await runtime.runs.list({ agentId })).map((r) => r.runId)).toEqual([run.runId])
    await runtime.runs.cancel(run.runId)
  })

  it("a supervisor shut down during a step ends its run interrupted (E2036) with the events before it; the next runtime reads them", async () => {
    const t = await setup()
    const { agentId } = await t.runtime().spawn(tickerAgent)
    const run = await t.runtime().runs.start(agentId, { count: 1000, everyMs: 5 })
    await eventually(async () => expect((await t.runtime().runs.get(run.runId)).lastSeq).toBeGreaterThan(3))
    const next = await t.restart()
    const ended = await next.runs.get(run.runId)
    expect(ended).toMatchObject({ status: "interrupted", error: { code: "E2036" } })
    const events = await collect(next.runs.attach(run.runId))
    expect(events.map((e) => e.seq)).toEqual(Array.from({ length: ended.lastSeq }, (_, i) => i + 1))
    expect(events.at(-1)!.event).toMatchObject({ type: "end", status: "interrupted", error: { code: "E2036" } })
    expect(events.slice(0, -1).every((e) => e.event.type === "output")).toBe(true)
  })

  it("after a crash (a run the store still calls running), the next runtime ends it interrupted after its last stored event", async () => {
    const t = await setup()
    const { agentId } = await t.runtime().spawn(tickerAgent)
    const runId = randomUUID()
    // What a supervisor killed with SIGKILL leaves: a running run and the events it had written.
    await t.services.run(({ runLog }) =>
      Effect.andThen(
        runLog.create({ runId, agentId, runtimeId: "rt-runs", status: "running", startedAt: new Date().toISOString(), lastSeq: 0 }),
        runLog.append([1, 2].map((seq) => ({ runId, seq, at: new Date().toISOString(), agentState: "running", event: { type: "output", stream: "stdout", line: `l${seq}` } })))
      )
    )
    // Another runtime's running run is not its to end.
    const foreign = randomUUID()
    await t.services.run(({ runLog }) => runLog.create({ runId: foreign, agentId, runtimeId: "rt-other", status: "running", startedAt: new Date().toISOString(), lastSeq: 0 }))
    const next = await t.restart()
    expect(await next.runs.get(runId)).toMatchObject({ status: "interrupted", lastSeq: 3, error: { code: "E2036", message: expect.stringContaining("after event 2") } })
    const events = await collect(next.runs.attach(runId, { from: 1 }))
    expect(events.map((e) => [e.seq, e.event.type])).toEqual([[2, "output"], [3, "end"]])
    expect((await next.runs.get(foreign)).status).toBe("running")
  })

  it("retention removes ended runs beyond the newest stream_retention_runs of an agent, and those older than stream_retention_seconds", async () => {
    let clock = Date.parse("2026-12-04T10:00:00.000Z")
    const t = await setup({ config: { execution: { stream_retention_runs: 2, stream_retention_seconds: 3600 } }, now: () => clock })
    const { agentId } = await t.runtime().spawn(tickerAgent)
    const ids: Array<string> = []
    for (let i = 0; i < 4; i++) {
      clock += 1000
      const events = await collect(t.runtime().execute(agentId, { count: 1, everyMs: 0 }))
      ids.push((events.at(-1) as { executionId: string }).executionId)
    }
    // Retention runs at start (and every ten minutes).
    await eventually(async () => expect((await t.runtime().runs.get(ids[3]!)).status).toBe("completed"))
    await new Promise((resolve) => setTimeout(resolve, 100))
    let next = await t.restart()
    expect((await next.runs.list({ agentId })).map((r) => r.runId)).toEqual([ids[3], ids[2]])
    await expect(next.runs.get(ids[0]!)).rejects.toMatchObject({ code: "E2035" })
    // Two hours later, the rest have aged out.
    clock += 2 * 3600 * 1000
    next = await t.restart()
    expect(await next.runs.list({ agentId })).toEqual([])
  })

  it("a reader far behind a long run reads what left memory from the store, then memory: every event once, in order", async () => {
    const t = await setup()
    const runtime = t.runtime()
    const { agentId } = await runtime.spawn(tickerAgent)
    const run = await runtime.runs.start(agentId, { count: 5000, everyMs: 0 })
    const seen: Array<number> = []
    for await (const e of runtime.runs.attach(run.runId)) {
      seen.push(e.seq)
      // Slow at first, so the run's written events leave the memory window ahead of this reader.
      if (seen.length < 5) await new Promise((resolve) => setTimeout(resolve, 40))
    }
    expect(seen).toEqual(Array.from({ length: 5002 }, (_, i) => i + 1))
    const stored = await t.services.run(({ runLog }) => runLog.events(run.runId, 0))
    expect(stored.map((e) => e.seq)).toEqual(seen)
  })

  it("an agent that writes more than execution.stream_max_bytes fails its step (E2029 naming the key); what fit is recorded and the agent takes the next step", async () => {
    const t = await setup({ config: { execution: { stream_max_bytes: 2000 } } })
    const runtime = t.runtime()
    const { agentId } = await runtime.spawn(tickerAgent)
    const run = await runtime.runs.start(agentId, { count: 100_000, everyMs: 0 })
    const events: Array<RunEvent> = []
    for await (const e of runtime.runs.attach(run.runId)) events.push(e)
    const end = events.at(-1)!
    expect(end.event).toMatchObject({ type: "end", status: "failed", error: { code: "E2029", message: expect.stringContaining("execution.stream_max_bytes") } })
    // Each line of the ticker counts about 100 characters: some fit, nowhere near all.
    expect(events.length - 1).toBeGreaterThan(5)
    expect(events.length - 1).toBeLessThan(30)
    expect(events.slice(0, -1).every((e) => e.event.type === "output")).toBe(true)
    await eventually(async () => expect((await runtime.getState(agentId)).activity).toBe("idle"))
    // The agent accepts the next step (its program may still be writing the flood: no cancel line in the protocol).
    const next = await runtime.runs.start(agentId, { count: 1, everyMs: 0 })
    expect(next.status).toBe("running")
    await runtime.runs.cancel(next.runId)
  })

  it("a run id in any case names the same run (answered in lowercase)", async () => {
    const t = await setup()
    const runtime = t.runtime()
    const { agentId } = await runtime.spawn(tickerAgent)
    const events = await collect(runtime.execute(agentId, { count: 1, everyMs: 0 }))
    const runId = (events.at(-1) as { executionId: string }).executionId
    expect((await runtime.runs.get(runId.toUpperCase())).runId).toBe(runId)
    expect((await collect(runtime.runs.attach(runId.toUpperCase()))).map((e) => e.seq)).toEqual([1, 2, 3])
  })

  it("random disconnects and reattaches from the last sequence seen deliver each event exactly once, in order (fast-check)", async () => {
    const t = await setup()
    const runtime = t.runtime()
    const { agentId } = await runtime.spawn(tickerAgent)
    const seed = Number(process.env.L02_RUNS_SEED ?? Math.floor(Math.random() * 2 ** 31))
    console.log(`runs property seed ${seed} (L02_RUNS_SEED)`)
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 40 }),
        fc.array(fc.integer({ min: 0, max: 8 }), { minLength: 1, maxLength: 12 }),
        fc.integer({ min: 0, max: 3 }),
        async (count, cuts, everyMs) => {
          const run = await runtime.runs.start(agentId, { count, everyMs })
          const seen: Array<RunEvent> = []
          let last = 0
          for (const cut of [...cuts, Number.POSITIVE_INFINITY]) {
            let taken = 0
            // A reader that leaves after `cut` events (0: it leaves as soon as it attached).
            for await (const e of runtime.runs.attach(run.runId, { from: last })) {
              if (taken >= cut) break
              seen.push(e)
              last = e.seq
              taken += 1
            }
            if (seen.at(-1)?.event.type === "end") break
          }
          // Whatever was left is read to its end.
          for await (const e of runtime.runs.attach(run.runId, { from: last })) seen.push(e)
          expect(seen.map((e) => e.seq)).toEqual(Array.from({ length: count + 2 }, (_, i) => i + 1))
          expect(seen.map((e) => e.event.type)).toEqual([...Array.from({ length: count }, () => "output"), "done", "end"])
          expect(await collect(runtime.runs.attach(run.runId))).toEqual(seen)
        }
      ),
      { numRuns: 40, seed }
    )
  }, 60_000)
})
