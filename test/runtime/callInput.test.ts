// Library input, as a careless or hostile caller gives it: every public method answers an id that is
// not one, or options of the wrong shape, with a coded error (E2001 naming the argument) and changes
// nothing; uppercase ids are the same agent, answered in lowercase; a checkpoint that is not the
// agent's own is E2024 and changes nothing.
import { Layer } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { createRuntime, type L02Runtime } from "../../src/runtime/createRuntime.ts"
import { layerMemory as checkpointMemory } from "../../src/services/CheckpointStore.ts"
import { layerMemory as eventLogMemory } from "../../src/services/EventLog.ts"
import { layerMemory as sandboxMemory } from "../../src/services/SandboxBackend.ts"
import { layerMemory as stateMemory } from "../../src/services/StateStore.ts"

let runtime: L02Runtime
let agentId = ""
beforeAll(async () => {
  runtime = await createRuntime({
    layer: Layer.mergeAll(sandboxMemory(), stateMemory, checkpointMemory, eventLogMemory),
    env: {},
    config: { store: { pglite: "memory" }, runtime: { hibernate_idle_after_seconds: 0 } }
  })
  agentId = (await runtime.spawn({ name: "input", trustLevel: "TRUSTED" })).agentId
})
afterAll(async () => {
  await runtime.shutdown()
})

const drain = async (iterable: AsyncIterable<unknown>) => {
  for await (const _ of iterable) void _
}

/** The coded error a call fails with (or the call's value, which fails the test's expectation). */
const refusal = async (call: () => Promise<unknown>): Promise<{ code?: string; _tag?: string; key?: string; message?: string }> => {
  try {
    return { code: "none", message: JSON.stringify(await call()) }
  } catch (error) {
    return error as { code?: string; _tag?: string; key?: string; message?: string }
  }
}

/** What the runtime holds, to compare before and after a refusal. */
const snapshot = async () => JSON.stringify((await runtime.list()).map((a) => [a.agentId, a.state, a.sandboxId, a.restartCount]))

describe("library input", () => {
  const notIds: ReadonlyArray<unknown> = [null, undefined, 42, {}, [], [agentId], "not-a-uuid", "", `${"0".repeat(8)}-0000-0000-0000-00000000000g`]

  it("an id that is not one is E2001 naming agentId, in every method, and nothing changes", async () => {
    const before = await snapshot()
    for (const bad of notIds) {
      const calls: ReadonlyArray<[string, () => Promise<unknown>]> = [
        ["getState", () => runtime.getState(bad as string)],
        ["suspend", () => runtime.suspend(bad as string)],
        ["resume", () => runtime.resume(bad as string)],
        ["terminate", () => runtime.terminate(bad as string)],
        ["health", () => runtime.health(bad as string)],
        ["checkpoints", () => runtime.checkpoints(bad as string)],
        ["execute", () => drain(runtime.execute(bad as string, "hi"))]
      ]
      for (const [name, call] of calls) {
        expect(await refusal(call), `${name}(${JSON.stringify(bad)})`).toMatchObject({ code: "E2001", _tag: "InputInvalid", key: "agentId" })
      }
    }
    expect(await snapshot()).toBe(before)
  })

  it("options of the wrong shape are E2001 naming the option, and the agent is untouched", async () => {
    const before = await snapshot()
    expect(await refusal(() => runtime.suspend(agentId, { checkpoint: "yes" } as never))).toMatchObject({ code: "E2001", key: "options.checkpoint" })
    expect(await refusal(() => runtime.suspend(agentId, { checkpiont: true } as never))).toMatchObject({ code: "E2001", key: "options.checkpiont" })
    expect(await refusal(() => runtime.suspend(agentId, "checkpoint" as never))).toMatchObject({ code: "E2001", key: "options" })
    expect(await refusal(() => runtime.terminate(agentId, { force: "yes" } as never))).toMatchObject({ code: "E2001", key: "options.force" })
    expect(await refusal(() => runtime.terminate(agentId, { reason: 7 } as never))).toMatchObject({ code: "E2001", key: "options.reason" })
    expect(await refusal(() => drain(runtime.execute(agentId, "hi", { timeoutMs: -5 })))).toMatchObject({ code: "E2001", key: "options.timeoutMs" })
    expect(await snapshot()).toBe(before)
    expect((await runtime.getState(agentId)).state).toBe("running")
  })

  it("an uppercase id is the same agent, answered in lowercase", async () => {
    const upper = agentId.toUpperCase()
    expect((await runtime.getState(upper)).agentId).toBe(agentId)
    expect((await runtime.health(upper)).agentId).toBe(agentId)
    expect(await runtime.checkpoints(upper)).toEqual([])
  })

  it("a checkpoint that is not the agent's own is E2024 and the agent stays suspended; one named for a paused agent is refused too", async () => {
    const other = (await runtime.spawn({ name: "other", trustLevel: "TRUSTED" })).agentId
    const othersCheckpoint = (await runtime.suspend(other, { checkpoint: true }))!
    const checkpointId = (await runtime.suspend(agentId, { checkpoint: true }))!
    const before = await snapshot()
    for (const bad of ["00000000-0000-0000-0000-000000000000", othersCheckpoint]) {
      const refused = await refusal(() => runtime.resume(agentId, bad))
      expect(refused, bad).toMatchObject({ code: "E2024" })
      expect(refused.message).toContain(`has no checkpoint ${bad}`)
    }
    expect(await refusal(() => runtime.resume(agentId, 17 as never))).toMatchObject({ code: "E2001", key: "checkpointId" })
    expect(await snapshot()).toBe(before)
    expect(await runtime.resume(agentId, checkpointId.toUpperCase())).toBe("running")
    await runtime.suspend(agentId)
    const paused = await refusal(() => runtime.resume(agentId, checkpointId))
    expect(paused).toMatchObject({ code: "E2024" })
    expect(paused.message).toContain("paused with its sandbox kept")
    expect(await runtime.resume(agentId)).toBe("running")
    await runtime.terminate(other)
    // Every operation on a terminated agent is E2020, execute included (docs/errors.md).
    expect(await refusal(() => drain(runtime.execute(other, "hi")))).toMatchObject({ code: "E2020" })
    expect(await refusal(() => drain(runtime.execute("00000000-0000-4000-8000-000000000000", "hi")))).toMatchObject({ code: "E2021" })
  })
})
