// Durable execute runs on the embedded default (process backend, SQLite file store): a step emitting
// many small events, with its events written to the store, against the same step on the same backend
// with the run's events kept in memory only (the in-memory run log and stores), alternating in one
// run; and the replay of a finished run's events from the store (attach from 0).
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Layer } from "effect"
import { createRuntime, type L02Runtime } from "../src/runtime/createRuntime.ts"
import { backendLayer } from "../src/runtime/liveLayer.ts"
import { loadConfigSync } from "../src/runtime/loadConfig.ts"
import { layerMemory as checkpointMemory } from "../src/services/CheckpointStore.ts"
import { layerMemory as eventLogMemory } from "../src/services/EventLog.ts"
import { layerMemory as runLogMemory } from "../src/services/RunLog.ts"
import { layerMemory as stateMemory } from "../src/services/StateStore.ts"

const median = (xs: ReadonlyArray<number>) => {
  const sorted = [...xs].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)]!
}
const round = (x: number) => Math.round(x * 100) / 100

/** A program that answers each input line with `events` small output lines, then its done line. */
const emitter = (events: number) => [
  process.execPath,
  "-e",
  `require("node:readline").createInterface({ input: process.stdin }).on("line", (line) => { const id = JSON.parse(line).id; let out = ""; for (let i = 1; i <= ${events}; i++) out += '{"type":"output","text":"event ' + i + '"}\\n'; out += JSON.stringify({ type: "done", id }) + "\\n"; process.stdout.write(out) })`
]

const drain = async (runtime: L02Runtime, agentId: string) => {
  let count = 0
  let runId = ""
  for await (const event of runtime.execute(agentId, "go")) {
    count += 1
    if (event.type === "done") runId = event.executionId
  }
  return { count, runId }
}

/**
 * `rounds` steps of `events` events each on two runtimes over the same process backend: one on the
 * embedded SQLite file store (events durable), one on in-memory stores; then `rounds` replays of a
 * finished run from the store.
 */
export const benchRunStreaming = async (events = 10_000, rounds = 7) => {
  const durableDir = await mkdtemp(join(tmpdir(), "l02-bench-runs-"))
  const memoryDir = await mkdtemp(join(tmpdir(), "l02-bench-runs-mem-"))
  const common = { fillWarmPools: false, env: {}, config: { lifecycle: { health_check_interval_seconds: 0 }, runtime: { hibernate_idle_after_seconds: 0 } } } as const
  const durable = await createRuntime({ ...common, dataDir: durableDir, backend: "process" })
  const memoryConfig = loadConfigSync({ env: {}, overrides: { runtime: { backend: "process", data_dir: memoryDir, runtime_id: "rt-bench-runs-memory" } } })
  const inMemory = await createRuntime({
    ...common,
    dataDir: memoryDir,
    layer: Layer.mergeAll(backendLayer(memoryConfig, "rt-bench-runs-memory"), stateMemory, checkpointMemory, eventLogMemory, runLogMemory) as never,
    config: { ...common.config, runtime: { ...common.config.runtime, runtime_id: "rt-bench-runs-memory" } }
  })
  try {
    const agent = { name: "bench-emitter", trustLevel: "TRUSTED", command: emitter(events) }
    const onDisk = (await durable.spawn(agent)).agentId
    const inMem = (await inMemory.spawn(agent)).agentId
    const durableMs: Array<number> = []
    const memoryMs: Array<number> = []
    let lastRun = ""
    // The first round of each warms up (program start, code loading); it is not counted.
    await drain(durable, onDisk)
    await drain(inMemory, inMem)
    for (let r = 0; r < rounds; r++) {
      const t0 = performance.now()
      const a = await drain(durable, onDisk)
      durableMs.push(performance.now() - t0)
      const t1 = performance.now()
      const b = await drain(inMemory, inMem)
      memoryMs.push(performance.now() - t1)
      if (a.count !== events + 1 || b.count !== events + 1) throw new Error(`a step streamed ${a.count} and ${b.count} events, not ${events + 1}`)
      lastRun = a.runId
    }
    // Replay from the store: the run has ended and left memory once its end is written.
    for (let i = 0; i < 100 && (await durable.runs.get(lastRun)).status === "running"; i++) await new Promise((r) => setTimeout(r, 20))
    await new Promise((r) => setTimeout(r, 100))
    const replayMs: Array<number> = []
    for (let r = 0; r < rounds; r++) {
      const t0 = performance.now()
      let n = 0
      for await (const _ of durable.runs.attach(lastRun)) n += 1
      replayMs.push(performance.now() - t0)
      if (n !== events + 2) throw new Error(`a replay gave ${n} events, not ${events + 2}`)
    }
    const d = median(durableMs)
    const m = median(memoryMs)
    return { events, rounds, durableP50Ms: round(d), inMemoryP50Ms: round(m), ratio: round(d / m), replayP50Ms: round(median(replayMs)) }
  } finally {
    for (const runtime of [durable, inMemory]) {
      for (const a of await runtime.list()) if (a.state !== "terminated") await runtime.terminate(a.agentId, { force: true }).catch(() => undefined)
      await runtime.shutdown()
    }
    await rm(durableDir, { recursive: true, force: true })
    await rm(memoryDir, { recursive: true, force: true })
  }
}

if (import.meta.main) console.log(JSON.stringify(await benchRunStreaming(), null, 2))
