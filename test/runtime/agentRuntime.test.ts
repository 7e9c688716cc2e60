import { Effect, Layer, Option, PubSub, Stream } from "effect"
import { afterEach, describe, expect, it } from "vitest"
import { SimulatedClock } from "xstate"
import { OwnershipLabels } from "../../src/domain/Ids.ts"
import { StoreFailed } from "../../src/domain/Errors.ts"
import { createRuntime, type L02Runtime } from "../../src/runtime/createRuntime.ts"
import { CheckpointStore, layerMemory as checkpointMemoryLayer } from "../../src/services/CheckpointStore.ts"
import { EventLog, layerMemory as eventLogMemoryLayer } from "../../src/services/EventLog.ts"
import { layerMemory as sandboxMemoryLayer, SandboxBackend, type SandboxEvent } from "../../src/services/SandboxBackend.ts"
import { layerMemory as stateMemoryLayer, StateStore } from "../../src/services/StateStore.ts"
import { eventually, memoryServices } from "./support.ts"

const cleanups: Array<() => Promise<void>> = []
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c()
})

const setup = async (options: { backend?: Parameters<typeof memoryServices>[0]; config?: Record<string, Record<string, unknown>>; clock?: SimulatedClock; now?: () => number } = {}) => {
  const services = await memoryServices(options.backend)
  const start = () =>
    createRuntime({
      layer: services.layer,
      env: {},
      config: { store: { pglite: "memory" }, runtime: { runtime_id: "rt-test" }, ...options.config },
      ...(options.clock === undefined ? {} : { clock: options.clock }),
      ...(options.now === undefined ? {} : { now: options.now }),
      random: () => 0
    })
  const runtime = await start()
  let current: L02Runtime | undefined = runtime
  cleanups.push(async () => {
    await current?.shutdown()
    await services.close()
  })
  return {
    runtime,
    services,
    restart: async () => {
      await current?.shutdown()
      current = await start()
      return current
    }
  }
}

const agent = { name: "worker", trustLevel: "TRUSTED" }

type RealServices = Parameters<Parameters<Awaited<ReturnType<typeof memoryServices>>["run"]>[0]>[0]

/** A runtime over the in-memory services, with the backend or the state store replaced by a decorated one. */
const setupWith = async (replace: (real: RealServices) => { backend?: SandboxBackend["Service"]; store?: StateStore["Service"] }) => {
  const services = await memoryServices()
  const real = await services.run((s) => Effect.succeed(s))
  const replaced = replace(real)
  const layer = Layer.mergeAll(
    Layer.succeed(SandboxBackend, replaced.backend ?? real.backend),
    Layer.succeed(StateStore, replaced.store ?? real.store),
    Layer.succeed(CheckpointStore, real.checkpoints),
    Layer.succeed(EventLog, real.log)
  )
  const runtime = await createRuntime({ layer, env: {}, config: { store: { pglite: "memory" }, runtime: { runtime_id: "rt-test" } } })
  cleanups.push(async () => {
    await runtime.shutdown()
    await services.close()
  })
  return { runtime, services }
}

describe("runtime lifecycle on the in-memory backend", () => {
  it("spawns an agent, persists running before acknowledging, and records every transition", async () => {
    const { runtime, services } = await setup()
    const result = await runtime.spawn(agent, { task: "x" })
    expect(result).toMatchObject({ state: "running", sandbox: { trustLevel: "TRUSTED", runtimeClass: "runc" } })
    const stored = await services.run(({ store }) => store.getAgent(result.agentId))
    expect(Option.getOrThrow(stored)).toMatchObject({ state: "running", runtimeId: "rt-test", sandboxId: result.sandboxId })
    const events = await services.run(({ log }) => log.query({ agentId: result.agentId }))
    expect(events.map((e) => `${e.fromState ?? ""}>${e.toState ?? ""}`)).toEqual([">pending", "pending>spawning", "spawning>running"])
    const info = await services.run(({ backend }) => backend.inspect(result.sandboxId!))
    expect(info.status).toBe("running")
    expect(info.labels[OwnershipLabels.agentId]).toBe(result.agentId)
    expect(await runtime.getState(result.agentId)).toMatchObject({
      state: "running",
      activity: "idle",
      restartCount: 0,
      resourceUsage: { cpuPercent: expect.any(Number), memoryBytes: expect.any(Number) }
    })
  })

  it("refuses an operation the state does not accept with E2020 and changes nothing", async () => {
    const { runtime, services } = await setup()
    const { agentId } = await runtime.spawn(agent)
    const before = Option.getOrThrow(await services.run(({ store }) => store.getAgent(agentId)))
    const eventsBefore = await services.run(({ log }) => log.query({ agentId }))
    await expect(runtime.resume(agentId)).rejects.toMatchObject({ code: "E2020", _tag: "InvalidTransition", state: "running", operation: "resume" })
    await expect(runtime.resume(agentId)).rejects.toThrow(/cannot resume agent .* while it is running/)
    expect(Option.getOrThrow(await services.run(({ store }) => store.getAgent(agentId)))).toEqual(before)
    expect(await services.run(({ log }) => log.query({ agentId }))).toEqual(eventsBefore)
    expect((await runtime.getState(agentId)).state).toBe("running")
  })

  it("suspends by pausing and resumes by unpausing the same sandbox", async () => {
    const { runtime, services } = await setup()
    const { agentId, sandboxId } = await runtime.spawn(agent)
    expect(await runtime.suspend(agentId)).toBeUndefined()
    expect((await services.run(({ backend }) => backend.inspect(sandboxId!))).status).toBe("paused")
    expect((await runtime.getState(agentId)).state).toBe("suspended")
    expect(await runtime.resume(agentId)).toBe("running")
    expect((await services.run(({ backend }) => backend.inspect(sandboxId!))).status).toBe("running")
  })

  it("asks the backend for nothing while the spawn's intent cannot be written: E2060, no sandbox", async () => {
    let down = true
    const { runtime, services } = await setupWith((real) => ({
      store: StateStore.of({
        ...real.store,
        saveAgents: (records) => (down ? Effect.fail(new StoreFailed({ message: "the store is down" })) : real.store.saveAgents(records))
      })
    }))
    await expect(runtime.spawn(agent)).rejects.toMatchObject({ code: "E2060" })
    expect(await services.run(({ backend }) => backend.list({}))).toEqual([])
    down = false
    const { agentId } = await runtime.spawn(agent)
    expect(Option.getOrThrow(await services.run(({ store }) => store.getAgent(agentId))).state).toBe("running")
  })

  it("writes a pause's transient state with the transition that ends it, or on its own while the pause takes long", async () => {
    let slow: Promise<void> | undefined
    const { runtime, services } = await setupWith((real) => ({
      backend: SandboxBackend.of({ ...real.backend, pause: (id) => Effect.andThen(Effect.promise(() => slow ?? Promise.resolve()), real.backend.pause(id)) })
    }))
    const { agentId } = await runtime.spawn(agent)
    const transitions = async () => (await services.run(({ log }) => log.query({ agentId }))).map((e) => `${e.fromState ?? ""}>${e.toState ?? ""}`)
    await runtime.suspend(agentId)
    await runtime.resume(agentId)
    expect((await transitions()).slice(3)).toEqual(["running>suspending", "suspending>suspended", "suspended>resuming", "resuming>running"])

    let release!: () => void
    slow = new Promise<void>((r) => (release = r))
    const suspending = runtime.suspend(agentId)
    await eventually(async () => expect(Option.getOrThrow(await services.run(({ store }) => store.getAgent(agentId))).state).toBe("suspending"), 2000)
    expect((await transitions()).at(-1)).toBe("running>suspending")
    release()
    await suspending
    expect(Option.getOrThrow(await services.run(({ store }) => store.getAgent(agentId))).state).toBe("suspended")
    expect((await transitions()).at(-1)).toBe("suspending>suspended")
  })

  it("checkpoints the workspace, removes the sandbox, and restores both on resume", async () => {
    const { runtime, services } = await setup()
    const { agentId, sandboxId } = await runtime.spawn(agent)
    await services.run(({ backend }) =>
      Stream.runCollect(backend.exec(sandboxId!, { command: ["l02-write", "notes.txt", "remember me"], timeoutMs: 1000, maxOutputBytes: 1000 }))
    )
    const checkpointId = await runtime.suspend(agentId, { checkpoint: true })
    expect(checkpointId).toBeTypeOf("string")
    expect(await services.run(({ backend }) => backend.list({ [OwnershipLabels.agentId]: agentId }))).toEqual([])
    const saved = await services.run(({ checkpoints }) => checkpoints.list(agentId))
    expect(saved.map((c) => c.checkpointId)).toEqual([checkpointId])
    expect((await runtime.checkpoints(agentId)).map((c) => c.checkpointId)).toEqual([checkpointId])
    expect(await runtime.resume(agentId, checkpointId)).toBe("running")
    const after = await runtime.getState(agentId)
    expect(after.sandboxId).not.toBe(sandboxId)
    const chunks = await services.run(({ backend }) =>
      Stream.runCollect(backend.exec(after.sandboxId!, { command: ["l02-read", "notes.txt"], timeoutMs: 1000, maxOutputBytes: 1000 }))
    )
    expect(chunks.filter((c) => c._tag === "stdout").map((c) => (c as { data: string }).data).join("")).toContain("remember me")
  })

  it("refuses a corrupt or foreign checkpoint with E2024 and stays suspended", async () => {
    const { runtime } = await setup()
    const a = await runtime.spawn(agent)
    const b = await runtime.spawn({ ...agent, name: "other" })
    await runtime.suspend(a.agentId, { checkpoint: true })
    const foreign = await runtime.suspend(b.agentId, { checkpoint: true })
    await expect(runtime.resume(a.agentId, foreign)).rejects.toMatchObject({ code: "E2024" })
    expect((await runtime.getState(a.agentId)).state).toBe("suspended")
    await expect(runtime.resume(a.agentId, "00000000-0000-4000-8000-000000000000")).rejects.toMatchObject({ code: "E2024" })
    expect(await runtime.resume(a.agentId)).toBe("running")
  })

  it("terminates: sandbox gone, record kept as terminated, every further operation refused", async () => {
    const { runtime, services } = await setup()
    const { agentId } = await runtime.spawn(agent)
    await runtime.terminate(agentId, { reason: "test" })
    expect(await services.run(({ backend }) => backend.list({ [OwnershipLabels.agentId]: agentId }))).toEqual([])
    await eventually(async () => expect((await runtime.getState(agentId)).state).toBe("terminated"))
    expect((await runtime.getState(agentId)).terminatedAt).toBeTypeOf("string")
    await expect(runtime.terminate(agentId)).rejects.toMatchObject({ code: "E2020" })
    await expect(runtime.suspend(agentId)).rejects.toMatchObject({ code: "E2020" })
  })

  it("answers E2021 for an unknown agent", async () => {
    const { runtime } = await setup()
    await expect(runtime.getState("6c1d1a5e-7d4c-4b5a-9e2f-2a9f1b0c3d4e")).rejects.toMatchObject({ code: "E2021", _tag: "AgentNotFound" })
    // Not an agent id at all: E2001 naming it, before anything is looked up.
    await expect(runtime.suspend("nope")).rejects.toMatchObject({ code: "E2001", key: "agentId" })
  })

  it.each([
    [{ name: "Not Valid" }, "E2001", "name"],
    [{ name: "ok", resources: { memory: "2Zi" } }, "E2042", "resources"],
    [{ name: "ok", resources: { cpu: "64" } }, "E2042", "resources.cpu"],
    [{ name: "ok", trustLevel: "ROOT" }, "E2040", "trustLevel"],
    [{ name: "ok", trustLevel: "STANDARD" }, "E2041", "trustLevel"],
    [{ name: "ok", surprise: true }, "E2001", "surprise"]
  ])("refuses bad input %j with %s and creates nothing", async (input, code, key) => {
    const { runtime, services } = await setup()
    await expect(runtime.spawn(input)).rejects.toMatchObject({ code, key: expect.stringContaining(key) })
    expect(await runtime.list()).toEqual([])
    expect(await services.run(({ backend }) => backend.list({}))).toEqual([])
  })

  it("names the backends that can host a trust level it refuses", async () => {
    const { runtime } = await setup()
    await expect(runtime.spawn({ name: "x", trustLevel: "STANDARD" })).rejects.toThrow(/gvisor.*docker backend/)
  })

  it("does not leak a sandbox when terminate arrives during spawn", async () => {
    const { runtime, services } = await setup({ backend: { provisionDelayMs: 30, startDelayMs: 30 } })
    for (let i = 0; i < 5; i++) {
      const spawning = runtime.spawn({ ...agent, name: `race-${i}` }).catch((e: unknown) => e)
      await new Promise((r) => setTimeout(r, i * 12))
      const [agentInstance] = (await runtime.list({ state: ["spawning", "pending"] })).filter((a) => a.name === `race-${i}`)
      if (agentInstance !== undefined) await runtime.terminate(agentInstance.agentId)
      await spawning
    }
    await eventually(async () => {
      const live = (await runtime.list()).filter((a) => a.state !== "terminated").map((a) => a.agentId)
      const sandboxes = await services.run(({ backend }) => backend.list({}))
      expect(sandboxes.filter((s) => !live.includes(s.agentId))).toEqual([])
    })
  })
})

describe("execute", () => {
  it("sends input as a JSON line and streams the agent's lines until done; busy meanwhile, idle after", async () => {
    const { runtime } = await setup()
    const { agentId } = await runtime.spawn({ ...agent, command: ["l02-agent"] })
    const seen: Array<string> = []
    for await (const event of runtime.execute(agentId, { question: "ping" })) {
      seen.push(event.type)
      if (event.type === "output") {
        expect(event.data).toMatchObject({ type: "output", data: { question: "ping" } })
        expect((await runtime.getState(agentId)).activity).toBe("busy")
        await expect(runtime.suspend(agentId)).rejects.toMatchObject({ code: "E2020" })
      }
    }
    expect(seen).toEqual(["output", "done"])
    expect((await runtime.getState(agentId)).activity).toBe("idle")
  })

  it("resumes a suspended agent before the step", async () => {
    const { runtime } = await setup()
    const { agentId } = await runtime.spawn({ ...agent, command: ["l02-agent"] })
    await runtime.suspend(agentId)
    const events = []
    for await (const event of runtime.execute(agentId, "wake up")) events.push(event)
    expect(events.at(-1)).toMatchObject({ type: "done" })
    expect((await runtime.getState(agentId)).state).toBe("running")
  })

  it("cancels the step when the caller's signal aborts, leaving the agent idle", async () => {
    const { runtime } = await setup()
    const { agentId } = await runtime.spawn({ ...agent, command: ["l02-sleep", "100"] })
    const controller = new AbortController()
    setTimeout(() => controller.abort(), 100)
    const seen: Array<unknown> = []
    for await (const e of runtime.execute(agentId, "x", { signal: controller.signal })) seen.push(e)
    expect(seen).toEqual([])
    expect((await runtime.getState(agentId)).activity).toBe("idle")
  })

  it("fails with E2029 when the agent never answers done", async () => {
    const { runtime } = await setup()
    const { agentId } = await runtime.spawn({ ...agent, command: ["l02-sleep", "100"] })
    const run = async () => {
      for await (const _ of runtime.execute(agentId, "x", { timeoutMs: 200 })) void _
    }
    await expect(run()).rejects.toMatchObject({ code: "E2029" })
    expect((await runtime.getState(agentId)).activity).toBe("idle")
  })
})

describe("admission", () => {
  it("runs at most max_concurrent_spawns at once and refuses beyond the queue limit with E2030", async () => {
    const { runtime } = await setup({
      backend: { provisionDelayMs: 40 },
      config: { lifecycle: { max_concurrent_spawns: 1, spawn_queue_limit: 1 } }
    })
    const results = await Promise.allSettled([0, 1, 2].map((i) => runtime.spawn({ ...agent, name: `adm-${i}` })))
    expect(results.map((r) => r.status)).toEqual(["fulfilled", "fulfilled", "rejected"])
    expect((results[2] as PromiseRejectedResult).reason).toMatchObject({ code: "E2030", _tag: "AdmissionRejected" })
    expect((await runtime.list()).map((a) => a.name).sort()).toEqual(["adm-0", "adm-1"])
  })
})

describe("admission by priority", () => {
  it("admits a high-priority scale's spawns before normal spawns that waited longer, and a low one's after", async () => {
    const { runtime } = await setup({
      backend: { provisionDelayMs: 400 },
      config: { lifecycle: { max_concurrent_spawns: 1, spawn_queue_limit: 100 } }
    })
    const blocker = runtime.spawn({ ...agent, name: "blocker" })
    // Once the blocker holds the only slot (its record exists once it is admitted), the others queue behind it.
    await eventually(async () => expect((await runtime.list()).map((a) => a.name)).toEqual(["blocker"]))
    const normals = [0, 1].map((i) => runtime.spawn({ ...agent, name: `normal-${i}` }))
    const low = runtime.scale("batch", 2, { template: { ...agent, name: "batch" }, priority: "low" })
    const high = runtime.scale("urgent", 2, { template: { ...agent, name: "urgent" }, priority: "high" })
    await Promise.all([blocker, ...normals, low, high])
    const created = [...(await runtime.list())].sort((a, b) => a.createdAt.localeCompare(b.createdAt))
    const rank = (name: string) => (name.startsWith("urgent") ? "high" : name.startsWith("batch") ? "low" : name.startsWith("normal") ? "normal" : name)
    // Spawns are admitted one at a time: the record of each is created when it is admitted.
    expect(created.map((a) => rank(a.name))).toEqual(["blocker", "high", "high", "normal", "normal", "low", "low"])
  })
})

describe("fleet operations under a small queue", () => {
  it("a scale keeps within lifecycle.spawn_queue_limit: it completes instead of tripping E2030 on its own spawns", async () => {
    const { runtime } = await setup({
      backend: { provisionDelayMs: 10 },
      config: { lifecycle: { max_concurrent_spawns: 2, spawn_queue_limit: 1 } }
    })
    const op = await runtime.scale("small", 6, { template: { ...agent, name: "small" } })
    expect(op).toMatchObject({ status: "completed", targetReplicas: 6 })
    expect(await runtime.list({ labels: { "pool.l02.dev/name": "small" }, state: "running" })).toHaveLength(6)
  })
})

describe("fleet operations", () => {
  it("scales a pool up from a template, down newest first, drains it, and records each operation", async () => {
    const { runtime, services } = await setup()
    const up = await runtime.scale("workers", 3, { template: { name: "worker", trustLevel: "TRUSTED" }, priority: "high" })
    expect(up).toMatchObject({ operationType: "scale", targetReplicas: 3, status: "completed", priority: "high" })
    const pool = () => runtime.list({ labels: { "pool.l02.dev/name": "workers" }, state: "running" })
    expect(await pool()).toHaveLength(3)
    const oldestAt = [...(await pool())].map((a) => a.createdAt).sort()[0]!
    await runtime.scale("workers", 1)
    const survivors = await pool()
    expect(survivors).toHaveLength(1)
    // The newest go first: the survivor is one of the oldest (replicas spawned in the same millisecond tie).
    expect(survivors[0]!.createdAt).toBe(oldestAt)
    const drained = await runtime.drain("workers")
    expect(drained).toMatchObject({ operationType: "drain", targetReplicas: 0, status: "completed" })
    expect(await pool()).toEqual([])
    expect(await services.run(({ backend }) => backend.list({}))).toEqual([])
    const ops = await runtime.fleetOperations()
    expect(ops.map((o) => [o.operationType, o.targetReplicas, o.status])).toEqual([
      ["drain", 0, "completed"],
      ["scale", 1, "completed"],
      ["scale", 3, "completed"]
    ])
  })

  it("refuses a bad pool name, bad replicas, or growing an empty pool without a template, changing nothing", async () => {
    const { runtime } = await setup()
    await expect(runtime.scale("bad name", 1)).rejects.toMatchObject({ code: "E2001", key: "pool" })
    await expect(runtime.scale("p", -1)).rejects.toMatchObject({ code: "E2001", key: "replicas" })
    await expect(runtime.scale("p", 2)).rejects.toMatchObject({ code: "E2001", key: "template" })
    await expect(runtime.scale("p", 2, { template: { name: "Bad" } })).rejects.toMatchObject({ code: "E2001" })
    expect(await runtime.fleetOperations()).toEqual([])
    expect(await runtime.list()).toEqual([])
  })
})

describe("hibernation", () => {
  it("stops the actors of idle agents and wakes them on the next operation, losing nothing", async () => {
    const { runtime, services } = await setup({ config: { runtime: { runtime_id: "rt-test", hibernate_idle_after_seconds: 1 } } })
    const a = await runtime.spawn(agent)
    const b = await runtime.spawn({ ...agent, name: "other" })
    await runtime.suspend(b.agentId)
    await eventually(async () => expect((await runtime.fleetStatus()).hibernated).toBe(2), 4000)
    expect(await runtime.getState(a.agentId)).toMatchObject({ state: "running", activity: "idle" })
    await expect(runtime.resume(a.agentId)).rejects.toMatchObject({ code: "E2020" })
    expect(await runtime.resume(b.agentId)).toBe("running")
    expect(await runtime.suspend(a.agentId, { checkpoint: true })).toBeTypeOf("string")
    expect((await runtime.fleetStatus()).byState).toEqual({ running: 1, suspended: 1 })
    const log = await services.run(({ log }) => log.query({ agentId: b.agentId }))
    expect(log.map((e) => e.toState)).toEqual(["pending", "spawning", "running", "suspending", "suspended", "resuming", "running"])
  })
})

describe("supervision", () => {
  it("restarts an agent whose sandbox exited, with backoff, then gives up with E2025", async () => {
    const clock = new SimulatedClock()
    let now = 0
    const { runtime, services } = await setup({
      clock,
      now: () => now,
      config: { lifecycle: { max_restart_count: 2, restart_backoff_initial_ms: 1000, restart_backoff_factor: 2 } }
    })
    const { agentId } = await runtime.spawn(agent)
    const crash = async () => {
      const { sandboxId } = await runtime.getState(agentId)
      await services.run(({ backend }) =>
        Effect_scoped(backend.attach(sandboxId!), (a) => a.write("exit 3"))
      )
      await eventually(async () => expect((await runtime.getState(agentId)).state).toBe("failed"))
    }
    await crash()
    expect((await runtime.getState(agentId)).lastError).toMatchObject({ code: "E2027" })
    now += 999
    clock.increment(999)
    await new Promise((r) => setTimeout(r, 20))
    expect((await runtime.getState(agentId)).state).toBe("failed")
    now += 1
    clock.increment(1)
    await eventually(async () => expect((await runtime.getState(agentId)).state).toBe("running"))
    expect((await runtime.getState(agentId)).restartCount).toBe(1)
    await crash()
    now += 2000
    clock.increment(2000)
    await eventually(async () => expect(await runtime.getState(agentId)).toMatchObject({ state: "running", restartCount: 2 }))
    await crash()
    await eventually(async () => expect((await runtime.getState(agentId)).lastError).toMatchObject({ code: "E2025" }))
    now += 60_000
    clock.increment(60_000)
    await new Promise((r) => setTimeout(r, 20))
    expect(await runtime.getState(agentId)).toMatchObject({ state: "failed", restartCount: 2 })
    expect((await runtime.fleetStatus()).restartsTotal).toBe(2)
    const log = await services.run(({ log }) => log.query({ agentId }))
    expect(log.filter((e) => e.type === "fleet.restart")).toHaveLength(2)
    expect(log.filter((e) => e.type === "fleet.escalate")).toHaveLength(1)
    await runtime.terminate(agentId)
  })
})

describe("liveness", () => {
  it("replaces a sandbox that reports itself unhealthy, per the restart policy", async () => {
    // A real in-memory backend whose event stream also carries health events we inject, as Docker's
    // health_status and Kubernetes' CrashLoopBackOff do.
    const injected = Effect.runSync(PubSub.unbounded<SandboxEvent>())
    const withHealth = Layer.effect(
      SandboxBackend,
      Effect.map(Effect.service(SandboxBackend), (b) => ({ ...b, events: Stream.merge(b.events, Stream.fromPubSub(injected)) }))
    ).pipe(Layer.provide(sandboxMemoryLayer()))
    const runtime = await createRuntime({
      layer: Layer.mergeAll(withHealth, stateMemoryLayer, checkpointMemoryLayer, eventLogMemoryLayer),
      env: {},
      config: { store: { pglite: "memory" }, lifecycle: { restart_backoff_initial_ms: 10 } }
    })
    cleanups.push(() => runtime.shutdown())
    const { agentId, sandboxId } = await runtime.spawn(agent)
    await Effect.runPromise(PubSub.publish(injected, { sandboxId: sandboxId!, agentId, type: "health", healthy: true, at: Date.now() }))
    await new Promise((r) => setTimeout(r, 50))
    expect((await runtime.getState(agentId)).restartCount).toBe(0)
    await Effect.runPromise(PubSub.publish(injected, { sandboxId: sandboxId!, agentId, type: "health", healthy: false, at: Date.now() }))
    await eventually(async () => expect(await runtime.getState(agentId)).toMatchObject({ state: "running", restartCount: 1 }))
    expect((await runtime.getState(agentId)).sandboxId).not.toBe(sandboxId)
  })

  it("notices a sandbox removed behind its back, reports the agent unhealthy, and restarts it", async () => {
    const { runtime, services } = await setup({ config: { lifecycle: { health_check_interval_seconds: 1, restart_backoff_initial_ms: 10 } } })
    const { agentId, sandboxId } = await runtime.spawn(agent)
    expect(await runtime.health(agentId)).toMatchObject({ live: true, ready: true })
    await services.run(({ backend }) => backend.remove(sandboxId!))
    await eventually(async () => expect((await runtime.getState(agentId)).restartCount).toBe(1), 5000)
    await eventually(async () => expect(await runtime.getState(agentId)).toMatchObject({ state: "running" }))
    expect((await runtime.getState(agentId)).sandboxId).not.toBe(sandboxId)
    expect(await runtime.health(agentId)).toMatchObject({ live: true, ready: true })
  })

  it("restarts a running agent that sends no heartbeat within its timeout (E2049), never counts while suspended, and reports heartbeats in health()", async () => {
    const clock = new SimulatedClock()
    let now = 1_000_000
    const advance = async (ms: number) => {
      now += ms
      clock.increment(ms)
      await new Promise((r) => setTimeout(r, 20))
    }
    const { runtime, services } = await setup({
      clock,
      now: () => now,
      config: { lifecycle: { heartbeat_timeout_seconds: 10, restart_backoff_initial_ms: 1000, health_check_interval_seconds: 0 } }
    })
    const { agentId, sandboxId } = await runtime.spawn(agent)
    // The echo program repeats what it reads: a heartbeat line written to it comes back as its own output.
    const beat = (id: string) => services.run(({ backend }) => Effect_scoped(backend.attach(id), (a) => a.write(JSON.stringify({ type: "heartbeat" }))))
    await advance(6000)
    await beat(sandboxId!)
    await eventually(async () => expect((await runtime.health(agentId)).lastHeartbeatAt).toBe(new Date(now).toISOString()))
    await advance(6000)
    expect(await runtime.health(agentId)).toMatchObject({ live: true, ready: true })
    expect((await runtime.getState(agentId)).state).toBe("running")

    // Suspended for a minute: nothing is expected of a paused program; silence counts again from the resume.
    await runtime.suspend(agentId)
    await advance(60_000)
    expect((await runtime.getState(agentId)).state).toBe("suspended")
    await runtime.resume(agentId)
    await advance(9000)
    expect((await runtime.getState(agentId)).state).toBe("running")

    await advance(1000)
    await eventually(async () => expect(await runtime.getState(agentId)).toMatchObject({ state: "failed", lastError: { code: "E2049" } }))
    expect(await runtime.health(agentId)).toMatchObject({ live: false, ready: false })
    await advance(1000)
    await eventually(async () => expect(await runtime.getState(agentId)).toMatchObject({ state: "running", restartCount: 1 }))
    const replaced = (await runtime.getState(agentId)).sandboxId
    expect(replaced).not.toBe(sandboxId)
    const log = await services.run(({ log }) => log.query({ agentId }))
    expect(log.find((e) => e.toState === "failed")?.data).toMatchObject({ error: { code: "E2049" } })
    expect(log.filter((e) => e.type === "fleet.restart")).toHaveLength(1)

    // The new sandbox is watched from its start, and an agent whose own timeout is 0 is never watched.
    await beat(replaced!)
    await advance(9000)
    expect((await runtime.getState(agentId)).state).toBe("running")
    const exempt = await runtime.spawn({ ...agent, heartbeatTimeoutSeconds: 0 })
    await advance(30_000)
    expect((await runtime.getState(exempt.agentId)).state).toBe("running")
    await eventually(async () => expect((await runtime.getState(agentId)).lastError).toMatchObject({ code: "E2049" }))
  })

  it("honours an agent's own restart policy (maxRestarts 0: escalate at the first failure)", async () => {
    const { runtime, services } = await setup()
    const { agentId, sandboxId } = await runtime.spawn({ ...agent, restartPolicy: { maxRestarts: 0 } })
    await services.run(({ backend }) => Effect_scoped(backend.attach(sandboxId!), (a) => a.write("exit 9")))
    await eventually(async () => expect((await runtime.getState(agentId)).lastError).toMatchObject({ code: "E2025" }))
    expect(await runtime.health(agentId)).toMatchObject({ live: false, ready: false, reason: expect.stringContaining("max_restart_count 0") })
  })
})

describe("recovery", () => {
  it("reloads agents from the store after a restart and keeps operating them", async () => {
    const { runtime, services, restart } = await setup()
    const running = await runtime.spawn(agent)
    const paused = await runtime.spawn({ ...agent, name: "paused" })
    await runtime.suspend(paused.agentId)
    const again = await restart()
    expect(await again.getState(running.agentId)).toMatchObject({ state: "running", sandboxId: running.sandboxId })
    expect((await again.getState(paused.agentId)).state).toBe("suspended")
    expect(await again.resume(paused.agentId)).toBe("running")
    await again.terminate(running.agentId)
    expect(await services.run(({ backend }) => backend.list({ [OwnershipLabels.agentId]: running.agentId }))).toEqual([])
  })

  it("stores an agent's identity once, and a restored agent (also from a snapshot written before its context carried it) checkpoints and restores with it", async () => {
    const { runtime, services, restart } = await setup()
    const { agentId } = await runtime.spawn({ ...agent, env: { ROLE: "kept" } }, { task: "t-1" })
    const storedContext = async () =>
      (Option.getOrThrow(await services.run(({ store }) => store.getAgent(agentId))).snapshot as { machine: { context: Record<string, unknown> } }).machine.context
    const context = await storedContext()
    // The record holds config, sandbox and initial context; the machine's stored context does not repeat them.
    expect(context).not.toHaveProperty("agent")
    expect(context).toMatchObject({ agentId, restartCount: 0 })
    // A snapshot of an older version: no claim in its context.
    const record = Option.getOrThrow(await services.run(({ store }) => store.getAgent(agentId)))
    const { claim: _claim, ...older } = context
    await runtime.shutdown()
    await services.run(({ store }) => store.saveAgent({ ...record, snapshot: { ...(record.snapshot as object), machine: { ...(record.snapshot as { machine: object }).machine, context: older } } }))
    const again = await restart()
    const checkpointId = await again.suspend(agentId, { checkpoint: true })
    const { content } = await services.run(({ checkpoints }) => checkpoints.load(checkpointId!))
    expect(content.actorState).toMatchObject({ initialContext: { task: "t-1" }, context: { agentId, agent: { agentId, config: { env: { ROLE: "kept" } } } } })
    expect(await again.resume(agentId)).toBe("running")
    const sandbox = (await again.getState(agentId)).sandboxId!
    expect((await services.run(({ backend }) => backend.inspect(sandbox))).labels).toMatchObject({ [OwnershipLabels.agentId]: agentId })
    expect(await storedContext()).not.toHaveProperty("agent")
  })

  it("reaps sandboxes it owns that no agent claims, and marks agents whose sandbox vanished as failed", async () => {
    const { runtime, services, restart } = await setup()
    const kept = await runtime.spawn(agent)
    const lost = await runtime.spawn({ ...agent, name: "lost" })
    await runtime.shutdown()
    await services.run(({ backend }) => Effect.andThen(backend.stop(lost.sandboxId!, { graceMs: 0 }), backend.remove(lost.sandboxId!)))
    await services.run(({ store }) => store.deleteAgent(kept.agentId))
    const again = await restart()
    expect(await services.run(({ backend }) => backend.list({ [OwnershipLabels.agentId]: kept.agentId }))).toEqual([])
    await eventually(async () => expect((await again.getState(lost.agentId)).state).not.toBe("running"))
  })
})

const Effect_scoped = <A, E, R, B, E2>(acquire: Effect.Effect<A, E, R>, use: (a: A) => Effect.Effect<B, E2>) =>
  Effect.scoped(Effect.flatMap(acquire, use))

describe("execute with a model", () => {
  it("runs the agent loop: the model calls a tool in the sandbox, gets its result, answers; the conversation persists", async () => {
    const { runtime, services, restart } = await setup()
    const { agentId, sandboxId } = await runtime.spawn({
      ...agent,
      resources: { tokensPerHour: 100_000 },
      model: {
        provider: "scripted",
        model: "scripted-1",
        script: [
          { toolCalls: [{ name: "write_file", arguments: { path: "answer.txt", content: "42" } }] },
          { text: "I wrote the answer to answer.txt." },
          { text: "Still 42." }
        ]
      }
    })
    const events: Array<{ type: string }> = []
    for await (const e of runtime.execute(agentId, "write the answer")) events.push(e)
    expect(events.map((e) => e.type)).toContain("tool.call")
    expect(events.find((e) => e.type === "tool.result")).toMatchObject({ name: "write_file", isError: false })
    expect(events.at(-1)).toMatchObject({ type: "done", data: { reason: "final", text: "I wrote the answer to answer.txt." } })
    const chunks = await services.run(({ backend }) =>
      Stream.runCollect(backend.exec(sandboxId!, { command: ["l02-read", "answer.txt"], timeoutMs: 1000, maxOutputBytes: 100 }))
    )
    expect(chunks.filter((c) => c._tag === "stdout").map((c) => (c as { data: string }).data).join("")).toContain("42")
    const stored = Option.getOrThrow(await services.run(({ store }) => store.getAgent(agentId)))
    const conversation = (stored.snapshot as { conversation?: { messages: Array<{ role: string }> } }).conversation
    expect(conversation?.messages.map((m) => m.role)).toEqual(["user", "assistant", "tool", "assistant"])
    // After a restart the conversation continues where it was (a scripted model starts its script anew).
    const again = await restart()
    const more: Array<{ type: string }> = []
    for await (const e of again.execute(agentId, "and now?")) more.push(e)
    expect(more.at(-1)).toMatchObject({ type: "done" })
    const after = Option.getOrThrow(await services.run(({ store }) => store.getAgent(agentId)))
    const continued = (after.snapshot as { conversation: { messages: Array<{ role: string; content: string }> } }).conversation.messages
    expect(continued.slice(0, 4)).toEqual(conversation!.messages)
    expect(continued[4]).toMatchObject({ role: "user", content: "and now?" })
  })

  it("runs an agent's own stdio MCP server inside its sandbox, never on the host, and offers its tools", async () => {
    const { runtime } = await setup()
    const { agentId } = await runtime.spawn({
      ...agent,
      model: {
        provider: "scripted",
        model: "scripted-1",
        // l02-mcp exists only inside the in-memory backend's sandboxes: started on the host it would not be found.
        mcp: [{ name: "box", transport: { type: "stdio", command: "l02-mcp" }, allowlist: ["read_workspace"] }],
        script: [
          { toolCalls: [{ name: "write_file", arguments: { path: "note.txt", content: "inside" } }] },
          { toolCalls: [{ name: "read_workspace", arguments: { path: "note.txt" } }] },
          { text: "read it" }
        ]
      }
    })
    const events: Array<{ type: string; content?: string; name?: string }> = []
    for await (const e of runtime.execute(agentId, "read the note")) events.push(e as never)
    // The server read the agent's own workspace: it ran in the sandbox.
    expect(events.filter((e) => e.type === "tool.result").at(-1)).toMatchObject({ name: "read_workspace", content: "inside" })
    expect(events.at(-1)).toMatchObject({ type: "done", data: { text: "read it" } })
  })

  it("keeps the hourly token budget across a runtime restart", async () => {
    const { runtime, restart } = await setup()
    const turn = { text: "ok", usage: { inputTokens: 450, outputTokens: 450 } }
    const { agentId } = await runtime.spawn({
      ...agent,
      resources: { tokensPerHour: 1000 },
      model: { provider: "scripted", model: "scripted-1", script: [turn, turn] }
    })
    const run = async (rt: L02Runtime) => {
      const events: Array<{ type: string; error?: { code: string } }> = []
      for await (const e of rt.execute(agentId, "hi")) events.push(e as never)
      return events
    }
    expect((await run(runtime)).find((e) => e.type === "error")).toBeUndefined()
    const again = await restart()
    // 900 of 1000 tokens used before the restart: the next call (its prompt alone is over 100) is refused.
    expect((await run(again)).find((e) => e.type === "error")?.error?.code).toBe("E2084")
  })

  it("refuses a model call over the agent's token budget with a coded error", async () => {
    const { runtime } = await setup()
    const { agentId } = await runtime.spawn({
      ...agent,
      resources: { tokensPerHour: 5 },
      model: { provider: "scripted", model: "scripted-1", script: [{ text: "never sent" }] }
    })
    const events: Array<{ type: string; error?: { code: string } }> = []
    for await (const e of runtime.execute(agentId, "a prompt that needs more than five tokens of budget")) events.push(e as never)
    expect(events.find((e) => e.type === "error")?.error?.code).toBe("E2084")
    expect((await runtime.getState(agentId)).activity).toBe("idle")
  })
})
