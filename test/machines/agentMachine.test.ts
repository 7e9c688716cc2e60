import { getShortestPaths } from "@xstate/graph"
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { createActor, fromPromise, SimulatedClock } from "xstate"
import { accepts, type AgentEvent, agentMachine, type ProvisionInput } from "../../machines/agentMachine.ts"
import type { ErrorData } from "../../src/domain/ErrorCatalog.ts"

type Outcome = "ok" | "fail"
interface Controls {
  provision: Outcome
  suspend: Outcome
  resume: Outcome
  stop: Outcome
}

// The machine hands the identity to its side effects and never reads it: any JSON-safe value does.
const identity = { sessionId: "s", config: { name: "a" } as never, sandbox: { trustLevel: "TRUSTED" } as never, initialContext: null }
const input = (agentId: string, spawnTimeoutMs: number, graceMs: number) => ({ agent: { agentId, ...identity }, spawnTimeoutMs, graceMs })

const err = (code: ErrorData["code"]): ErrorData => ({ code, message: `${code} injected`, retryable: true })

const testMachine = (controls: Controls) =>
  agentMachine.provide({
    actors: {
      provisionSandbox: fromPromise(async () => {
        if (controls.provision === "fail") throw err("E2022")
        return { sandboxId: "sb-1" }
      }),
      suspendSandbox: fromPromise(async ({ input }) => {
        if (controls.suspend === "fail") throw err("E2023")
        return input.checkpoint ? { checkpointId: "cp-1", sandboxRemoved: true } : { checkpointId: undefined, sandboxRemoved: false }
      }),
      resumeSandbox: fromPromise(async () => {
        if (controls.resume === "fail") throw err("E2024")
        return { sandboxId: "sb-2" }
      }),
      stopSandbox: fromPromise(async () => {
        if (controls.stop === "fail") throw err("E2026")
      })
    }
  })

const settle = () => new Promise((resolve) => setTimeout(resolve, 0))

// ---- the model ----------------------------------------------------------------------------------
type ModelState = "pending" | "running.idle" | "running.busy" | "suspended" | "failed" | "terminated"
interface Model {
  state: ModelState
  escalated: boolean
}

const valueOf = (value: unknown): string =>
  typeof value === "string" ? value : Object.entries(value as Record<string, string>).map(([k, v]) => `${k}.${v}`)[0]!

/** What the model says an event does: undefined = refused. */
const step = (m: Model, e: AgentEvent, c: Controls): Model | undefined => {
  if (m.state === "terminated") return undefined
  if (e.type === "agent.terminate") return { ...m, state: c.stop === "fail" ? "failed" : "terminated" }
  switch (m.state) {
    case "pending":
      return e.type === "agent.spawn" ? { ...m, state: c.provision === "ok" ? "running.idle" : "failed" } : undefined
    case "running.idle":
      if (e.type === "agent.busy") return { ...m, state: "running.busy" }
      if (e.type === "agent.suspend") return { ...m, state: c.suspend === "ok" ? "suspended" : "running.idle" }
      if (e.type === "sandbox.exited") return { ...m, state: "failed" }
      return undefined
    case "running.busy":
      if (e.type === "agent.idle") return { ...m, state: "running.idle" }
      if (e.type === "sandbox.exited") return { ...m, state: "failed" }
      return undefined
    case "suspended":
      if (e.type === "agent.resume") return { ...m, state: c.resume === "ok" ? "running.idle" : "suspended" }
      if (e.type === "sandbox.exited") return { ...m, state: "failed" }
      return undefined
    case "failed":
      if (e.type === "agent.restart" && !m.escalated) return { ...m, state: c.provision === "ok" ? "running.idle" : "failed" }
      if (e.type === "agent.escalate") return { ...m, escalated: true }
      return undefined
  }
}

const eventArb: fc.Arbitrary<AgentEvent> = fc.oneof(
  fc.constant({ type: "agent.spawn" } as const),
  fc.boolean().map((checkpoint) => ({ type: "agent.suspend", checkpoint }) as const),
  fc.constant({ type: "agent.resume" } as const),
  fc.boolean().map((force) => ({ type: "agent.terminate", force }) as const),
  fc.constant({ type: "agent.restart" } as const),
  fc.constant({ type: "agent.escalate", error: err("E2025") } as const),
  fc.constant({ type: "agent.busy" } as const),
  fc.constant({ type: "agent.idle" } as const),
  fc.constant({ type: "sandbox.exited", exitCode: 1, error: err("E2027") } as const)
)
const outcomeArb = fc.constantFrom<Outcome>("ok", "ok", "fail")
const stepArb = fc.record({
  event: eventArb,
  controls: fc.record({ provision: outcomeArb, suspend: outcomeArb, resume: outcomeArb, stop: outcomeArb })
})

describe("agent machine", () => {
  it("agrees with the model on random operation sequences; every refused event changes nothing", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(stepArb, { maxLength: 25 }), async (steps) => {
        const controls: Controls = { provision: "ok", suspend: "ok", resume: "ok", stop: "ok" }
        const actor = createActor(testMachine(controls), {
          input: input("a", 60_000, 60_000),
          clock: new SimulatedClock()
        }).start()
        let model: Model = { state: "pending", escalated: false }
        for (const { event, controls: next } of steps) {
          Object.assign(controls, next)
          const before = actor.getSnapshot()
          const expected = step(model, event, controls)
          expect(accepts(before, event)).toBe(expected !== undefined)
          if (expected === undefined) {
            const persisted = JSON.stringify(actor.getPersistedSnapshot())
            actor.send(event)
            await settle()
            // refused: state, context and persisted snapshot identical
            expect(JSON.stringify(actor.getPersistedSnapshot())).toBe(persisted)
            continue
          }
          actor.send(event)
          await settle()
          await settle()
          expect(valueOf(actor.getSnapshot().value)).toBe(expected.state)
          expect(actor.getSnapshot().context.escalated).toBe(expected.escalated)
          model = expected
        }
        actor.stop()
      }),
      { numRuns: 150 }
    )
  })

  it("records the failing operation's code in lastError", async () => {
    const controls: Controls = { provision: "fail", suspend: "ok", resume: "ok", stop: "ok" }
    const actor = createActor(testMachine(controls), { input: input("a", 1000, 1000) }).start()
    actor.send({ type: "agent.spawn" })
    await settle()
    expect(actor.getSnapshot().value).toBe("failed")
    expect(actor.getSnapshot().context.lastError?.code).toBe("E2022")
    actor.stop()
  })

  it("hands a spawn's warm claim to its first provisioning only, with the agent's identity", async () => {
    const seen: Array<ProvisionInput> = []
    let fail = true
    const actor = createActor(
      agentMachine.provide({
        actors: {
          provisionSandbox: fromPromise<{ readonly sandboxId: string }, ProvisionInput>(async ({ input }) => {
            seen.push(input)
            if (fail) throw err("E2022")
            return { sandboxId: "sb-own" }
          })
        }
      }),
      { input: input("a", 1000, 1000) }
    ).start()
    actor.send({ type: "agent.spawn", claim: { sandboxId: "sb-warm", paused: true } })
    await settle()
    expect(actor.getSnapshot().value).toBe("failed")
    // The failed spawn took the claim with it: the context holds none, and a restart makes its own.
    expect(actor.getSnapshot().context.claim).toBeUndefined()
    fail = false
    actor.send({ type: "agent.restart" })
    await settle()
    expect(seen.map((i) => i.claim)).toEqual([{ sandboxId: "sb-warm", paused: true }, undefined])
    expect(seen[0]!.agent).toEqual({ agentId: "a", ...identity })
    expect(actor.getSnapshot().value).toEqual({ running: "idle" })
    actor.stop()
  })

  it("fails a spawn that exceeds spawn_timeout_seconds with E2022", async () => {
    const clock = new SimulatedClock()
    const actor = createActor(
      agentMachine.provide({ actors: { provisionSandbox: fromPromise<{ readonly sandboxId: string }, ProvisionInput>(() => new Promise(() => {})) } }),
      { input: input("a", 5000, 1000), clock }
    ).start()
    actor.send({ type: "agent.spawn" })
    clock.increment(4999)
    expect(actor.getSnapshot().value).toBe("spawning")
    clock.increment(1)
    expect(actor.getSnapshot().value).toBe("failed")
    expect(actor.getSnapshot().context.lastError).toMatchObject({ code: "E2022" })
    expect(actor.getSnapshot().context.lastError?.message).toContain("spawn_timeout_seconds")
    actor.stop()
  })

  it("terminates gracefully, then forces after the grace period", async () => {
    const clock = new SimulatedClock()
    const calls: Array<boolean> = []
    const actor = createActor(
      agentMachine.provide({
        actors: {
          stopSandbox: fromPromise(async ({ input }) => {
            calls.push(input.force)
            if (!input.force) await new Promise<never>(() => {})
          })
        }
      }),
      { input: input("a", 5000, 3000), clock }
    ).start()
    actor.send({ type: "agent.terminate" })
    await settle()
    expect(actor.getSnapshot().value).toEqual({ terminating: "graceful" })
    clock.increment(3000)
    await settle()
    expect(calls).toEqual([false, true])
    expect(actor.getSnapshot().value).toBe("terminated")
    expect(actor.getSnapshot().status).toBe("done")
  })

  it("reaches every state by a shortest path", () => {
    const done = (id: string, output: unknown) => ({ type: `xstate.done.actor.${id}`, output }) as unknown as AgentEvent
    const paths = getShortestPaths(agentMachine, {
      input: input("a", 1000, 1000),
      events: [
        { type: "agent.spawn" },
        { type: "agent.suspend", checkpoint: false },
        { type: "agent.resume" },
        { type: "agent.terminate", force: false },
        { type: "agent.terminate", force: true },
        { type: "agent.restart" },
        { type: "agent.busy" },
        { type: "agent.idle" },
        { type: "sandbox.exited", exitCode: 1, error: err("E2027") },
        done("provision", { sandboxId: "s" }),
        done("suspend", { checkpointId: undefined, sandboxRemoved: false }),
        done("resume", { sandboxId: "s" }),
        done("stopGraceful", undefined),
        done("stopForced", undefined)
      ],
      serializeState: (s) => JSON.stringify(s.value)
    })
    const reached = new Set(paths.map((p) => valueOf(p.state.value)))
    expect([...reached].sort()).toEqual(
      [
        "failed",
        "pending",
        "resuming",
        "running.busy",
        "running.idle",
        "spawning",
        "suspended",
        "suspending",
        "terminated",
        "terminating.forced",
        "terminating.graceful"
      ].sort()
    )
    const byState = Object.fromEntries(paths.map((p) => [valueOf(p.state.value), p.steps.map((s) => s.event.type)]))
    expect(byState["suspended"]).toEqual(["xstate.init", "agent.spawn", "xstate.done.actor.provision", "agent.suspend", "xstate.done.actor.suspend"])
    expect(byState["terminating.forced"]).toEqual(["xstate.init", "agent.terminate"])
  })
})
