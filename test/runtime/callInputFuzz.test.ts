// Library calls with generated bad arguments: at least 10,000 per run (L02_FUZZ_RUNS), from a seed
// that is printed (L02_FUZZ_SEED replays one). Every one fails with a coded error (E2001 naming the
// argument; a bad agent config E2001, E2040 or E2042 naming its key), and the agents, the store and
// the sandboxes are the same after each as before.
import fc from "fast-check"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { createRuntime, type L02Runtime } from "../../src/runtime/createRuntime.ts"
import { memoryServices } from "./support.ts"

const runs = Number(process.env.L02_FUZZ_RUNS ?? 10_000)
const seed = Number(process.env.L02_FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31))
const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

let services: Awaited<ReturnType<typeof memoryServices>>
let runtime: L02Runtime
let agentId = ""
beforeAll(async () => {
  services = await memoryServices()
  runtime = await createRuntime({ layer: services.layer, env: {}, config: { store: { pglite: "memory" }, runtime: { hibernate_idle_after_seconds: 0 } } })
  agentId = (await runtime.spawn({ name: "fuzzed", trustLevel: "TRUSTED" })).agentId
})
afterAll(async () => {
  await runtime.shutdown()
  await services.close()
})

const drain = async (iterable: AsyncIterable<unknown>) => {
  for await (const _ of iterable) void _
}

/** A short label of any value, also one that cannot be converted to a string (no prototype, a throwing toString). */
const labelOf = (value: unknown): string => {
  try {
    return String(value).slice(0, 40)
  } catch {
    return Object.prototype.toString.call(value)
  }
}

/** Anything that is not an agent id: any value, strings near a UUID included. */
const notAnId = fc.oneof(
  fc.anything(),
  fc.string({ maxLength: 80 }),
  fc.uuid().map((u) => `${u} `),
  fc.uuid().map((u) => u.replaceAll("-", "")),
  fc.uuid().map((u) => `${u.slice(0, -1)}z`)
).filter((v) => !(typeof v === "string" && uuid.test(v)))

/** Options that are not options: non-objects, unknown fields, declared fields of other types. */
const notOptions = (fields: ReadonlyArray<string>) =>
  fc.oneof(
    fc.anything().filter((v) => v !== undefined && (typeof v !== "object" || v === null || Array.isArray(v))),
    fc.dictionary(fc.string({ minLength: 1, maxLength: 12 }).filter((k) => !fields.includes(k) && k !== "__proto__"), fc.anything(), { minKeys: 1, maxKeys: 3 }),
    fc.record({ [fields[0]!]: fc.anything().filter((v) => v !== undefined && typeof v !== "boolean" && typeof v !== "string" && typeof v !== "number") })
  )

/** A call, the argument its refusal must name, and the codes it may answer (E2001 unless said). */
type Call = { readonly name: string; readonly run: () => Promise<unknown>; readonly key: RegExp; readonly codes?: ReadonlyArray<string> }

const calls: fc.Arbitrary<Call> = fc.oneof(
  notAnId.map((id): Call => ({ name: `getState(${labelOf(id)})`, run: () => runtime.getState(id as string), key: /^agentId$/ })),
  notAnId.map((id): Call => ({ name: "suspend(bad id)", run: () => runtime.suspend(id as string), key: /^agentId$/ })),
  notAnId.map((id): Call => ({ name: "resume(bad id)", run: () => runtime.resume(id as string), key: /^agentId$/ })),
  notAnId.map((id): Call => ({ name: "terminate(bad id)", run: () => runtime.terminate(id as string), key: /^agentId$/ })),
  notAnId.map((id): Call => ({ name: "health(bad id)", run: () => runtime.health(id as string), key: /^agentId$/ })),
  notAnId.map((id): Call => ({ name: "checkpoints(bad id)", run: () => runtime.checkpoints(id as string), key: /^agentId$/ })),
  notAnId.map((id): Call => ({ name: "execute(bad id)", run: () => drain(runtime.execute(id as string, "hi")), key: /^agentId$/ })),
  // undefined is no checkpoint at all: a resume without one, which a running agent refuses with E2020.
  notAnId.filter((v) => v !== undefined).map((id): Call => ({ name: "resume(id, bad checkpoint)", run: () => runtime.resume(agentId, id as string), key: /^checkpointId$/ })),
  // A config without a string name is never an agent config.
  fc.anything().filter((v) => typeof (v as { name?: unknown } | null)?.name !== "string").map((config): Call => ({ name: `spawn(${JSON.stringify(config)?.slice(0, 60)})`, run: () => runtime.spawn(config), key: /^/, codes: ["E2001", "E2040", "E2042"] })),
  notOptions(["checkpoint"]).map((o): Call => ({ name: `suspend(id, ${JSON.stringify(o)?.slice(0, 60)})`, run: () => runtime.suspend(agentId, o as never), key: /^options/ })),
  notOptions(["force", "reason"]).map((o): Call => ({ name: `terminate(id, ${JSON.stringify(o)?.slice(0, 60)})`, run: () => runtime.terminate(agentId, o as never), key: /^options/ })),
  notOptions(["timeoutMs", "signal", "cancelOnDisconnect"]).map((o): Call => ({ name: `execute(id, _, ${JSON.stringify(o)?.slice(0, 60)})`, run: () => drain(runtime.execute(agentId, "hi", o as never)), key: /^options/ })),
  // Execute runs: bad run ids, bad agent ids, bad options and queries.
  notAnId.map((id): Call => ({ name: `runs.get(${labelOf(id)})`, run: () => runtime.runs.get(id as string), key: /^runId$/ })),
  notAnId.map((id): Call => ({ name: "runs.cancel(bad id)", run: () => runtime.runs.cancel(id as string), key: /^runId$/ })),
  notAnId.map((id): Call => ({ name: "runs.attach(bad id)", run: () => drain(runtime.runs.attach(id as string)), key: /^runId$/ })),
  notAnId.map((id): Call => ({ name: "runs.start(bad id)", run: () => runtime.runs.start(id as string, "hi"), key: /^agentId$/ })),
  notOptions(["from"]).map((o): Call => ({ name: `runs.attach(id, ${JSON.stringify(o)?.slice(0, 60)})`, run: () => drain(runtime.runs.attach(unknownRun, o as never)), key: /^options/ })),
  notOptions(["agentId", "status", "limit"]).map((q): Call => ({ name: `runs.list(${JSON.stringify(q)?.slice(0, 60)})`, run: () => runtime.runs.list(q as never), key: /^query/ }))
)

/** A run id no run has. */
const unknownRun = "00000000-0000-4000-8000-000000000001"

const snapshot = async () =>
  JSON.stringify({
    agents: (await runtime.list()).map((a) => [a.agentId, a.state, a.activity, a.sandboxId, a.restartCount]),
    stored: (await services.run(({ store }) => store.listAgents({}))).map((a) => [a.agentId, a.state]),
    sandboxes: (await services.run(({ backend }) => backend.list({}))).map((s) => `${s.sandboxId}:${s.status}`),
    runs: (await services.run(({ runLog }) => runLog.list({ limit: 1000 }))).map((r) => `${r.runId}:${r.status}:${r.lastSeq}`)
  })

describe("library calls with generated bad arguments", () => {
  it("every one is a coded E2001 naming the argument, and nothing changes", { timeout: 600_000 }, async () => {
    console.log(`library fuzz: ${runs} calls, seed ${seed} (replay with L02_FUZZ_SEED=${seed})`)
    const before = await snapshot()
    await fc.assert(
      fc.asyncProperty(calls, async (call) => {
        let error: { code?: unknown; _tag?: unknown; key?: unknown } | undefined
        try {
          await call.run()
        } catch (e) {
          error = e as typeof error
        }
        expect(error, `${call.name} did not fail`).toBeDefined()
        expect(call.codes ?? ["E2001"], `${call.name}: ${String(error?.code)}`).toContain(error?.code)
        expect(typeof error?._tag, call.name).toBe("string")
        expect(typeof error?.key, call.name).toBe("string")
        expect(error!.key as string, call.name).toMatch(call.key)
        expect(await snapshot(), `${call.name} changed something`).toBe(before)
      }),
      { numRuns: runs, seed }
    )
  })
})
