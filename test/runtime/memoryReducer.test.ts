// Memory goes back after a busy period: one memory-reducing collection per quiet period, never while
// operations go on; and the collection itself shrinks V8's young generation in a process started
// without --expose-gc.
import { execFile } from "node:child_process"
import { promisify } from "node:util"
import { afterEach, describe, expect, it } from "vitest"
import { createRuntime } from "../../src/runtime/createRuntime.ts"
import { memoryServices } from "./support.ts"

const run = promisify(execFile)
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const until = async (check: () => boolean) => {
  for (let i = 0; i < 100 && !check(); i++) await sleep(100)
  expect(check()).toBe(true)
}
const cleanups: Array<() => Promise<void>> = []
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c()
})

const setup = async (idleSeconds: number) => {
  const services = await memoryServices()
  let reductions = 0
  const runtime = await createRuntime({
    layer: services.layer,
    env: {},
    config: { store: { pglite: "memory" }, runtime: { reduce_memory_after_idle_seconds: idleSeconds, hibernate_idle_after_seconds: 0 } },
    reduceMemory: () => (reductions += 1)
  })
  cleanups.push(async () => {
    await runtime.shutdown()
    await services.close()
  })
  return { runtime, reductions: () => reductions }
}

describe("memory after a busy period", () => {
  it("reduces once per quiet period, only after activity, and never while operations go on", async () => {
    const { runtime, reductions } = await setup(2)
    await sleep(2500)
    expect(reductions(), "no activity yet: nothing to give back").toBe(0)
    const { agentId } = await runtime.spawn({ name: "busy", trustLevel: "TRUSTED" })
    // Activity every 300 ms for 2 s: never quiet for 2 s.
    for (let i = 0; i < 7; i++) {
      await runtime.suspend(agentId)
      await runtime.resume(agentId)
      await sleep(300)
    }
    expect(reductions()).toBe(0)
    await until(() => reductions() === 1)
    await sleep(3000)
    expect(reductions(), "still quiet: once per quiet period").toBe(1)
    await runtime.terminate(agentId)
    await until(() => reductions() === 2)
  })

  it("is off with reduce_memory_after_idle_seconds: 0", async () => {
    const { runtime, reductions } = await setup(0)
    await runtime.spawn({ name: "busy", trustLevel: "TRUSTED" })
    await sleep(1500)
    expect(reductions()).toBe(0)
  })

  it("shrinks the young generation a burst grew, in a process without --expose-gc, and only when it has grown", async () => {
    const reducer = new URL("../../src/runtime/internal/memoryReducer.ts", import.meta.url).href
    const probe = `
import { getHeapSpaceStatistics } from "node:v8"
import { memoryReducingGc } from ${JSON.stringify(reducer)}
const young = () => getHeapSpaceStatistics().find((s) => s.space_name === "new_space").physical_space_size
const keep = []
for (let i = 0; i < 4e6; i++) { const o = { i, s: "x" + i }; if (i % 2000 === 0) keep.push(o) }
const before = young()
const ran = memoryReducingGc()()
const after = young()
// Below the threshold it leaves the heap alone (a full collection would hold the event loop for nothing).
const again = memoryReducingGc()()
console.log(JSON.stringify({ before, after, ran, again, gcGlobal: typeof globalThis.gc, kept: keep.length }))
`
    const { stdout } = await run(process.execPath, ["--input-type=module", "-e", probe], { timeout: 30_000 })
    const r = JSON.parse(stdout) as { before: number; after: number; ran: boolean; again: boolean; gcGlobal: string; kept: number }
    expect(r.before).toBeGreaterThanOrEqual(16 * 2 ** 20)
    expect(r.ran).toBe(true)
    expect(r.after).toBeLessThan(r.before / 4)
    expect(r.again).toBe(false)
    expect(r.gcGlobal, "the process's global object gets no gc").toBe("undefined")
    expect(r.kept).toBe(2000)
  })
})
