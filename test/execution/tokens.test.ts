// Token counting with the real tokenizers, context window fitting that keeps the system prompt,
// the task and the latest turns (never splitting a tool call from its result), and the sliding
// one-hour token budget.
import { toErrorData } from "../../src/domain/Errors.ts"
import fc from "fast-check"
import { Effect } from "effect"
import { TestClock } from "effect/testing"
import { describe, expect, it } from "@effect/vitest"
import { fitToWindow } from "../../src/execution/ContextWindow.ts"
import { makeMemory, windowMs } from "../../src/execution/TokenBudget.ts"
import { counterFor, encodingFor, estimateTokens, messageTokens } from "../../src/execution/TokenCounter.ts"
import type { ChatMessage } from "../../src/services/ModelGateway.ts"

describe("TokenCounter", () => {
  it("picks the encoding of the model", () => {
    expect(encodingFor("gpt-4o-mini")).toBe("o200k_base")
    expect(encodingFor("openai/gpt-4.1")).toBe("o200k_base")
    expect(encodingFor("o3-mini")).toBe("o200k_base")
    expect(encodingFor("gpt-4-turbo")).toBe("cl100k_base")
    expect(encodingFor("gpt-3.5-turbo")).toBe("cl100k_base")
    expect(encodingFor("claude-sonnet-4-5")).toBe("estimate")
  })

  it.effect("counts with the real tokenizers (known counts) and estimates otherwise", () =>
    Effect.gen(function*() {
      const o200k = yield* counterFor("gpt-4o")
      const cl100k = yield* counterFor("gpt-4")
      expect(o200k("hello world")).toBe(2)
      expect(cl100k("hello world")).toBe(2)
      // The encodings differ: the same text has different counts.
      const text = "Die Straßenbahn fährt über die Brücke — 東京タワー"
      expect(o200k(text)).not.toBe(cl100k(text))
      const estimate = yield* counterFor("claude-sonnet-4-5")
      expect(estimate("x".repeat(35))).toBe(10)
      expect(estimateTokens("")).toBe(0)
    }))
})

const user = (content: string): ChatMessage => ({ role: "user", content })
const assistant = (content: string, calls: Array<string> = []): ChatMessage => ({
  role: "assistant",
  content,
  ...(calls.length === 0 ? {} : { toolCalls: calls.map((id) => ({ id, name: "shell", arguments: "{}" })) })
})
const result = (id: string, content: string): ChatMessage => ({ role: "tool", toolCallId: id, name: "shell", content })
// One token per character keeps the arithmetic of these tests obvious.
const perChar = (text: string) => text.length

describe("fitToWindow", () => {
  const conversation: Array<ChatMessage> = [
    user("the task ".repeat(5)),
    assistant("a1", ["c1"]),
    result("c1", "r".repeat(100)),
    assistant("a2", ["c2"]),
    result("c2", "r".repeat(100)),
    user("latest question")
  ]

  it.effect("leaves a conversation that fits untouched", () =>
    Effect.gen(function*() {
      const fitted = yield* fitToWindow(perChar, { system: "sys", tools: [], messages: conversation }, { contextWindow: 10_000, reserveOutput: 100, policy: { kind: "drop" } })
      expect(fitted).toEqual({ messages: conversation, dropped: 0 })
    }))

  it.effect("drops the oldest turns after the task, with a note, keeping tool calls with their results", () =>
    Effect.gen(function*() {
      const fitted = yield* fitToWindow(perChar, { system: "sys", tools: [], messages: conversation }, { contextWindow: 320, reserveOutput: 50, policy: { kind: "drop" } })
      expect(fitted.dropped).toBe(2)
      expect(fitted.messages[0]).toEqual(conversation[0])
      expect(fitted.messages[1]?.content).toMatch(/2 earlier messages were left out/)
      expect(fitted.messages.slice(2)).toEqual(conversation.slice(3))
      // Property: no tool result without the assistant message that called it.
      const calls = new Set(fitted.messages.flatMap((m) => (m.role === "assistant" ? (m.toolCalls ?? []).map((c) => c.id) : [])))
      for (const m of fitted.messages) if (m.role === "tool") expect(calls.has(m.toolCallId)).toBe(true)
    }))

  it.effect("summarises the dropped turns when a summariser is configured", () =>
    Effect.gen(function*() {
      const fitted = yield* fitToWindow(perChar, { system: "sys", tools: [], messages: conversation }, {
        contextWindow: 320,
        reserveOutput: 50,
        policy: { kind: "summarise", summarise: (dropped) => Effect.succeed(`ran ${dropped.length} steps`) }
      })
      expect(fitted.messages[1]?.content).toBe("[Summary of 2 earlier messages] ran 2 steps")
    }))

  it.effect("fails with E2085 when the system prompt and the latest message alone do not fit", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(
        fitToWindow(perChar, { system: "s".repeat(200), tools: [], messages: conversation }, { contextWindow: 220, reserveOutput: 10, policy: { kind: "drop" } })
      )
      expect(error.code).toBe("E2085")
      expect(error.message).toMatch(/window is 220/)
    }))

  it("property: the fitted conversation fits, ends with the latest message and never orphans a tool result", () =>
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.integer({ min: 1, max: 60 }), fc.integer({ min: 0, max: 2 })), { minLength: 1, maxLength: 12 }),
        fc.integer({ min: 150, max: 800 }),
        (turns, window) => {
          const messages: Array<ChatMessage> = [user("task")]
          turns.forEach(([size, tools], i) => {
            const ids = Array.from({ length: tools }, (_, k) => `c${i}_${k}`)
            messages.push(assistant("a".repeat(size), ids))
            for (const id of ids) messages.push(result(id, "r".repeat(size)))
          })
          messages.push(user("now"))
          const exit = Effect.runSync(Effect.result(fitToWindow(perChar, { tools: [], messages }, { contextWindow: window, reserveOutput: 20, policy: { kind: "drop" } })))
          if (exit._tag === "Failure") return
          const fitted = exit.success.messages
          expect(fitted.at(-1)).toEqual(messages.at(-1))
          expect(fitted.reduce((n, m) => n + messageTokens(perChar, m), 0)).toBeLessThanOrEqual(window - 20)
          const calls = new Set(fitted.flatMap((m) => (m.role === "assistant" ? (m.toolCalls ?? []).map((c) => c.id) : [])))
          for (const m of fitted) if (m.role === "tool") expect(calls.has(m.toolCallId)).toBe(true)
        }
      )
    ))
})

describe("TokenBudget (memory)", () => {
  it.effect("refuses a reservation over the hourly limit with the time until it fits, and frees tokens as the window slides", () =>
    Effect.gen(function*() {
      const budget = yield* makeMemory
      yield* budget.reserve("a", 1000, 400)
      yield* budget.record("a", 400)
      yield* TestClock.adjust("10 minutes")
      yield* budget.record("a", 500)
      const refused = yield* Effect.flip(budget.reserve("a", 1000, 200))
      expect(refused.code).toBe("E2084")
      expect(refused.retryAfterMs).toBe(50 * 60 * 1000)
      // Other agents have their own budgets.
      yield* budget.reserve("b", 1000, 900)
      yield* TestClock.adjust("50 minutes")
      expect(yield* budget.used("a")).toBe(500)
      yield* budget.reserve("a", 1000, 500)
      const never = yield* Effect.flip(budget.reserve("a", 1000, 5000))
      expect(never.retryAfterMs).toBeUndefined()
      expect(never.message).toMatch(/more than its whole budget/)
      // Waiting never makes it fit: not retryable, unlike a call that must wait for the window.
      expect(toErrorData(never).retryable).toBe(false)
      expect(toErrorData(refused).retryable).toBe(true)
    }))

  it.effect("restores persisted usage and drops entries older than the window", () =>
    Effect.gen(function*() {
      yield* TestClock.adjust(windowMs * 2)
      const now = windowMs * 2
      const budget = yield* makeMemory
      yield* budget.restore("a", [{ at: now - windowMs - 1, tokens: 700 }, { at: now - 1000, tokens: 300 }])
      expect(yield* budget.used("a")).toBe(300)
      expect(yield* budget.usage("a")).toEqual([{ at: now - 1000, tokens: 300 }])
    }))
})
