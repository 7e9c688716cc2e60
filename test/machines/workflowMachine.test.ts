// The workflow machine: its guards as examples, and properties over random event sequences: a final
// state accepts nothing, `waiting` lists nodes only in the waiting state, a signal is accepted exactly
// when its node waits, and `can` agrees with what sending does.
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { createActor } from "xstate"
import { finalWorkflowStates } from "../../src/domain/WorkflowRun.ts"
import { type WorkflowEvent, workflowMachine } from "../../machines/workflowMachine.ts"

const error = { code: "E2033" as const, message: "node b failed", retryable: false }
const start = () => createActor(workflowMachine, { input: { workflowId: "w1", name: "pipeline" } }).start()

const nodes = ["a", "b", "c"]
const eventArb: fc.Arbitrary<WorkflowEvent> = fc.oneof(
  fc.constant({ type: "workflow.start" } as const),
  fc.constantFrom(...nodes).map((node) => ({ type: "workflow.waiting", node }) as const),
  fc.constantFrom(...nodes).map((node) => ({ type: "workflow.signal", node }) as const),
  fc.constantFrom(...nodes).map((node) => ({ type: "workflow.timedOut", node }) as const),
  fc.constant({ type: "workflow.completed", output: { done: true } } as const),
  fc.constant({ type: "workflow.failed", error } as const),
  fc.constant({ type: "workflow.cancel", reason: "test" } as const),
  fc.constant({ type: "workflow.cancelled" } as const)
)

describe("workflow machine", () => {
  it("runs, waits for two approvals, runs again once both are signalled, and completes", () => {
    const actor = start()
    actor.send({ type: "workflow.start" })
    actor.send({ type: "workflow.waiting", node: "a" })
    actor.send({ type: "workflow.waiting", node: "b" })
    expect(actor.getSnapshot().value).toBe("waiting")
    expect(actor.getSnapshot().can({ type: "workflow.signal", node: "c" })).toBe(false)
    actor.send({ type: "workflow.signal", node: "a" })
    expect(actor.getSnapshot().value).toBe("waiting")
    expect(actor.getSnapshot().context.waiting).toEqual(["b"])
    actor.send({ type: "workflow.signal", node: "b" })
    expect(actor.getSnapshot().value).toBe("running")
    actor.send({ type: "workflow.completed", output: 42 })
    expect(actor.getSnapshot().value).toBe("completed")
    expect(actor.getSnapshot().context.output).toBe(42)
  })

  it("refuses a signal before the run waits and a cancel after it ended", () => {
    const actor = start()
    actor.send({ type: "workflow.start" })
    expect(actor.getSnapshot().can({ type: "workflow.signal", node: "a" })).toBe(false)
    actor.send({ type: "workflow.failed", error })
    expect(actor.getSnapshot().value).toBe("failed")
    expect(actor.getSnapshot().context.error).toEqual(error)
    expect(actor.getSnapshot().can({ type: "workflow.cancel" })).toBe(false)
  })

  it("goes through cancelling to cancelled, keeping the reason", () => {
    const actor = start()
    actor.send({ type: "workflow.start" })
    actor.send({ type: "workflow.waiting", node: "a" })
    actor.send({ type: "workflow.cancel", reason: "no longer needed" })
    expect(actor.getSnapshot().value).toBe("cancelling")
    expect(actor.getSnapshot().context).toMatchObject({ waiting: [], cancelReason: "no longer needed" })
    expect(actor.getSnapshot().can({ type: "workflow.signal", node: "a" })).toBe(false)
    actor.send({ type: "workflow.cancelled" })
    expect(actor.getSnapshot().value).toBe("cancelled")
  })

  it("holds its invariants over random event sequences", () => {
    fc.assert(
      fc.property(fc.array(eventArb, { maxLength: 40 }), (events) => {
        const actor = start()
        for (const event of events) {
          const before = actor.getSnapshot()
          const accepted = before.can(event)
          const wasFinal = finalWorkflowStates.includes(before.value as never)
          if (wasFinal) {
            // A final actor has stopped: nothing is accepted (and the runtime sends it nothing).
            expect(accepted).toBe(false)
            continue
          }
          if (event.type === "workflow.signal" || event.type === "workflow.timedOut") {
            expect(accepted).toBe(before.value === "waiting" && before.context.waiting.includes(event.node))
          }
          actor.send(event)
          const after = actor.getSnapshot()
          // An event the state does not accept changes nothing.
          if (!accepted) expect(after.value).toBe(before.value)
          if (!accepted) expect(after.context).toEqual(before.context)
          expect(after.value === "waiting").toBe(after.context.waiting.length > 0)
          expect(new Set(after.context.waiting).size).toBe(after.context.waiting.length)
          if (after.value === "completed") expect(after.context.output).toEqual({ done: true })
          if (after.value === "failed") expect(after.context.error).toEqual(error)
        }
      }),
      { numRuns: 500 }
    )
  })

  it("restores from its persisted snapshot in the state it was", () => {
    const actor = start()
    actor.send({ type: "workflow.start" })
    actor.send({ type: "workflow.waiting", node: "b" })
    const restored = createActor(workflowMachine, { input: { workflowId: "w1", name: "pipeline" }, snapshot: actor.getPersistedSnapshot() }).start()
    expect(restored.getSnapshot().value).toBe("waiting")
    expect(restored.getSnapshot().can({ type: "workflow.signal", node: "b" })).toBe(true)
  })
})
