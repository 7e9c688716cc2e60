// Warm pools on the in-memory backend: filled ahead of time, claimed by matching spawns (never twice),
// refilled, resized, adopted back after a restart, replaced when they die, refused when misconfigured.
import { Effect } from "effect"
import { afterEach, describe, expect, it } from "vitest"
import { OwnershipLabels } from "../../src/domain/Ids.ts"
import { createRuntime } from "../../src/runtime/createRuntime.ts"
import { WarmLabels } from "../../src/runtime/internal/warmPools.ts"
import { eventually, memoryServices } from "./support.ts"

const cleanups: Array<() => Promise<void>> = []
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c()
})

const template = { name: "worker", trustLevel: "TRUSTED", labels: { team: "blue" } }
const pool = (overrides: Record<string, unknown> = {}) => ({ name: "workers", template, size: 3, ...overrides })

const setup = async (pools: ReadonlyArray<Record<string, unknown>>, services?: Awaited<ReturnType<typeof memoryServices>>) => {
  const shared = services ?? (await memoryServices())
  const runtime = await createRuntime({
    layer: shared.layer,
    env: {},
    config: { store: { pglite: "memory" }, runtime: { runtime_id: "rt-warm" }, pools: { warm: pools } }
  })
  let down = false
  const shutdown = async () => {
    if (down) return
    down = true
    await runtime.shutdown()
  }
  cleanups.push(async () => {
    await shutdown()
    if (services === undefined) await shared.close()
  })
  const sandboxes = () => shared.run(({ backend }) => backend.list({ [OwnershipLabels.runtimeId]: "rt-warm" }))
  const warmSandboxes = async () => (await sandboxes()).filter((s) => s.labels[WarmLabels.pool] === "workers")
  return { runtime, services: shared, sandboxes, warmSandboxes, shutdown }
}

describe("warm pools", () => {
  it("fills to size with paused sandboxes, hands one to a matching spawn under that sandbox's agent id, and refills", async () => {
    const { runtime, services, warmSandboxes } = await setup([pool({ thawed: 0 })])
    await eventually(async () => expect((await runtime.pools())[0]).toMatchObject({ name: "workers", ready: 3, readyRunning: 0, creating: 0, paused: true, thawed: 0 }))
    const ready = await warmSandboxes()
    expect(ready.map((s) => s.status)).toEqual(["paused", "paused", "paused"])

    const spawned = await runtime.spawn(template)
    const claimed = ready.find((s) => s.sandboxId === spawned.sandboxId)
    expect(claimed, "the spawn got a warm sandbox").toBeDefined()
    expect(spawned.agentId).toBe(claimed!.agentId)
    expect(spawned.state).toBe("running")
    expect((await services.run(({ backend }) => backend.inspect(spawned.sandboxId!))).status).toBe("running")
    expect(await runtime.getState(spawned.agentId)).toMatchObject({ state: "running", sandboxId: spawned.sandboxId, config: { labels: { team: "blue" } } })

    // A spawn of another config is provisioned cold; the pool is back to 3 ready, none of them the claimed one.
    const other = await runtime.spawn({ ...template, name: "other" })
    expect(ready.some((s) => s.sandboxId === other.sandboxId)).toBe(false)
    await eventually(async () => expect((await runtime.pools())[0]).toMatchObject({ ready: 3, claimedTotal: 1, createdTotal: 4, missesTotal: 0 }))
    expect((await warmSandboxes()).filter((s) => s.status === "paused").map((s) => s.sandboxId)).not.toContain(spawned.sandboxId)

    // The claimed agent is an agent like any other.
    await runtime.suspend(spawned.agentId)
    expect(await runtime.resume(spawned.agentId)).toBe("running")
    await runtime.terminate(spawned.agentId)
    await expect(services.run(({ backend }) => backend.inspect(spawned.sandboxId!))).rejects.toMatchObject({ code: "E2045" })
  })

  it("keeps `thawed` of a paused pool's ready sandboxes running: claims take those first, and the pool thaws the next", async () => {
    const { runtime, warmSandboxes } = await setup([pool({ size: 4 })])
    const statuses = async () => (await warmSandboxes()).map((s) => s.status).sort()
    await eventually(async () => expect((await runtime.pools())[0]).toMatchObject({ ready: 4, readyRunning: 1, creating: 0, thawed: 1 }))
    expect(await statuses()).toEqual(["paused", "paused", "paused", "running"])
    const before = new Map((await warmSandboxes()).map((s) => [s.sandboxId, s.status]))

    const spawned = await runtime.spawn(template)
    expect(before.get(spawned.sandboxId!), "the claim took the running sandbox").toBe("running")
    // The pool thaws one of its paused sandboxes and makes a new paused one: one runs, three wait.
    await eventually(async () => expect((await runtime.pools())[0]).toMatchObject({ ready: 4, readyRunning: 1, creating: 0 }))
    const after = (await warmSandboxes()).filter((s) => s.sandboxId !== spawned.sandboxId)
    expect(after.map((s) => s.status).sort()).toEqual(["paused", "paused", "paused", "running"])
    const thawedNow = after.find((s) => s.status === "running")!
    expect(before.get(thawedNow.sandboxId), "a sandbox that waited paused was thawed").toBe("paused")

    // Claims faster than the thaw take paused sandboxes and unpause them: every agent runs.
    const burst = await Promise.all([runtime.spawn(template), runtime.spawn(template), runtime.spawn(template)])
    for (const r of burst) expect((await runtime.getState(r.agentId)).state).toBe("running")
    await eventually(async () => expect((await runtime.pools())[0]).toMatchObject({ ready: 4, readyRunning: 1, creating: 0, claimedTotal: 4 }))
  })

  it("never hands one sandbox to two agents: 20 concurrent spawns against a pool of 5", async () => {
    const { runtime, services } = await setup([pool({ size: 5 })])
    await eventually(async () => expect((await runtime.pools())[0]!.ready).toBe(5))
    const results = await Promise.all(Array.from({ length: 20 }, () => runtime.spawn(template)))
    const sandboxIds = results.map((r) => r.sandboxId)
    expect(new Set(sandboxIds).size).toBe(20)
    expect(new Set(results.map((r) => r.agentId)).size).toBe(20)
    for (const r of results) {
      const owned = await services.run(({ backend }) => backend.list({ [OwnershipLabels.agentId]: r.agentId }))
      expect(owned.map((s) => s.sandboxId)).toEqual([r.sandboxId])
    }
    const status = (await runtime.pools())[0]!
    expect(status.claimedTotal + status.missesTotal).toBe(20)
    expect(status.claimedTotal).toBeGreaterThanOrEqual(5)
  })

  it("resizes within [min, max], trimming at once and filling in the background; refuses sizes outside with E2001", async () => {
    const { runtime, warmSandboxes } = await setup([pool({ size: 2, min: 1, max: 4, paused: false })])
    await eventually(async () => expect((await runtime.pools())[0]!.ready).toBe(2))
    expect((await warmSandboxes()).map((s) => s.status)).toEqual(["running", "running"])
    expect(await runtime.resizePool("workers", 4)).toMatchObject({ size: 4 })
    await eventually(async () => expect((await runtime.pools())[0]!.ready).toBe(4))
    expect(await runtime.resizePool("workers", 1)).toMatchObject({ size: 1, ready: 1 })
    await eventually(async () => expect(await warmSandboxes()).toHaveLength(1))
    await expect(runtime.resizePool("workers", 5)).rejects.toMatchObject({ code: "E2001", key: "size" })
    await expect(runtime.resizePool("workers", 0)).rejects.toMatchObject({ code: "E2001", key: "size" })
    await expect(runtime.resizePool("nobody", 1)).rejects.toMatchObject({ code: "E2001", key: "name" })
    expect((await runtime.pools())[0]!.size).toBe(1)
  })

  it("adopts its ready sandboxes after a restart, and reaps them when the pool's template changed", async () => {
    const services = await memoryServices()
    cleanups.push(() => services.close())
    const first = await setup([pool()], services)
    await eventually(async () => expect((await first.runtime.pools())[0]!.ready).toBe(3))
    const before = (await first.warmSandboxes()).map((s) => s.sandboxId).sort()
    await first.shutdown()

    const second = await setup([pool()], services)
    expect((await second.runtime.pools())[0]).toMatchObject({ ready: 3, createdTotal: 3 })
    expect((await second.warmSandboxes()).map((s) => s.sandboxId).sort()).toEqual(before)
    const claimed = await second.runtime.spawn(template)
    expect(before).toContain(claimed.sandboxId)
    await second.shutdown()

    const third = await setup([pool({ template: { ...template, labels: { team: "red" } } })], services)
    await eventually(async () => expect((await third.runtime.pools())[0]!.ready).toBe(3))
    const after = (await third.warmSandboxes()).map((s) => s.sandboxId).filter((id) => id !== claimed.sandboxId)
    expect(after.filter((id) => before.includes(id)), "sandboxes of the old template were reaped").toEqual([])
    expect((await third.runtime.getState(claimed.agentId)).state).toBe("running")
  })

  it("replaces a ready sandbox that dies", async () => {
    const { runtime, services, warmSandboxes } = await setup([pool({ size: 2, paused: false })])
    await eventually(async () => expect((await runtime.pools())[0]!.ready).toBe(2))
    const [victim] = await warmSandboxes()
    await services.run(({ backend }) => Effect.scoped(Effect.flatMap(backend.attach(victim!.sandboxId), (a) => a.write("exit 1"))))
    await eventually(async () => {
      const ids = (await warmSandboxes()).map((s) => s.sandboxId)
      expect(ids).not.toContain(victim!.sandboxId)
      expect(ids).toHaveLength(2)
    })
    expect((await runtime.pools())[0]).toMatchObject({ ready: 2, createdTotal: 3 })
  })

  it("refuses at start a pool whose template the backend cannot host, or whose bounds are wrong (E2000)", async () => {
    const services = await memoryServices()
    cleanups.push(() => services.close())
    const start = (warm: ReadonlyArray<Record<string, unknown>>) =>
      createRuntime({ layer: services.layer, env: {}, config: { store: { pglite: "memory" }, pools: { warm } } })
    await expect(start([pool({ template: { name: "w", trustLevel: "STANDARD" } })])).rejects.toMatchObject({ code: "E2000", key: "pools.warm[0].template" })
    await expect(start([pool({ min: 4 })])).rejects.toMatchObject({ code: "E2000", message: expect.stringContaining("min <= size <= max") })
    await expect(start([pool({ template: { name: "w", trustLevel: "TRUSTED", resources: { memory: "lots" } } })])).rejects.toMatchObject({ code: "E2000" })
    await expect(start([pool({ template: { name: "w", trustLevel: "TRUSTED", model: { endpoint: "nowhere", model: "m" } } })])).rejects.toMatchObject({ code: "E2000", key: "pools.warm[0].template.model.endpoint" })
    expect(await services.run(({ backend }) => backend.list({}))).toEqual([])
  })
})
