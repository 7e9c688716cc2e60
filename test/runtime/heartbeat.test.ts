// Heartbeats from a real program: the runtime tells an agent with a heartbeat timeout how often to beat
// (L02_HEARTBEAT_MS) and the reference agent (src/agent/echoAgent.mjs) does; a program that never beats is
// restarted (E2049). On the process backend, in real time.
import { describe, expect, it } from "vitest"
import type { LifecycleEvent } from "../../src/domain/LifecycleEvent.ts"
import { isHeartbeat } from "../../src/runtime/internal/heartbeats.ts"
import { eventually, processRuntime } from "./support.ts"

describe("heartbeats", () => {
  it("knows a heartbeat line from other output", () => {
    expect(isHeartbeat(JSON.stringify({ type: "heartbeat", at: "2026-11-24T00:00:00Z" }))).toBe(true)
    expect(isHeartbeat(JSON.stringify({ type: "output", text: "heartbeat" }))).toBe(false)
    expect(isHeartbeat("heartbeat")).toBe(false)
    expect(isHeartbeat('{"type":"heartbeat"')).toBe(false)
  })

  it("keeps an agent that beats running and restarts one that falls silent, on the process backend", { timeout: 30_000 }, async () => {
    const { runtime, close } = await processRuntime({ lifecycle: { heartbeat_timeout_seconds: 1, restart_backoff_initial_ms: 100, health_check_interval_seconds: 0 } })
    try {
      const history: Array<LifecycleEvent> = []
      void (async () => {
        for await (const event of runtime.events()) history.push(event)
      })()
      const beating = await runtime.spawn({ name: "beating", trustLevel: "TRUSTED" })
      const silent = await runtime.spawn({ name: "silent", trustLevel: "TRUSTED", command: ["sleep", "600"] })
      await eventually(async () => expect((await runtime.getState(silent.agentId)).restartCount).toBeGreaterThanOrEqual(1), 10_000)
      const failure = history.find((e) => e.agentId === silent.agentId && e.toState === "failed")
      expect(failure?.data).toMatchObject({ error: { code: "E2049" } })
      expect(history.some((e) => e.agentId === beating.agentId && e.toState === "failed")).toBe(false)
      expect(await runtime.getState(beating.agentId)).toMatchObject({ state: "running", restartCount: 0 })
      const health = await runtime.health(beating.agentId)
      expect(health).toMatchObject({ live: true, ready: true })
      // told to beat every 333 ms (a third of its 1 s timeout)
      expect(Date.now() - Date.parse(health.lastHeartbeatAt!)).toBeLessThan(800)
      await runtime.terminate(beating.agentId, { force: true })
      await runtime.terminate(silent.agentId, { force: true })
    } finally {
      await close()
    }
  })
})
