// The agent loop with the scripted model and the in-memory sandbox: tool calls run in the sandbox
// and are fed back, failures become coded events, budgets refuse calls, cancellation stops tools.
import { Effect, Fiber, Layer, Stream } from "effect"
import { TestClock } from "effect/testing"
import { describe, expect, it } from "@effect/vitest"
import { ModelRequestFailed, ModelRequestRejected } from "../../src/domain/Errors.ts"
import { type ExecutionEvent, run } from "../../src/execution/AgentLoop.ts"
import * as ScriptedModel from "../../src/execution/providers/ScriptedModel.ts"
import { TokenBudget, layerMemory as budgetMemory } from "../../src/execution/TokenBudget.ts"
import type { AgentTool } from "../../src/execution/tools/AgentTool.ts"
import { makeSandboxTools } from "../../src/execution/tools/SandboxTools.ts"
import { makeToolkit } from "../../src/execution/tools/Toolkit.ts"
import { ModelGateway } from "../../src/services/ModelGateway.ts"
import { layerMemory } from "../../src/services/SandboxBackend.ts"
import { collect, ofType, startedSandbox } from "./support.ts"

const model = { name: "scripted-1" }

const withModel = (scripted: ScriptedModel.ScriptedModel) =>
  Layer.mergeAll(Layer.succeed(ModelGateway, scripted.gateway), budgetMemory, layerMemory())

describe("AgentLoop", () => {
  it.effect("runs tool calls in the sandbox, feeds the results back and ends with the final answer", () => {
    const scripted = ScriptedModel.make([
      { text: "Writing the file.", toolCalls: [{ name: "write_file", arguments: { path: "notes/a.txt", content: "hello" } }] },
      { toolCalls: [{ name: "read_file", arguments: { path: "/workspace/notes/a.txt" } }] },
      { text: "The file says hello." }
    ])
    return Effect.gen(function*() {
      const { backend, sandboxId } = yield* startedSandbox("agent-loop-1", ["l02-echo"])
      const tools = makeToolkit(makeSandboxTools(backend, { sandboxId, dialect: "memory" }))
      const events = yield* collect(run("write and read a file", { tools, model, maxSteps: 5 }))
      const results = ofType(events, "tool.result")
      expect(results.map((r) => [r.name, r.isError, r.content])).toEqual([
        ["write_file", false, "wrote 5 bytes to /workspace/notes/a.txt"],
        ["read_file", false, "hello"]
      ])
      const done = events[events.length - 1] as Extract<ExecutionEvent, { type: "done" }>
      expect(done.type).toBe("done")
      expect(done.reason).toBe("final")
      expect(done.text).toBe("The file says hello.")
      expect(ofType(events, "text.delta").map((e) => e.text).join("")).toBe("Writing the file.The file says hello.")
      // The third request carried both tool results back to the model.
      const third = scripted.requests()[2]
      expect(third?.messages.filter((m) => m.role === "tool").map((m) => m.content)).toEqual([
        "wrote 5 bytes to /workspace/notes/a.txt",
        "hello"
      ])
      expect(done.conversation.steps).toBe(3)
      expect(done.conversation.pendingToolCalls).toEqual([])
      expect(done.conversation.usage.inputTokens).toBeGreaterThan(0)
      // The conversation is plain JSON.
      expect(JSON.parse(JSON.stringify(done.conversation))).toEqual(done.conversation)
    }).pipe(Effect.scoped, Effect.provide(withModel(scripted)))
  })

  it.effect("returns tool errors to the model as results: unknown tool, bad input, path escape, failing command", () => {
    const scripted = ScriptedModel.make([
      {
        toolCalls: [
          { name: "delete_everything", arguments: {} },
          { name: "read_file", arguments: { file: "x" } },
          { name: "read_file", arguments: { path: "../etc/passwd" } },
          { name: "read_file", arguments: { path: "/etc/passwd" } },
          { name: "read_file", arguments: { path: "missing.txt" } },
          { name: "shell", arguments: { command: "l02-print out err 3" } }
        ]
      },
      { text: "done" }
    ])
    return Effect.gen(function*() {
      const { backend, sandboxId } = yield* startedSandbox("agent-loop-2", ["l02-echo"])
      const tools = makeToolkit(makeSandboxTools(backend, { sandboxId, dialect: "memory" }))
      const events = yield* collect(run("try things", { tools, model, maxSteps: 3 }))
      const results = ofType(events, "tool.result")
      expect(results.map((r) => r.error?.code)).toEqual(["E2088", "E2087", "E2087", "E2087", undefined, undefined])
      expect(results.every((r) => r.isError)).toBe(true)
      expect(results[1]?.content).toMatch(/must have required property 'path'/)
      expect(results[4]?.content).toMatch(/no such file/)
      expect(results[5]?.content).toBe("exit code 3\n--- stdout ---\nout\n--- stderr ---\nerr")
      expect(events[events.length - 1]).toMatchObject({ type: "done", reason: "final", text: "done" })
    }).pipe(Effect.scoped, Effect.provide(withModel(scripted)))
  })

  it.effect("offers and runs only allowlisted tools", () => {
    const scripted = ScriptedModel.make([{ toolCalls: [{ name: "shell", arguments: { command: "l02-print hi" } }] }, { text: "ok" }])
    return Effect.gen(function*() {
      const { backend, sandboxId } = yield* startedSandbox("agent-loop-3", ["l02-echo"])
      const tools = makeToolkit(makeSandboxTools(backend, { sandboxId, dialect: "memory" }), ["read_file"])
      const events = yield* collect(run("go", { tools, model, maxSteps: 3 }))
      expect(scripted.requests()[0]?.tools.map((t) => t.name)).toEqual(["read_file"])
      expect(ofType(events, "tool.result")[0]?.error?.code).toBe("E2088")
    }).pipe(Effect.scoped, Effect.provide(withModel(scripted)))
  })

  it.effect("a tool that times out in the sandbox is reported as E2086 and the loop goes on", () => {
    const scripted = ScriptedModel.make([
      { toolCalls: [{ name: "shell", arguments: { command: "l02-sleep 5", timeoutSeconds: 1 } }] },
      { text: "gave up" }
    ])
    return Effect.gen(function*() {
      const { backend, sandboxId } = yield* startedSandbox("agent-loop-4", ["l02-echo"])
      const tools = makeToolkit(makeSandboxTools(backend, { sandboxId, dialect: "memory" }))
      const fiber = yield* Effect.forkChild(collect(run("sleep", { tools, model, maxSteps: 3 })))
      yield* TestClock.adjust("2 seconds")
      const events = yield* Fiber.join(fiber)
      const result = ofType(events, "tool.result")[0]
      expect(result?.error?.code).toBe("E2086")
      expect(result?.content).toMatch(/timed out after 1000 ms/)
      expect(events[events.length - 1]).toMatchObject({ type: "done", reason: "final", text: "gave up" })
    }).pipe(Effect.scoped, Effect.provide(withModel(scripted)))
  })

  it.effect("a hanging tool is cancelled by the loop's tool timeout", () => {
    const scripted = ScriptedModel.make([{ toolCalls: [{ name: "hang", arguments: {} }] }, { text: "next" }])
    let interrupted = false
    const hang: AgentTool = {
      definition: { name: "hang", description: "never returns", parameters: { type: "object" } },
      run: () => Effect.never.pipe(Effect.onInterrupt(() => Effect.sync(() => { interrupted = true })))
    }
    return Effect.gen(function*() {
      const fiber = yield* Effect.forkChild(collect(run("go", { tools: makeToolkit([hang]), model, maxSteps: 3, toolTimeoutMs: 500 })))
      yield* TestClock.adjust("1 second")
      const events = yield* Fiber.join(fiber)
      expect(ofType(events, "tool.result")[0]?.error?.code).toBe("E2086")
      expect(interrupted).toBe(true)
    }).pipe(Effect.provide(withModel(scripted)))
  })

  it.effect("a turn failing mid-stream with a retryable code is retried once; a rejected one ends the run", () => {
    const scripted = ScriptedModel.make([
      { text: "partial", fail: new ModelRequestFailed({ message: "stream broke" }) },
      { text: "whole answer" },
      { fail: new ModelRequestRejected({ message: "bad key", status: 401 }) }
    ])
    return Effect.gen(function*() {
      const events = yield* collect(run("hi", { tools: makeToolkit([]), model, maxSteps: 3 }))
      expect(ofType(events, "turn.retry").map((e) => e.error.code)).toEqual(["E2080"])
      expect(events[events.length - 1]).toMatchObject({ type: "done", reason: "final", text: "whole answer" })
      const done = events[events.length - 1] as Extract<ExecutionEvent, { type: "done" }>
      const second = yield* collect(run("again", { tools: makeToolkit([]), model, maxSteps: 3, conversation: done.conversation }))
      expect(ofType(second, "error").map((e) => e.error)).toEqual([{ code: "E2081", message: "bad key", retryable: false }])
      expect(second[second.length - 1]).toMatchObject({ type: "done", reason: "error" })
      // The continued conversation carried the first exchange.
      expect(scripted.requests()[2]?.messages.map((m) => m.content)).toEqual(["hi", "whole answer", "again"])
    }).pipe(Effect.provide(withModel(scripted)))
  })

  it.effect("stops at maxSteps with E2089", () => {
    const loopTurn = { toolCalls: [{ name: "shell", arguments: { command: "l02-print x" } }] }
    const scripted = ScriptedModel.make([loopTurn, loopTurn])
    return Effect.gen(function*() {
      const { backend, sandboxId } = yield* startedSandbox("agent-loop-5", ["l02-echo"])
      const tools = makeToolkit(makeSandboxTools(backend, { sandboxId, dialect: "memory" }))
      const events = yield* collect(run("loop", { tools, model, maxSteps: 2 }))
      expect(ofType(events, "error")[0]?.error.code).toBe("E2089")
      expect(events[events.length - 1]).toMatchObject({ type: "done", reason: "max_steps" })
      expect(ofType(events, "tool.result")).toHaveLength(2)
    }).pipe(Effect.scoped, Effect.provide(withModel(scripted)))
  })

  it.effect("refuses a call that would exceed the hourly token budget before sending it, and allows it once the window slid", () => {
    const turn = { text: "ok", usage: { inputTokens: 600, outputTokens: 100 } }
    const scripted = ScriptedModel.make([turn, turn])
    return Effect.gen(function*() {
      const budget = { agentId: "agent-budget", tokensPerHour: 1000 }
      const first = yield* collect(run("one", { tools: makeToolkit([]), model, maxSteps: 1, budget }))
      expect(first[first.length - 1]).toMatchObject({ type: "done", reason: "final" })
      expect(yield* TokenBudget.use((b) => b.used("agent-budget"))).toBe(700)
      yield* TestClock.adjust("30 minutes")
      const second = yield* collect(run("two", { tools: makeToolkit([]), model: { ...model, maxTokens: 400 }, maxSteps: 1, budget }))
      const error = ofType(second, "error")[0]?.error
      expect(error?.code).toBe("E2084")
      expect(error?.retryable).toBe(true)
      expect(scripted.requests()).toHaveLength(1)
      yield* TestClock.adjust("31 minutes")
      const third = yield* collect(run("two", { tools: makeToolkit([]), model: { ...model, maxTokens: 400 }, maxSteps: 1, budget }))
      expect(third[third.length - 1]).toMatchObject({ type: "done", reason: "final" })
      expect(scripted.requests()).toHaveLength(2)
    }).pipe(Effect.provide(withModel(scripted)))
  })

  it.effect("interrupting the stream mid-turn stops the model and the running tool", () => {
    let toolInterrupted = false
    const slow: AgentTool = {
      definition: { name: "slow", description: "takes long", parameters: { type: "object" } },
      run: () => Effect.never.pipe(Effect.onInterrupt(() => Effect.sync(() => { toolInterrupted = true })))
    }
    const scripted = ScriptedModel.make([{ text: "a b c d e f g h", delayMs: 100, toolCalls: [{ name: "slow", arguments: {} }] }])
    return Effect.gen(function*() {
      const seen: Array<string> = []
      const fiber = yield* Effect.forkChild(
        run("go", { tools: makeToolkit([slow]), model, maxSteps: 2 }).pipe(
          Stream.runForEach((e) => Effect.sync(() => seen.push(e.type)))
        )
      )
      yield* TestClock.adjust("250 millis")
      const midTurn = seen.length
      expect(midTurn).toBeGreaterThan(0)
      expect(seen.every((t) => t === "text.delta")).toBe(true)
      yield* TestClock.adjust("2 seconds")
      expect(seen).toContain("tool.call")
      yield* Fiber.interrupt(fiber)
      expect(toolInterrupted).toBe(true)
      expect(seen).not.toContain("done")
    }).pipe(Effect.provide(withModel(scripted)))
  })

  it.effect("aborting the signal ends the stream without a done event", () => {
    const scripted = ScriptedModel.make([{ text: "one two three four", delayMs: 100 }])
    return Effect.gen(function*() {
      const controller = new AbortController()
      const fiber = yield* Effect.forkChild(collect(run("go", { tools: makeToolkit([]), model, maxSteps: 1, signal: controller.signal })))
      yield* TestClock.adjust("150 millis")
      controller.abort()
      yield* TestClock.adjust("1 second")
      const events = yield* Fiber.join(fiber)
      expect(events.length).toBeLessThan(4)
      expect(events.some((e) => e.type === "done")).toBe(false)
    }).pipe(Effect.provide(withModel(scripted)))
  })

  it.effect("keeps a long conversation within the model's window: the task and the latest turns go to the model", () => {
    const scripted = ScriptedModel.make([{ text: "short answer" }])
    const history = Array.from({ length: 20 }, (_, i) => [
      { role: "user" as const, content: `question ${i} ${"words ".repeat(40)}` },
      { role: "assistant" as const, content: `answer ${i} ${"words ".repeat(40)}` }
    ]).flat()
    return Effect.gen(function*() {
      const conversation = { messages: history, pendingToolCalls: [], usage: { inputTokens: 0, outputTokens: 0 }, steps: 20 }
      const events = yield* collect(
        run("the latest question", { tools: makeToolkit([]), model: { name: "gpt-4o", system: "be brief", contextWindow: 600, maxTokens: 100 }, maxSteps: 1, conversation })
      )
      const sent = scripted.requests()[0]?.messages ?? []
      expect(sent[0]).toEqual(history[0])
      expect(sent[1]?.content).toMatch(/earlier messages were left out/)
      expect(sent.at(-1)).toEqual({ role: "user", content: "the latest question" })
      expect(sent.length).toBeLessThan(history.length)
      // The persisted conversation keeps everything; only the request was trimmed.
      const done = events.at(-1) as Extract<ExecutionEvent, { type: "done" }>
      expect(done.conversation.messages).toHaveLength(history.length + 2)
    }).pipe(Effect.provide(withModel(scripted)))
  })
})
