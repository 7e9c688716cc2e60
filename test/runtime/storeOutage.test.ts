// A store outage around each operation, on the memory backend: a store that refuses an operation's
// intent refuses the operation (E2060) with nothing changed; one that fails while the operation's
// side effect is under way gets the operation's end once it answers; a supervisor that stops before
// then leaves a record recovery completes or rolls back, saying so. Memory, sandbox and store agree.
import { Effect, Option } from "effect"
import { afterEach, describe, expect, it } from "vitest"
import { OwnershipLabels } from "../../src/domain/Ids.ts"
import { createRuntime, type L02Runtime } from "../../src/runtime/createRuntime.ts"
import { eventually, failureOf, outageServices } from "./support.ts"

const cleanups: Array<() => Promise<void>> = []
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c()
})

const agent = { name: "worker", trustLevel: "TRUSTED" }

const setup = async () => {
  const out = await outageServices()
  const start = () => createRuntime({ layer: out.layer, env: {}, config: { store: { pglite: "memory" }, runtime: { runtime_id: "rt-outage" } }, random: () => 0 })
  let current: L02Runtime | undefined = await start()
  cleanups.push(async () => {
    out.restore()
    await current?.shutdown()
    await out.close()
  })
  /** What the store holds of an agent: its state and whether an intent is pending. */
  const stored = async (agentId: string) => {
    const record = await Effect.runPromise(out.real.store.getAgent(agentId))
    if (Option.isNone(record)) return undefined
    const intent = (record.value.snapshot as { intent?: { operation: string } } | null)?.intent
    return { state: record.value.state, sandboxId: record.value.sandboxId, intent: intent?.operation }
  }
  /** The agent's sandboxes on the backend, as status words. */
  const sandboxes = async (agentId: string) =>
    (await Effect.runPromise(out.real.backend.list({ [OwnershipLabels.agentId]: agentId }))).map((s) => `${s.sandboxId}:${s.status}`).sort()
  /** Memory, store and sandboxes of an agent at once. */
  const view = async (agentId: string) => {
    const memory = await current!.getState(agentId)
    return { memory: { state: memory.state, sandboxId: memory.sandboxId }, store: await stored(agentId), sandboxes: await sandboxes(agentId) }
  }
  const restart = async () => {
    await current?.shutdown()
    current = undefined
    current = await start()
    return current
  }
  return { out, runtime: () => current!, stored, sandboxes, view, restart }
}

const failure = failureOf

describe("store outage around an operation", () => {
  it("cut before: E2060 saying nothing changed, and nothing changed in memory, sandbox or store, also once the store answers and after a restart", async () => {
    const t = await setup()
    const rt = t.runtime()
    t.out.cut()
    const refusedSpawn = await failure(rt.spawn(agent))
    expect(refusedSpawn).toMatchObject({ code: "E2060", message: expect.stringContaining("spawn refused, nothing changed") })
    expect(await Effect.runPromise(t.out.real.backend.list({}))).toEqual([])
    t.out.restore()

    const paused = await rt.spawn(agent)
    const checkpointed = await rt.spawn(agent)
    const suspendedPaused = await rt.spawn(agent)
    await rt.suspend(suspendedPaused.agentId)
    const suspendedCheckpoint = await rt.spawn(agent)
    await rt.suspend(suspendedCheckpoint.agentId, { checkpoint: true })
    const ended = await rt.spawn(agent)
    const ids = [paused, checkpointed, suspendedPaused, suspendedCheckpoint, ended].map((a) => a.agentId)
    const before = await Promise.all(ids.map(t.view))
    expect(before.map((v) => v.store?.intent)).toEqual([undefined, undefined, undefined, undefined, undefined])

    t.out.cut()
    const refusals = [
      await failure(rt.suspend(paused.agentId)),
      await failure(rt.suspend(checkpointed.agentId, { checkpoint: true })),
      await failure(rt.resume(suspendedPaused.agentId)),
      await failure(rt.resume(suspendedCheckpoint.agentId)),
      await failure(rt.terminate(ended.agentId)),
      await failure(rt.terminate(ended.agentId, { force: true }))
    ]
    for (const refusal of refusals) expect(refusal).toMatchObject({ code: "E2060", message: expect.stringContaining("refused, nothing changed") })
    expect(await Promise.all(ids.map(t.view))).toEqual(before)
    // No record (nor event) of the refused spawn ever reaches the store once it answers.
    t.out.restore()
    await eventually(async () => expect(await Promise.all(ids.map(t.view))).toEqual(before))
    expect((await rt.list()).map((a) => a.agentId).sort()).toEqual([...ids].sort())
    // Restarted before the refused intents' records were tried again: what it restores still acts.
    t.out.cut()
    await failure(rt.suspend(paused.agentId))
    t.out.restore()
    const rt2 = await t.restart()
    expect(await Promise.all(ids.map(t.view))).toEqual(before)
    expect((await rt2.list()).length).toBe(ids.length)
    await rt2.suspend(paused.agentId)
    await rt2.terminate(ended.agentId)
  })

  it("cut during: E2060 saying what took effect; memory and sandbox agree at once, the store once it answers, and a restart keeps it", async () => {
    const t = await setup()
    const rt = t.runtime()
    const a = await rt.spawn(agent)
    const b = await rt.spawn(agent)
    const c = await rt.spawn(agent)

    t.out.cutAfter("pause")
    expect(await failure(rt.suspend(a.agentId))).toMatchObject({ code: "E2060", message: expect.stringContaining(`agent ${a.agentId} is now suspended`) })
    expect((await t.view(a.agentId)).memory.state).toBe("suspended")
    expect(await t.sandboxes(a.agentId)).toEqual([`${a.sandboxId}:paused`])
    expect((await t.stored(a.agentId))?.state).toBe("running")
    t.out.restore()
    await eventually(async () => expect(await t.stored(a.agentId)).toEqual({ state: "suspended", sandboxId: a.sandboxId, intent: undefined }))

    t.out.cutAfter("unpause")
    expect(await failure(rt.resume(a.agentId))).toMatchObject({ code: "E2060", message: expect.stringContaining("is now running") })
    expect(await t.sandboxes(a.agentId)).toEqual([`${a.sandboxId}:running`])
    t.out.restore()
    await eventually(async () => expect((await t.stored(a.agentId))?.state).toBe("running"))

    t.out.cutAfter("remove")
    expect(await failure(rt.suspend(b.agentId, { checkpoint: true }))).toMatchObject({ code: "E2060", message: expect.stringContaining("is now suspended") })
    expect(await t.sandboxes(b.agentId)).toEqual([])
    t.out.restore()
    await eventually(async () => expect(await t.stored(b.agentId)).toEqual({ state: "suspended", sandboxId: undefined, intent: undefined }))

    t.out.cutAfter("start")
    expect(await failure(rt.resume(b.agentId))).toMatchObject({ code: "E2060", message: expect.stringContaining("is now running") })
    const restored = (await t.view(b.agentId)).memory.sandboxId!
    expect(await t.sandboxes(b.agentId)).toEqual([`${restored}:running`])
    t.out.restore()
    await eventually(async () => expect(await t.stored(b.agentId)).toEqual({ state: "running", sandboxId: restored, intent: undefined }))

    t.out.cutAfter("remove")
    expect(await failure(rt.terminate(c.agentId))).toMatchObject({ code: "E2060", message: expect.stringContaining("is now terminated") })
    expect(await t.sandboxes(c.agentId)).toEqual([])
    t.out.restore()
    await eventually(async () => expect((await t.stored(c.agentId))?.state).toBe("terminated"))

    t.out.cutAfter("start")
    expect(await failure(rt.spawn(agent))).toMatchObject({ code: "E2060", message: expect.stringContaining("is now running") })
    t.out.restore()
    const spawned = (await rt.list()).find((x) => ![a.agentId, b.agentId, c.agentId].includes(x.agentId))!
    await eventually(async () => expect((await t.stored(spawned.agentId))?.state).toBe("running"))

    const views = await Promise.all([a.agentId, b.agentId, spawned.agentId].map(t.view))
    for (const v of views) expect(v.store).toEqual({ state: v.memory.state, sandboxId: v.memory.sandboxId, intent: undefined })
    await t.restart()
    expect(await Promise.all([a.agentId, b.agentId, spawned.agentId].map(t.view))).toEqual(views)
    expect((await t.runtime().getState(c.agentId)).state).toBe("terminated")
  })

  it("a supervisor stopped before the store answers: recovery completes what finished, rolls back what did not, and says which", async () => {
    const t = await setup()
    const rt = t.runtime()
    const paused = await rt.spawn(agent)
    const checkpointed = await rt.spawn(agent)
    const ended = await rt.spawn(agent)
    const resumed = await rt.spawn(agent)
    await rt.suspend(resumed.agentId)
    const unfinished = await rt.spawn(agent)

    // Four operations at once: their intents go in, then the store is cut once every side effect ran.
    t.out.cutAfter("pause", "remove", "remove", "unpause")
    const errors = await Promise.all([
      failure(rt.suspend(paused.agentId)),
      failure(rt.suspend(checkpointed.agentId, { checkpoint: true })),
      failure(rt.terminate(ended.agentId)),
      failure(rt.resume(resumed.agentId))
    ])
    for (const error of errors) expect(error).toMatchObject({ code: "E2060", message: expect.stringContaining("is now") })
    // The supervisor stops while the store is still down: its last try fails too.
    await t.runtime().shutdown()
    for (const id of [paused, checkpointed, ended, resumed].map((a) => a.agentId)) expect((await t.stored(id))?.intent).toBeDefined()
    // A suspend whose host died before its pause: the record holds the intent, the sandbox still runs.
    const record = Option.getOrThrow(await Effect.runPromise(t.out.real.store.getAgent(unfinished.agentId)))
    await Effect.runPromise(
      t.out.real.store.saveAgent({ ...record, snapshot: { ...(record.snapshot as object), intent: { operation: "suspend", at: new Date().toISOString(), checkpoint: false } } })
    )
    t.out.restore()

    const rt2 = await t.restart()
    const state = async (id: string) => (await rt2.getState(id)).state
    expect(await state(paused.agentId)).toBe("suspended")
    expect(await t.sandboxes(paused.agentId)).toEqual([`${paused.sandboxId}:paused`])
    expect(await state(checkpointed.agentId)).toBe("suspended")
    expect((await rt2.getState(checkpointed.agentId)).checkpointId).toBeDefined()
    expect(await t.sandboxes(checkpointed.agentId)).toEqual([])
    await eventually(async () => expect(await state(ended.agentId)).toBe("terminated"))
    expect(await t.sandboxes(ended.agentId)).toEqual([])
    expect(await state(resumed.agentId)).toBe("running")
    expect(await state(unfinished.agentId)).toBe("running")
    expect((await rt2.getState(unfinished.agentId)).lastError).toMatchObject({ code: "E2060", message: expect.stringContaining("rolled it back") })
    expect(await t.sandboxes(unfinished.agentId)).toEqual([`${unfinished.sandboxId}:running`])

    const reconciled = (await Effect.runPromise(t.out.real.log.query({}))).filter((e) => e.type === "agent.reconciled")
    const outcomes = Object.fromEntries(reconciled.map((e) => [e.agentId, (e.data as { operation: string; outcome: string })]))
    expect(outcomes[paused.agentId]).toMatchObject({ operation: "suspend", outcome: "completed" })
    expect(outcomes[checkpointed.agentId]).toMatchObject({ operation: "suspend", outcome: "completed" })
    expect(outcomes[ended.agentId]).toMatchObject({ operation: "terminate", outcome: "completed" })
    expect(outcomes[resumed.agentId]).toMatchObject({ operation: "resume", outcome: "completed" })
    expect(outcomes[unfinished.agentId]).toMatchObject({ operation: "suspend", outcome: "rolled back" })
    // The store agrees with memory, with no intent left.
    for (const id of [paused, checkpointed, resumed, unfinished].map((a) => a.agentId)) {
      await eventually(async () => expect(await t.stored(id)).toEqual({ state: await state(id), sandboxId: (await rt2.getState(id)).sandboxId, intent: undefined }))
    }
  })
})
