// Warm pools on a real Docker engine: containers made for the agents that will claim them (one thawed, the rest paused),
// claimed under concurrency without double hand-outs, executing as the claimed agent, adopted back after
// a runtime restart, and nothing left behind. Gated by L02_TEST_DOCKER (CI requires the engine).
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { OwnershipLabels } from "../../src/domain/Ids.ts"
import { createRuntime } from "../../src/runtime/createRuntime.ts"
import { WarmLabels } from "../../src/runtime/internal/warmPools.ts"
import { dockerEnabled, dockerRuntimeServices, ensureAgentImage, leftovers, testDocker } from "../backends/docker/dockerTestSupport.ts"
import { eventually } from "./support.ts"

const docker = testDocker()
const runtimeId = `rt-warm-${process.pid}`
const template = { name: "warm", trustLevel: "TRUSTED", command: ["/bin/l02-agent"], labels: { "test.l02/suite": "docker-warm" } }

describe.skipIf(!dockerEnabled)("warm pools on Docker", () => {
  let services: Awaited<ReturnType<typeof dockerRuntimeServices>>
  const start = () =>
    createRuntime({
      layer: services.layer,
      env: {},
      config: {
        runtime: { runtime_id: runtimeId, hibernate_idle_after_seconds: 0 },
        store: { pglite: "memory" },
        lifecycle: { graceful_shutdown_seconds: 1 },
        pools: { warm: [{ name: "dockerwarm", template, size: 3 }] }
      }
    })

  beforeAll(async () => {
    await ensureAgentImage(docker)
    services = await dockerRuntimeServices(docker, runtimeId)
  }, 120_000)

  afterAll(() => services.close(), 60_000)

  it("claims its thawed and paused containers under 8 concurrent spawns, never one twice, runs them as the agent, and adopts the rest after a restart", async () => {
    let runtime = await start()
    await eventually(async () => expect((await runtime.pools())[0]).toMatchObject({ ready: 3, readyRunning: 1, creating: 0 }), 60_000)
    const warm = await docker.listContainers({ all: true, filters: { label: [`${WarmLabels.pool}=dockerwarm`, `${OwnershipLabels.runtimeId}=${runtimeId}`] } })
    // One is kept thawed (running) for the next claim; the others wait paused.
    expect(warm.map((c) => c.State).sort()).toEqual(["paused", "paused", "running"])

    const spawned = await Promise.all(Array.from({ length: 8 }, () => runtime.spawn(template)))
    expect(new Set(spawned.map((s) => s.sandboxId)).size).toBe(8)
    const claimed = spawned.filter((s) => warm.some((c) => c.Id === s.sandboxId))
    expect(claimed.length, "the three ready containers were claimed").toBe(3)
    for (const s of claimed) {
      const inspected = await docker.getContainer(s.sandboxId!).inspect()
      expect(inspected.State.Status).toBe("running")
      expect(inspected.Config.Labels[OwnershipLabels.agentId]).toBe(s.agentId)
      expect(inspected.Config.Env).toContain(`L02_AGENT_ID=${s.agentId}`)
    }
    const answer: Array<{ type: string; data?: unknown }> = []
    for await (const e of runtime.execute(claimed[0]!.agentId, "from the pool")) answer.push(e)
    expect(answer[0]).toMatchObject({ type: "output", data: { text: "echo: from the pool", agentId: claimed[0]!.agentId } })

    await eventually(async () => expect((await runtime.pools())[0]).toMatchObject({ ready: 3, readyRunning: 1, creating: 0 }), 60_000)
    const status = (await runtime.pools())[0]!
    expect(status.claimedTotal + status.missesTotal).toBe(8)
    const refilled = (await runtime.pools())[0]!
    await runtime.shutdown()

    runtime = await start()
    expect((await runtime.pools())[0]).toMatchObject({ ready: refilled.ready, createdTotal: refilled.ready })
    for (const s of spawned) expect((await runtime.getState(s.agentId)).state).toBe("running")
    for (const s of spawned) await runtime.terminate(s.agentId, { force: true })
    await runtime.shutdown()
    expect((await leftovers(docker, { "test.l02/suite": "docker-warm" })).containers).toHaveLength(3)
  }, 240_000)
})
