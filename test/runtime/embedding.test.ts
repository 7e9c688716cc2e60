import { describe, expect, it } from "vitest"
import type { InspectionEvent } from "xstate"
import { createRuntime } from "../../src/runtime/createRuntime.ts"
import { memoryServices } from "./support.ts"

const agent = { name: "embedded", trustLevel: "TRUSTED" }

describe("embedding", () => {
  it("runs two runtimes in one process without interference", async () => {
    const s1 = await memoryServices()
    const s2 = await memoryServices()
    const r1 = await createRuntime({ layer: s1.layer, env: {}, config: { store: { pglite: "memory" } } })
    const r2 = await createRuntime({ layer: s2.layer, env: {}, config: { store: { pglite: "memory" } } })
    expect(r1.runtimeId).not.toBe(r2.runtimeId)
    const a1 = await r1.spawn(agent)
    const a2 = await r2.spawn(agent)
    await expect(r2.getState(a1.agentId)).rejects.toMatchObject({ code: "E2021" })
    await r1.shutdown()
    await expect(r1.spawn(agent)).rejects.toMatchObject({ code: "E2028" })
    expect(await r2.suspend(a2.agentId)).toBeUndefined()
    expect(await r2.resume(a2.agentId)).toBe("running")
    await r2.terminate(a2.agentId)
    await r2.shutdown()
    await s1.close()
    await s2.close()
  })

  it("feeds every agent actor and the fleet to the inspection observer", async () => {
    const services = await memoryServices()
    const seen: Array<InspectionEvent> = []
    const runtime = await createRuntime({ layer: services.layer, env: {}, config: { store: { pglite: "memory" } }, inspect: (e) => seen.push(e) })
    const { agentId } = await runtime.spawn(agent)
    const systemIds = new Set(seen.filter((e) => e.type === "@xstate.actor").map((e) => e.actorRef.getSnapshot() && (e.actorRef as { options?: { systemId?: string } }).options?.systemId))
    expect(systemIds).toContain("fleet")
    expect(systemIds).toContain(`agent:${agentId}`)
    expect(seen.some((e) => e.type === "@xstate.event" && (e.event as { type: string }).type === "agent.spawn")).toBe(true)
    await runtime.shutdown()
    await services.close()
  })

  it("leaves no unhandled rejection when an operation fails", async () => {
    const services = await memoryServices()
    const runtime = await createRuntime({ layer: services.layer, env: {}, config: { store: { pglite: "memory" } } })
    const unhandled: Array<unknown> = []
    const onUnhandled = (reason: unknown) => unhandled.push(reason)
    process.on("unhandledRejection", onUnhandled)
    await expect(runtime.spawn({ name: "x", trustLevel: "UNTRUSTED" })).rejects.toMatchObject({ code: "E2041" })
    await expect(runtime.terminate("nope")).rejects.toMatchObject({ code: "E2001" })
    await expect(runtime.terminate("6c1d1a5e-7d4c-4b5a-9e2f-2a9f1b0c3d4e")).rejects.toMatchObject({ code: "E2021" })
    await new Promise((r) => setTimeout(r, 50))
    process.off("unhandledRejection", onUnhandled)
    expect(unhandled).toEqual([])
    await runtime.shutdown()
    await services.close()
  })
})
