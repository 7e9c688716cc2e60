// The interpreter on effect/workflow's in-memory engine. Retries in simulated time: the graph interpreter on effect/workflow's in-memory engine under a
// TestClock, with a scripted agent step that fails twice. The tries start exactly at the backoff
// schedule's times (1 s, then 2 s later), and no earlier however long the test waits in real time.
import { describe, expect, it } from "@effect/vitest"
import { Clock, Effect, Fiber, Layer } from "effect"
import { TestClock } from "effect/testing"
import * as WorkflowEngine from "effect/workflow/WorkflowEngine"
import type { WorkflowRun } from "../../src/domain/WorkflowRun.ts"
import { GraphWorkflow, graphWorkflowLayer } from "../../src/workflows/graphWorkflow.ts"
import { WorkflowHooks, type WorkflowHooksShape } from "../../src/workflows/WorkflowHooks.ts"

const run: WorkflowRun = {
  workflowId: "00000000-0000-4000-8000-00000000c10c",
  name: "retry-clock",
  state: "pending",
  graph: { name: "retry-clock", nodes: [{ id: "flaky", kind: "agent", agent: "flaky", input: "go", retry: { attempts: 3, backoffSeconds: 1 } }] },
  input: null,
  origin: "embedding",
  nodes: { flaky: { state: "pending", attempts: 0 } },
  createdAt: "2100-01-01T00:00:00.000Z",
  updatedAt: "2100-01-01T00:00:00.000Z"
}

// Lets the engine's fibers run to their next wait (no time passes on the TestClock).
const settle = Effect.gen(function* () {
  for (let i = 0; i < 2000; i++) yield* Effect.yieldNow
})

describe("retries in simulated time", () => {
  it.effect("waits the backoff between tries on the clock, and ends with the try that succeeds", () =>
    Effect.gen(function* () {
      const tries: Array<number> = []
      const events: Array<string> = []
      let finished: unknown
      const hooks: WorkflowHooksShape = {
        run: () => Effect.succeed(run),
        started: () => Effect.void,
        node: (_id, node, patch, event) => Effect.sync(() => events.push(`${node}:${event?.type ?? patch.state}`)),
        waiting: () => Effect.void,
        timedOut: () => Effect.void,
        finished: (_id, exit) => Effect.sync(() => (finished = exit._tag)),
        shuttingDown: () => false,
        maxParallelSteps: 4,
        child: () => Effect.die("no sub-workflows here"),
        agentStep: () =>
          Effect.gen(function* () {
            tries.push(yield* Clock.currentTimeMillis)
            if (tries.length < 3) return yield* Effect.fail({ code: "E2029" as const, message: `try ${tries.length} failed`, retryable: true })
            return { text: "third time lucky", agentId: "a1" }
          })
      }
      const engine = graphWorkflowLayer.pipe(Layer.provideMerge(WorkflowEngine.layerMemory), Layer.provide(Layer.succeed(WorkflowHooks, hooks)))
      yield* Effect.gen(function* () {
        const fiber = yield* Effect.forkChild(GraphWorkflow.execute({ workflowId: run.workflowId }))
        yield* settle
        expect(tries).toEqual([0])
        yield* TestClock.adjust("999 millis")
        yield* settle
        expect(tries).toEqual([0])
        yield* TestClock.adjust("1 millis")
        yield* settle
        expect(tries).toEqual([0, 1000])
        yield* TestClock.adjust("1999 millis")
        yield* settle
        expect(tries).toEqual([0, 1000])
        yield* TestClock.adjust("1 millis")
        const output = yield* Fiber.join(fiber)
        expect(tries).toEqual([0, 1000, 3000])
        expect(output).toEqual({ flaky: { text: "third time lucky", agentId: "a1" } })
      }).pipe(Effect.provide(engine))
      expect(events.filter((e) => e.includes("retry"))).toEqual(["flaky:workflow.node.retry", "flaky:workflow.node.retry"])
      expect(events.at(-1)).toBe("flaky:workflow.node.completed")
      expect(finished).toBe("Success")
    }).pipe(Effect.provide(TestClock.layer())))

  it.live("runs a wide fan-out's agent steps at most maxParallelSteps at a time, and all of them", () =>
    Effect.gen(function* () {
      let running = 0
      let most = 0
      const width = 12
      const fanOut: WorkflowRun = {
        ...run,
        workflowId: "00000000-0000-4000-8000-00000000fa17",
        graph: { name: "fan-out", nodes: Array.from({ length: width }, (_, i) => ({ id: `n${i}`, kind: "agent" as const, agent: "w", input: i })) },
        nodes: {}
      }
      const hooks: WorkflowHooksShape = {
        run: () => Effect.succeed(fanOut),
        started: () => Effect.void,
        node: () => Effect.void,
        waiting: () => Effect.void,
        timedOut: () => Effect.void,
        finished: () => Effect.void,
        shuttingDown: () => false,
        maxParallelSteps: 3,
        child: () => Effect.die("no sub-workflows here"),
        agentStep: (request) =>
          Effect.gen(function* () {
            running += 1
            most = Math.max(most, running)
            yield* Effect.sleep("20 millis")
            running -= 1
            return { text: String(request.input), agentId: "a" }
          })
      }
      const engine = graphWorkflowLayer.pipe(Layer.provideMerge(WorkflowEngine.layerMemory), Layer.provide(Layer.succeed(WorkflowHooks, hooks)))
      const output = (yield* GraphWorkflow.execute({ workflowId: fanOut.workflowId }).pipe(Effect.provide(engine))) as Record<string, { text: string }>
      expect(Object.keys(output)).toHaveLength(width)
      expect(most).toBe(3)
    }))
})

