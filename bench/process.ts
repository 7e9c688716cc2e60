// The process backend against a bare child_process.spawn of the same program (the default agent,
// the JSON-lines echo agent on this Node), measured alternately in one run: spawn + first exchange
// and terminate, for the backend alone and for the whole runtime (state persisted in the embedded
// store). `node bench/process.ts` runs it alone; `npm run bench` calls benchProcess.
import { spawn } from "node:child_process"
import { randomUUID } from "node:crypto"
import { chmodSync, mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { createInterface } from "node:readline"
import { Effect, Stream } from "effect"
import * as ProcessBackend from "../src/backends/process/ProcessBackend.ts"
import { parseUidRange } from "../src/domain/UidRange.ts"
import { createRuntime } from "../src/runtime/createRuntime.ts"
import { echoAgentPath } from "../src/runtime/liveLayer.ts"
import { SandboxBackend, type SandboxSpec } from "../src/services/SandboxBackend.ts"
import { trustedSpec } from "../test/backends/process/support.ts"
import { percentile, round } from "./docker.ts"

const program = [process.execPath, echoAgentPath]
const inputLine = (id: string) => `${JSON.stringify({ type: "input", id, input: "hi" })}\n`

/** Bare: spawn the program, send one input, wait for its done line. Returns the child (still running). */
const bareExchange = async () => {
  const child = spawn(program[0]!, program.slice(1), { stdio: ["pipe", "pipe", "ignore"] })
  const lines = createInterface({ input: child.stdout! })
  const done = new Promise<void>((resolve) => lines.on("line", (line) => line.includes('"done"') && resolve()))
  child.stdin!.write(inputLine("1"))
  await done
  return child
}

/** Bare: SIGTERM and wait for the exit. */
const bareTerminate = (child: ReturnType<typeof spawn>) =>
  new Promise<void>((resolve) => {
    child.once("exit", () => resolve())
    child.kill("SIGTERM")
  })

// The spec the tests use for a TRUSTED sandbox, with the default process limit.
const specFor = (): SandboxSpec => {
  const spec = trustedSpec({ agentId: randomUUID(), runtimeId: "bench-process", name: "bench", command: program })
  return { ...spec, sandbox: { ...spec.sandbox, resources: { ...spec.sandbox.resources, pids: 256 } } }
}

const time = async <A>(f: () => Promise<A>): Promise<[number, A]> => {
  const t0 = performance.now()
  const a = await f()
  return [performance.now() - t0, a]
}

/** Runs the comparison `runs` times each, alternating; p50s in ms and their ratios. */
export const benchProcess = async (options: { readonly runs?: number; readonly log?: (line: string) => void } = {}) => {
  const runs = options.runs ?? 15
  const log = options.log ?? ((line: string) => console.error(line))
  const root = mkdtempSync(join(tmpdir(), "l02-bench-process-"))
  chmodSync(root, 0o711)
  const layer = ProcessBackend.layer({ dataDir: join(root, "backend"), pollIntervalMs: 250, uidRange: parseUidRange("800000-899999") })
  const runtime = await createRuntime({ backend: "process", dataDir: join(root, "runtime"), env: {}, config: { store: { pglite: "memory" } } })
  const samples = { bareSpawn: [] as Array<number>, bareTerminate: [] as Array<number>, backendSpawn: [] as Array<number>, backendTerminate: [] as Array<number>, runtimeSpawn: [] as Array<number>, runtimeTerminate: [] as Array<number> }
  try {
    await Effect.runPromise(
      Effect.gen(function* () {
        const sandbox = yield* SandboxBackend
        const backendExchange = Effect.gen(function* () {
          const created = yield* sandbox.provision(specFor())
          yield* sandbox.start(created.sandboxId)
          const attachment = yield* sandbox.attach(created.sandboxId)
          yield* attachment.write(inputLine("1").trimEnd())
          yield* attachment.output.pipe(Stream.takeUntil((l) => l.line.includes('"done"')), Stream.runDrain)
          return created.sandboxId
        })
        for (let i = 0; i < runs + 2; i++) {
          const warm = i < 2
          const [spawnMs, child] = yield* Effect.promise(() => time(bareExchange))
          const [killMs] = yield* Effect.promise(() => time(() => bareTerminate(child)))
          const t0 = performance.now()
          const sandboxId = yield* backendExchange
          const backendSpawnMs = performance.now() - t0
          const t1 = performance.now()
          yield* sandbox.stop(sandboxId, { graceMs: 10_000 })
          yield* sandbox.remove(sandboxId)
          const backendTerminateMs = performance.now() - t1
          const [runtimeSpawnMs, agentId] = yield* Effect.promise(() =>
            time(async () => {
              const { agentId } = await runtime.spawn({ name: `bench-${i}`, trustLevel: "TRUSTED" })
              for await (const e of runtime.execute(agentId, "hi")) if (e.type === "done") break
              return agentId
            })
          )
          const [runtimeTerminateMs] = yield* Effect.promise(() => time(() => runtime.terminate(agentId)))
          if (warm) continue
          samples.bareSpawn.push(spawnMs)
          samples.bareTerminate.push(killMs)
          samples.backendSpawn.push(backendSpawnMs)
          samples.backendTerminate.push(backendTerminateMs)
          samples.runtimeSpawn.push(runtimeSpawnMs)
          samples.runtimeTerminate.push(runtimeTerminateMs)
        }
      }).pipe(Effect.scoped, Effect.provide(layer))
    )
  } finally {
    await runtime.shutdown()
    rmSync(root, { recursive: true, force: true })
  }
  const p50 = (xs: Array<number>) => round(percentile(xs, 50))
  const result = {
    runs,
    program: "the default agent (JSON-lines echo agent on this Node)",
    p50Ms: Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, p50(v)])),
    ratios: {
      backendSpawnExchange: round(p50(samples.backendSpawn) / p50(samples.bareSpawn)),
      backendTerminate: round(p50(samples.backendTerminate) / p50(samples.bareTerminate)),
      runtimeSpawnExchange: round(p50(samples.runtimeSpawn) / p50(samples.bareSpawn)),
      runtimeTerminate: round(p50(samples.runtimeTerminate) / p50(samples.bareTerminate))
    }
  }
  log(`process: ${JSON.stringify(result)}`)
  return result
}

if (import.meta.main) console.log(JSON.stringify(await benchProcess(), null, 2))
