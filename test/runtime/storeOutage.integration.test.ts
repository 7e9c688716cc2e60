// A real store outage: PostgreSQL behind a TCP proxy the test cuts, before each operation and right
// after each operation's sandbox side effect, on the memory backend and on Docker; then a supervisor
// stopped while the store is down. After every step memory, sandbox and store agree (the store once
// it answers), and again after a restart. Gated by L02_TEST_POSTGRES_URL (and L02_TEST_DOCKER for Docker).
import { execFileSync } from "node:child_process"
import { randomUUID } from "node:crypto"
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Context, Effect, Exit, Layer, Scope } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { buildAgentImage } from "../../src/backends/docker/AgentImage.ts"
import * as DockerBackend from "../../src/backends/docker/DockerBackend.ts"
import { OwnershipLabels } from "../../src/domain/Ids.ts"
import { createRuntime, type L02Runtime } from "../../src/runtime/createRuntime.ts"
import { layerMemory as sandboxMemory, SandboxBackend } from "../../src/services/SandboxBackend.ts"
import * as Store from "../../src/store/Store.ts"
import { dockerEnabled, testDocker } from "../backends/docker/dockerTestSupport.ts"
import { startTcpProxy } from "../support/tcpProxy.ts"
import { eventually, failureOf } from "./support.ts"

const baseUrl = process.env.L02_TEST_POSTGRES_URL ?? ""
const psql = (sql: string) => execFileSync("psql", [baseUrl, "-v", "ON_ERROR_STOP=1", "-At", "-c", sql], { stdio: "pipe" }).toString().trim()

type Method = "start" | "pause" | "unpause" | "stop" | "remove"

const backends = [
  { name: "memory", enabled: baseUrl !== "", agent: { name: "outage", trustLevel: "TRUSTED" }, make: () => sandboxMemory() },
  {
    name: "docker",
    enabled: baseUrl !== "" && dockerEnabled,
    agent: { name: "outage", trustLevel: "TRUSTED", command: ["/bin/l02-agent"] },
    make: () => DockerBackend.layer({ docker: testDocker() })
  }
] as const

for (const b of backends) {
  describe.skipIf(!b.enabled)(`store outage on PostgreSQL through a cut proxy, ${b.name} backend`, () => {
    const schema = `l02_outage_${b.name}_${randomUUID().replaceAll("-", "").slice(0, 10)}`
    const runtimeId = schema
    let proxy: Awaited<ReturnType<typeof startTcpProxy>>
    let dataDir: string
    const scope = Effect.runSync(Scope.make())
    let backend: SandboxBackend["Service"]
    const cutAfter: Array<Method> = []
    let runtime: L02Runtime | undefined

    beforeAll(async () => {
      if (b.name === "docker") await Effect.runPromise(buildAgentImage({ docker: testDocker(), busyboxPath: process.env.L02_BUSYBOX ?? "/bin/busybox" }))
      psql(`CREATE SCHEMA ${schema}`)
      const target = new URL(baseUrl)
      proxy = await startTcpProxy({ host: target.hostname, port: Number(target.port || 5432) })
      dataDir = await mkdtemp(join(tmpdir(), "l02-outage-"))
      backend = Context.get(await Effect.runPromise(Layer.buildWithScope(b.make(), scope)), SandboxBackend)
    }, 120_000)
    afterAll(async () => {
      proxy.restore()
      await runtime?.shutdown()
      for (const info of await Effect.runPromise(backend.list({ [OwnershipLabels.runtimeId]: runtimeId }))) {
        await Effect.runPromise(Effect.ignore(backend.remove(info.sandboxId)))
      }
      await Effect.runPromise(Scope.close(scope, Exit.void))
      await proxy.close()
      psql(`DROP SCHEMA ${schema} CASCADE`)
      await rm(dataDir, { recursive: true, force: true })
    }, 120_000)

    /** The backend, its side effects cutting the store once the listed calls have returned. */
    const cutting = (): SandboxBackend["Service"] => {
      const wrap = (method: Method) => (...args: Array<never>) =>
        Effect.tap((backend[method] as unknown as (...a: Array<never>) => Effect.Effect<unknown, unknown>)(...args), () =>
          Effect.sync(() => {
            const i = cutAfter.indexOf(method)
            if (i === -1) return
            cutAfter.splice(i, 1)
            if (cutAfter.length === 0) proxy.cut()
          }))
      return { ...backend, start: wrap("start"), pause: wrap("pause"), unpause: wrap("unpause"), stop: wrap("stop"), remove: wrap("remove") } as unknown as SandboxBackend["Service"]
    }
    const start = async () => {
      const url = new URL(baseUrl)
      url.port = String(proxy.port)
      url.searchParams.set("options", `-c search_path=${schema}`)
      runtime = await createRuntime({
        layer: Layer.merge(Layer.succeed(SandboxBackend, cutting()), Store.layer({ url: url.toString(), pglite: "file", dataDir })),
        env: {},
        config: { runtime: { runtime_id: runtimeId, hibernate_idle_after_seconds: 0 }, lifecycle: { graceful_shutdown_seconds: 2 } }
      })
      return runtime
    }
    const restart = async () => {
      await runtime?.shutdown()
      runtime = undefined
      return start()
    }
    /** Memory, the agent's sandboxes and the store's record, side by side. */
    const view = async (agentId: string) => {
      const memory = await runtime!.getState(agentId)
      const sandboxes = (await Effect.runPromise(backend.list({ [OwnershipLabels.agentId]: agentId }))).filter((s) => s.status !== "removed").map((s) => `${s.sandboxId}:${s.status}`)
      const row = psql(`SELECT state || '|' || coalesce(sandbox_id, '') || '|' || coalesce(snapshot->'intent'->>'operation', '') FROM ${schema}.agent_instances WHERE agent_id = '${agentId}'`)
      return { memory: `${memory.state}|${memory.sandboxId ?? ""}`, sandboxes, store: row }
    }
    /** Agreement: the store holds memory's state and no intent, the sandbox is as the state says. */
    const agreed = (v: Awaited<ReturnType<typeof view>>) => {
      const [state, sandboxId] = v.memory.split("|")
      expect(v.store).toBe(`${v.memory}|`)
      const expected = state === "running" ? [`${sandboxId}:running`] : state === "suspended" && sandboxId !== "" ? [`${sandboxId}:paused`] : []
      expect(v.sandboxes).toEqual(expected)
    }
    const failure = failureOf

    it("cut before each operation: E2060, nothing changed in memory, sandbox or store, then or after a restart", async () => {
      const rt = await start()
      const running = await rt.spawn(b.agent)
      const paused = await rt.spawn(b.agent)
      await rt.suspend(paused.agentId)
      const checkpointed = await rt.spawn(b.agent)
      await rt.suspend(checkpointed.agentId, { checkpoint: true })
      const ids = [running.agentId, paused.agentId, checkpointed.agentId]
      const before = await Promise.all(ids.map(view))
      for (const v of before) agreed(v)
      const sandboxesBefore = (await Effect.runPromise(backend.list({ [OwnershipLabels.runtimeId]: runtimeId }))).length

      proxy.cut()
      const refusals = [
        await failure(rt.spawn(b.agent)),
        await failure(rt.suspend(running.agentId)),
        await failure(rt.suspend(running.agentId, { checkpoint: true })),
        await failure(rt.terminate(running.agentId)),
        await failure(rt.terminate(running.agentId, { force: true })),
        await failure(rt.resume(paused.agentId)),
        await failure(rt.resume(checkpointed.agentId))
      ]
      for (const r of refusals) expect(r).toMatchObject({ code: "E2060", message: expect.stringContaining("refused, nothing changed") })
      expect(await Promise.all(ids.map(view))).toEqual(before)
      expect((await Effect.runPromise(backend.list({ [OwnershipLabels.runtimeId]: runtimeId }))).length).toBe(sandboxesBefore)
      proxy.restore()
      await eventually(async () => expect(await Promise.all(ids.map(view))).toEqual(before), 10_000)
      expect(Number(psql(`SELECT count(*) FROM ${schema}.agent_instances`))).toBe(ids.length)
      await restart()
      expect(await Promise.all(ids.map(view))).toEqual(before)
      for (const id of ids) await runtime!.terminate(id, { force: true })
    }, 180_000)

    it("cut during each operation: what took effect is written once the store answers; a supervisor stopped while it is down is settled at restart", async () => {
      const rt = await start()
      const a = await rt.spawn(b.agent)
      const c = await rt.spawn(b.agent)
      const d = await rt.spawn(b.agent)

      /** The store cut once `method` returned: E2060 saying the agent is `now` so, and agreement once it answers. */
      const cutDuring = async (method: Method, operation: () => Promise<unknown>, now: string, agentId: string) => {
        cutAfter.push(method)
        expect(await failure(operation())).toMatchObject({ code: "E2060", message: expect.stringContaining(`is now ${now}`) })
        proxy.restore()
        await eventually(async () => agreed(await view(agentId)), 10_000)
      }
      await cutDuring("pause", () => rt.suspend(a.agentId), "suspended", a.agentId)
      await cutDuring("unpause", () => rt.resume(a.agentId), "running", a.agentId)
      await cutDuring("remove", () => rt.suspend(c.agentId, { checkpoint: true }), "suspended", c.agentId)
      await cutDuring("start", () => rt.resume(c.agentId), "running", c.agentId)

      // The supervisor stops while the store is still down: after a suspend, then after a terminate.
      cutAfter.push("pause")
      expect(await failure(rt.suspend(a.agentId))).toMatchObject({ code: "E2060", message: expect.stringContaining("is now suspended") })
      await runtime!.shutdown()
      runtime = undefined
      expect(psql(`SELECT snapshot->'intent'->>'operation' FROM ${schema}.agent_instances WHERE agent_id = '${a.agentId}'`)).toBe("suspend")
      proxy.restore()
      let rt2 = await start()
      expect((await rt2.getState(a.agentId)).state).toBe("suspended")
      agreed(await view(a.agentId))
      cutAfter.push("remove")
      expect(await failure(rt2.terminate(d.agentId))).toMatchObject({ code: "E2060", message: expect.stringContaining("is now terminated") })
      await runtime!.shutdown()
      runtime = undefined
      expect(psql(`SELECT snapshot->'intent'->>'operation' FROM ${schema}.agent_instances WHERE agent_id = '${d.agentId}'`)).toBe("terminate")
      proxy.restore()
      rt2 = await start()
      await eventually(async () => expect(psql(`SELECT state FROM ${schema}.agent_instances WHERE agent_id = '${d.agentId}'`)).toBe("terminated"), 30_000)
      expect((await rt2.getState(d.agentId)).state).toBe("terminated")
      expect(await Effect.runPromise(backend.list({ [OwnershipLabels.agentId]: d.agentId }))).toEqual([])
      const reconciled = psql(`SELECT agent_id || ':' || (data->>'operation') || ':' || (data->>'outcome') FROM ${schema}.lifecycle_events WHERE type = 'agent.reconciled' ORDER BY id`)
      expect(reconciled.split("\n").sort()).toEqual([`${a.agentId}:suspend:completed`, `${d.agentId}:terminate:completed`].sort())
      const views = await Promise.all([a.agentId, c.agentId].map(view))
      for (const v of views) agreed(v)
      await restart()
      expect(await Promise.all([a.agentId, c.agentId].map(view))).toEqual(views)
      for (const id of [a.agentId, c.agentId]) await runtime!.terminate(id, { force: true })
    }, 240_000)
  })
}
