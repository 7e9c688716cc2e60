import { describe, expect, it } from "vitest"
import { createActor, SimulatedClock } from "xstate"
import { backoffDelay, type FleetEmitted, fleetMachine, type FleetPolicy } from "../../machines/fleetMachine.ts"

const policy: FleetPolicy = {
  maxRestarts: 3,
  windowMs: 60_000,
  backoffInitialMs: 1000,
  backoffFactor: 2,
  backoffMaxMs: 5000,
  backoffJitter: 0,
  idleSuspendMs: 0
}
const error = { code: "E2027" as const, message: "exited", retryable: true }

const start = (p: Partial<FleetPolicy> = {}) => {
  const clock = new SimulatedClock()
  const fleet = createActor(fleetMachine, { input: { policy: { ...policy, ...p } }, clock }).start()
  const emitted: Array<FleetEmitted> = []
  fleet.on("*", (e) => emitted.push(e as FleetEmitted))
  return { clock, fleet, emitted }
}

describe("fleet machine", () => {
  it("computes exponential backoff capped at the maximum", () => {
    expect([1, 2, 3, 4, 5].map((n) => backoffDelay(policy, n))).toEqual([1000, 2000, 4000, 5000, 5000])
  })

  it("restarts a failed agent after the backoff delay, not before", () => {
    const { clock, fleet, emitted } = start()
    fleet.send({ type: "fleet.agent.failed", agentId: "a", at: 0, error })
    clock.increment(999)
    expect(emitted).toEqual([])
    clock.increment(1)
    expect(emitted).toEqual([{ type: "fleet.restart", agentId: "a", attempt: 1 }])
  })

  it("doubles the delay on each failure within the window, then escalates with E2025", () => {
    const { clock, fleet, emitted } = start()
    const delays: Array<number> = []
    let t = 0
    for (let attempt = 1; attempt <= 3; attempt++) {
      fleet.send({ type: "fleet.agent.failed", agentId: "a", at: t, error })
      let waited = 0
      while (emitted.length < attempt) {
        clock.increment(100)
        waited += 100
      }
      delays.push(waited)
      t += waited + 10
    }
    expect(delays).toEqual([1000, 2000, 4000])
    fleet.send({ type: "fleet.agent.failed", agentId: "a", at: t, error })
    expect(emitted.at(-1)).toMatchObject({ type: "fleet.escalate", agentId: "a", error: { code: "E2025" } })
    expect(fleet.getSnapshot().context.escalationsTotal).toBe(1)
  })

  it("forgets failures older than the window", () => {
    const { clock, fleet, emitted } = start({ maxRestarts: 1 })
    fleet.send({ type: "fleet.agent.failed", agentId: "a", at: 0, error })
    clock.increment(1000)
    fleet.send({ type: "fleet.agent.failed", agentId: "a", at: 61_001, error })
    clock.increment(1000)
    expect(emitted.map((e) => e.type)).toEqual(["fleet.restart", "fleet.restart"])
  })

  it("adds jitter from the random number carried in the event", () => {
    const { clock, fleet, emitted } = start({ backoffJitter: 0.5 })
    fleet.send({ type: "fleet.agent.failed", agentId: "a", at: 0, error, random: 0.5 })
    clock.increment(1249)
    expect(emitted).toEqual([])
    clock.increment(1)
    expect(emitted).toHaveLength(1)
  })

  it("cancels a pending restart when the agent is removed", () => {
    const { clock, fleet, emitted } = start()
    fleet.send({ type: "fleet.agent.failed", agentId: "a", at: 0, error })
    fleet.send({ type: "fleet.agent.removed", agentId: "a" })
    clock.increment(10_000)
    expect(emitted).toEqual([])
    expect(fleet.getSnapshot().context.pendingRestarts).toEqual({})
  })

  it("asks to suspend an agent idle for idleSuspendMs, unless it became active", () => {
    const { clock, fleet, emitted } = start({ idleSuspendMs: 300_000 })
    fleet.send({ type: "fleet.agent.idle", agentId: "a" })
    fleet.send({ type: "fleet.agent.idle", agentId: "b" })
    clock.increment(200_000)
    fleet.send({ type: "fleet.agent.active", agentId: "b" })
    clock.increment(100_000)
    expect(emitted).toEqual([{ type: "fleet.suspendIdle", agentId: "a" }])
  })

  it("keeps supervising many agents without holding them as children", () => {
    const { fleet } = start({ idleSuspendMs: 1000 })
    for (let i = 0; i < 10_000; i++) fleet.send({ type: "fleet.agent.idle", agentId: `a${i}` })
    expect(Object.keys(fleet.getSnapshot().children)).toHaveLength(0)
  })
})
