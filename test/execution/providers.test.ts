// The HTTP providers against recorded wire formats served by a local server: streamed text and
// tool-call deltas assembled, usage, request bodies and headers, retries with backoff and
// Retry-After, non-retryable failures at once, timeouts, broken streams and cancellation.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Effect, Fiber, Layer, Redacted, Stream } from "effect"
import { describe, expect, it } from "@effect/vitest"
import { run } from "../../src/execution/AgentLoop.ts"
import * as Anthropic from "../../src/execution/providers/Anthropic.ts"
import { type ModelSettings, resolveApiKey } from "../../src/execution/providers/ModelSettings.ts"
import { makeModelGateway } from "../../src/execution/providers/ModelProvider.ts"
import * as OpenAiChat from "../../src/execution/providers/OpenAiChat.ts"
import * as OpenAiResponses from "../../src/execution/providers/OpenAiResponses.ts"
import { layerMemory as budgetMemory } from "../../src/execution/TokenBudget.ts"
import { makeToolkit } from "../../src/execution/tools/Toolkit.ts"
import { ModelGateway, type ModelEvent, type ModelGatewayShape, type ModelRequest } from "../../src/services/ModelGateway.ts"
import { collect, ofType } from "./support.ts"
import { wireServer } from "./wireServer.ts"

const weather = {
  name: "get_weather",
  description: "Current weather of a place.",
  parameters: { type: "object", properties: { location: { type: "string" } }, required: ["location"] }
}

const request: ModelRequest = {
  model: "gpt-4.1",
  system: "You are terse.",
  messages: [
    { role: "user", content: "Weather in Paris?" },
    { role: "assistant", content: "", toolCalls: [{ id: "call_1", name: "get_weather", arguments: "{\"location\":\"Paris\"}" }] },
    { role: "tool", toolCallId: "call_1", name: "get_weather", content: "18°C" },
    { role: "user", content: "And Shanghai?" }
  ],
  tools: [weather],
  maxTokens: 256
}

const fast = { maxRetries: 2, baseDelayMs: 10, maxDelayMs: 50 }

const settings = (baseUrl: string, overrides: Partial<ModelSettings> = {}): ModelSettings => ({
  provider: "openai-chat",
  baseUrl,
  model: "gpt-4.1",
  apiKey: Redacted.make("sk-test-secret"),
  retry: fast,
  ...overrides
})

const events = (gateway: ModelGatewayShape, r: ModelRequest = request) =>
  Effect.map(Stream.runCollect(gateway.stream(r)), (chunk): Array<ModelEvent> => [...chunk])

const textOf = (list: ReadonlyArray<ModelEvent>) =>
  list.flatMap((e) => (e._tag === "TextDelta" ? [e.text] : [])).join("")
const callsOf = (list: ReadonlyArray<ModelEvent>) => list.flatMap((e) => (e._tag === "ToolCall" ? [e.call] : []))
const tail = (list: ReadonlyArray<ModelEvent>) => list.filter((e) => e._tag === "Usage" || e._tag === "Finish")

describe("OpenAI Chat Completions", () => {
  it.live("assembles text and two parallel tool calls from deltas, with usage from the final chunk", () =>
    Effect.gen(function*() {
      const server = yield* wireServer([{ body: { fixture: "openai-chat-tool-calls.sse" } }])
      const gateway = yield* OpenAiChat.make(settings(server.baseUrl, { apiKey: { env: "L02_TEST_OPENAI_KEY" } }))
      const list = yield* events(gateway)
      expect(textOf(list)).toBe("Let me check both cities — ☀️.")
      expect(callsOf(list)).toEqual([
        { id: "call_qOfTGgDrItLORNfC6VwUbyLL", name: "get_weather", arguments: "{\"location\":\"Shanghai\"}" },
        { id: "call_Zl0VbKQmwuOk6YOYq3n6pBbA", name: "get_weather", arguments: "{\"location\": \"Paris\"}" }
      ])
      expect(list.filter((e) => e._tag === "ToolCallDelta").length).toBe(6)
      expect(tail(list)).toEqual([
        { _tag: "Usage", inputTokens: 91, outputTokens: 46 },
        { _tag: "Finish", reason: "tool_calls" }
      ])
      const sent = server.requests[0]
      expect(sent?.path).toBe("/v1/chat/completions")
      expect(sent?.headers.authorization).toBe("Bearer sk-from-env")
      expect(sent?.body).toMatchObject({
        model: "gpt-4.1",
        stream: true,
        stream_options: { include_usage: true },
        max_tokens: 256,
        tools: [{ type: "function", function: weather }],
        messages: [
          { role: "system", content: "You are terse." },
          { role: "user", content: "Weather in Paris?" },
          {
            role: "assistant",
            content: null,
            tool_calls: [{ id: "call_1", type: "function", function: { name: "get_weather", arguments: "{\"location\":\"Paris\"}" } }]
          },
          { role: "tool", tool_call_id: "call_1", content: "18°C" },
          { role: "user", content: "And Shanghai?" }
        ]
      })
    }).pipe(Effect.scoped, withEnv({ L02_TEST_OPENAI_KEY: "sk-from-env" })))

  it.live("streams a plain answer and finishes with stop", () =>
    Effect.gen(function*() {
      const server = yield* wireServer([{ body: { fixture: "openai-chat-text.sse" } }])
      const list = yield* events(yield* OpenAiChat.make(settings(server.baseUrl)))
      expect(textOf(list)).toBe("Why don't skeletons fight each other? They don't have the guts.")
      expect(tail(list)).toEqual([{ _tag: "Usage", inputTokens: 23, outputTokens: 14 }, { _tag: "Finish", reason: "stop" }])
    }).pipe(Effect.scoped))

  it.live("retries 503s with backoff and then succeeds", () =>
    Effect.gen(function*() {
      const server = yield* wireServer([
        { status: 503, body: "{\"error\":{\"message\":\"upstream overloaded\"}}" },
        { status: 502, body: "bad gateway" },
        { body: { fixture: "openai-chat-text.sse" } }
      ])
      const list = yield* events(yield* OpenAiChat.make(settings(server.baseUrl)))
      expect(server.requests).toHaveLength(3)
      expect(tail(list).at(-1)).toEqual({ _tag: "Finish", reason: "stop" })
    }).pipe(Effect.scoped))

  it.live("honours Retry-After on 429 before retrying", () =>
    Effect.gen(function*() {
      const server = yield* wireServer([
        { status: 429, headers: { "retry-after": "1" }, body: "{\"error\":{\"message\":\"Rate limit reached\"}}" },
        { body: { fixture: "openai-chat-text.sse" } }
      ])
      const started = Date.now()
      const list = yield* events(yield* OpenAiChat.make(settings(server.baseUrl)))
      expect(Date.now() - started).toBeGreaterThanOrEqual(950)
      expect(server.requests).toHaveLength(2)
      expect(textOf(list)).toMatch(/skeletons/)
    }).pipe(Effect.scoped))

  it.live("fails with E2082 and the hint when 429 persists, and at once when Retry-After exceeds the cap", () =>
    Effect.gen(function*() {
      const limited = { status: 429, headers: { "retry-after-ms": "20" }, body: "{\"error\":{\"message\":\"Rate limit reached\"}}" }
      const server = yield* wireServer([limited, limited, limited])
      const error = yield* Effect.flip(events(yield* OpenAiChat.make(settings(server.baseUrl))))
      expect(error._tag).toBe("ModelRateLimited")
      expect(error.code).toBe("E2082")
      expect(error._tag === "ModelRateLimited" ? error.retryAfterMs : undefined).toBe(20)
      expect(server.requests).toHaveLength(3)

      const patient = yield* wireServer([{ status: 429, headers: { "retry-after": "3600" }, body: "{}" }])
      const refused = yield* Effect.flip(events(yield* OpenAiChat.make(settings(patient.baseUrl))))
      expect(refused.code).toBe("E2082")
      expect(refused._tag === "ModelRateLimited" ? refused.retryAfterMs : undefined).toBe(3_600_000)
      expect(patient.requests).toHaveLength(1)
    }).pipe(Effect.scoped))

  it.live("fails at once with E2081 on 401, saying what to fix and never echoing the key", () =>
    Effect.gen(function*() {
      const server = yield* wireServer([
        { status: 401, body: "{\"error\":{\"message\":\"Incorrect API key provided: sk-test-***cret.\",\"type\":\"invalid_request_error\",\"code\":\"invalid_api_key\"}}" }
      ])
      const error = yield* Effect.flip(events(yield* OpenAiChat.make(settings(server.baseUrl))))
      expect(error.code).toBe("E2081")
      expect(error.message).toMatch(/401.*Incorrect API key.*check the API key/)
      expect(error.message).not.toContain("sk-test-secret")
      expect(server.requests).toHaveLength(1)
    }).pipe(Effect.scoped))

  it.effect("fails with E2000 naming the variable when the API key variable is missing", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(OpenAiChat.make(settings("http://127.0.0.1:9/v1", { apiKey: { env: "L02_TEST_NO_SUCH_KEY" } })))
      expect(error.code).toBe("E2000")
      expect(error.message).toMatch(/L02_TEST_NO_SUCH_KEY is not set/)
    }))

  it.effect("reads the API key from a secret file, and says which file when it is missing", () =>
    Effect.gen(function*() {
      const dir = mkdtempSync(join(tmpdir(), "l02-key-"))
      writeFileSync(join(dir, "key"), "sk-from-file\n")
      const key = yield* resolveApiKey({ secretFile: join(dir, "key") })
      expect(key === undefined ? undefined : Redacted.value(key)).toBe("sk-from-file")
      expect(String(key)).not.toContain("sk-from-file")
      const error = yield* Effect.flip(resolveApiKey({ secretFile: join(dir, "absent") }))
      expect(error.code).toBe("E2000")
      expect(error.message).toContain(join(dir, "absent"))
      rmSync(dir, { recursive: true, force: true })
    }))

  it.live("retries an answer that does not come within timeoutMs, then fails with E2080", () =>
    Effect.gen(function*() {
      const server = yield* wireServer([{ hangAfter: 0 }, { hangAfter: 0 }])
      const error = yield* Effect.flip(
        events(yield* OpenAiChat.make(settings(server.baseUrl, { timeoutMs: 150, retry: { ...fast, maxRetries: 1 } })))
      )
      expect(error.code).toBe("E2080")
      expect(error.message).toMatch(/no answer within 150 ms/)
      expect(server.requests).toHaveLength(2)
    }).pipe(Effect.scoped))

  it.live("fails with E2080 when the stream goes silent or breaks mid-way", () =>
    Effect.gen(function*() {
      const server = yield* wireServer([
        { body: { fixture: "openai-chat-tool-calls.sse" }, hangAfter: 900 },
        { body: { fixture: "openai-chat-tool-calls.sse" }, cutAfter: 900 }
      ])
      const gateway = yield* OpenAiChat.make(settings(server.baseUrl, { idleTimeoutMs: 200 }))
      const silent = yield* Effect.flip(events(gateway))
      expect(silent.code).toBe("E2080")
      expect(silent.message).toMatch(/silent for 200 ms/)
      const broken = yield* Effect.flip(events(gateway))
      expect(broken.code).toBe("E2080")
      expect(server.requests).toHaveLength(2)
    }).pipe(Effect.scoped))

  it.live("interrupting the stream aborts the HTTP request", () =>
    Effect.gen(function*() {
      const server = yield* wireServer([{ body: { fixture: "openai-chat-tool-calls.sse" }, hangAfter: 900 }])
      const gateway = yield* OpenAiChat.make(settings(server.baseUrl))
      const seen: Array<ModelEvent> = []
      const fiber = yield* Effect.forkChild(Stream.runForEach(gateway.stream(request), (e) => Effect.sync(() => seen.push(e))))
      yield* Effect.sleep("300 millis")
      expect(seen.length).toBeGreaterThan(0)
      yield* Fiber.interrupt(fiber)
      yield* Effect.sleep("100 millis")
      expect(server.abandoned()).toBe(1)
    }).pipe(Effect.scoped))
})

describe("OpenAI Responses", () => {
  it.live("assembles output text and a function call, with usage from response.completed", () =>
    Effect.gen(function*() {
      const server = yield* wireServer([{ body: { fixture: "openai-responses-tool-call.sse" } }])
      const list = yield* events(yield* OpenAiResponses.make(settings(server.baseUrl, { provider: "openai-responses" })))
      expect(textOf(list)).toBe("Checking Paris.")
      expect(callsOf(list)).toEqual([
        { id: "call_DtnEhBvIuyRLu2ubRA1E3M6M", name: "get_weather", arguments: "{\"location\":\"Paris, France\"}" }
      ])
      expect(tail(list)).toEqual([{ _tag: "Usage", inputTokens: 64, outputTokens: 24 }, { _tag: "Finish", reason: "tool_calls" }])
      const sent = server.requests[0]
      expect(sent?.path).toBe("/v1/responses")
      expect(sent?.headers.authorization).toBe("Bearer sk-test-secret")
      expect(sent?.body).toEqual({
        model: "gpt-4.1",
        instructions: "You are terse.",
        input: [
          { role: "user", content: "Weather in Paris?" },
          { type: "function_call", call_id: "call_1", name: "get_weather", arguments: "{\"location\":\"Paris\"}" },
          { type: "function_call_output", call_id: "call_1", output: "18°C" },
          { role: "user", content: "And Shanghai?" }
        ],
        tools: [{ type: "function", ...weather }],
        max_output_tokens: 256,
        store: false,
        stream: true
      })
    }).pipe(Effect.scoped))
})

const sse = (events: ReadonlyArray<Record<string, unknown>>, named = true) =>
  events.map((e) => `${named ? `event: ${String(e.type)}\n` : ""}data: ${JSON.stringify(e)}\n\n`).join("")

describe("stop reasons and failures inside a stream", () => {
  it.live("Responses: response.incomplete for max_output_tokens finishes with length; response.failed is E2080", () =>
    Effect.gen(function*() {
      const server = yield* wireServer([
        {
          body: sse([
            { type: "response.output_text.delta", output_index: 0, delta: "Once upon" },
            { type: "response.incomplete", response: { incomplete_details: { reason: "max_output_tokens" }, usage: { input_tokens: 9, output_tokens: 16 } } }
          ])
        },
        { body: sse([{ type: "response.failed", response: { error: { code: "server_error", message: "The model failed" } } }]) }
      ])
      const gateway = yield* OpenAiResponses.make(settings(server.baseUrl, { provider: "openai-responses" }))
      expect(tail(yield* events(gateway))).toEqual([{ _tag: "Usage", inputTokens: 9, outputTokens: 16 }, { _tag: "Finish", reason: "length" }])
      const failed = yield* Effect.flip(events(gateway))
      expect(failed.code).toBe("E2080")
      expect(failed.message).toMatch(/server_error: The model failed/)
    }).pipe(Effect.scoped))

  it.live("Anthropic: max_tokens finishes with length; Chat: an error object mid-stream and non-JSON tool arguments are E2083", () =>
    Effect.gen(function*() {
      const server = yield* wireServer([
        {
          body: sse([
            { type: "message_start", message: { usage: { input_tokens: 5, output_tokens: 1 } } },
            { type: "content_block_start", index: 0, content_block: { type: "text", text: "" } },
            { type: "content_block_delta", index: 0, delta: { type: "text_delta", text: "Long" } },
            { type: "message_delta", delta: { stop_reason: "max_tokens" }, usage: { output_tokens: 256 } },
            { type: "message_stop" }
          ])
        },
        { body: sse([{ choices: [{ delta: { content: "Hi" } }] }, { error: { message: "Internal error while streaming" } }], false) },
        {
          body: sse([
            { choices: [{ delta: { tool_calls: [{ index: 0, id: "call_x", function: { name: "get_weather", arguments: "{\"location\": " } }] } }] },
            { choices: [{ delta: {}, finish_reason: "tool_calls" }] }
          ], false) + "data: [DONE]\n\n"
        },
        { body: "data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\n" }
      ])
      const anthropic = yield* Anthropic.make(settings(server.baseUrl, { provider: "anthropic" }))
      expect(tail(yield* events(anthropic))).toEqual([{ _tag: "Usage", inputTokens: 5, outputTokens: 256 }, { _tag: "Finish", reason: "length" }])
      const chat = yield* OpenAiChat.make(settings(server.baseUrl))
      const midStream = yield* Effect.flip(events(chat))
      expect([midStream.code, midStream.message]).toEqual(["E2083", expect.stringMatching(/Internal error while streaming/)])
      const badArguments = yield* Effect.flip(events(chat))
      expect([badArguments.code, badArguments.message]).toEqual(["E2083", expect.stringMatching(/arguments for tool "get_weather" that are not JSON/)])
      const unfinished = yield* Effect.flip(events(chat))
      expect([unfinished.code, unfinished.message]).toEqual(["E2083", expect.stringMatching(/without finishing the turn/)])
    }).pipe(Effect.scoped))
})

describe("Anthropic Messages", () => {
  it.live("assembles text and a tool_use block from input_json_delta, usage from message_start and message_delta", () =>
    Effect.gen(function*() {
      const server = yield* wireServer([{ body: { fixture: "anthropic-tool-use.sse" } }])
      const list = yield* events(yield* Anthropic.make(settings(server.baseUrl, { provider: "anthropic", model: "claude-sonnet-4-5" })))
      expect(textOf(list)).toBe("Okay, let's check the weather for San Francisco, CA:")
      expect(callsOf(list)).toEqual([
        { id: "toolu_01T1x1fJ34qAmk2tNTrN7Up6", name: "get_weather", arguments: "{\"location\": \"San Francisco, CA\", \"unit\": \"fahrenheit\"}" }
      ])
      expect(tail(list)).toEqual([{ _tag: "Usage", inputTokens: 472, outputTokens: 89 }, { _tag: "Finish", reason: "tool_calls" }])
      const sent = server.requests[0]
      expect(sent?.path).toBe("/v1/messages")
      expect(sent?.headers["x-api-key"]).toBe("sk-test-secret")
      expect(sent?.headers["anthropic-version"]).toBe("2023-06-01")
      expect(sent?.headers.authorization).toBeUndefined()
      expect(sent?.body).toEqual({
        model: "gpt-4.1",
        max_tokens: 256,
        system: "You are terse.",
        messages: [
          { role: "user", content: "Weather in Paris?" },
          { role: "assistant", content: [{ type: "tool_use", id: "call_1", name: "get_weather", input: { location: "Paris" } }] },
          { role: "user", content: [{ type: "tool_result", tool_use_id: "call_1", content: "18°C" }] },
          { role: "user", content: "And Shanghai?" }
        ],
        tools: [{ name: "get_weather", description: weather.description, input_schema: weather.parameters }],
        stream: true
      })
    }).pipe(Effect.scoped))

  it.live("an overloaded_error event mid-stream fails the turn with the retryable E2080", () =>
    Effect.gen(function*() {
      const server = yield* wireServer([{ body: { fixture: "anthropic-overloaded.sse" } }])
      const gateway = yield* Anthropic.make(settings(server.baseUrl, { provider: "anthropic" }))
      const seen: Array<ModelEvent> = []
      const error = yield* Effect.flip(Stream.runForEach(gateway.stream(request), (e) => Effect.sync(() => seen.push(e))))
      expect(textOf(seen)).toBe("Hel")
      expect(error.code).toBe("E2080")
      expect(error.message).toMatch(/overloaded_error/)
    }).pipe(Effect.scoped))
})

describe("makeModelGateway", () => {
  it.live("chooses the provider by kind", () =>
    Effect.gen(function*() {
      const server = yield* wireServer([
        { body: { fixture: "openai-chat-text.sse" } },
        { body: { fixture: "openai-responses-tool-call.sse" } },
        { body: { fixture: "anthropic-tool-use.sse" } }
      ])
      for (const provider of ["openai-chat", "openai-responses", "anthropic"] as const) {
        const gateway = yield* makeModelGateway(settings(server.baseUrl, { provider }))
        expect(gateway.provider).toBe(provider)
        yield* events(gateway)
      }
      expect(server.requests.map((r) => r.path)).toEqual(["/v1/chat/completions", "/v1/responses", "/v1/messages"])
    }).pipe(Effect.scoped))
})

describe("the loop over a real HTTP provider", () => {
  it.live("a model failing with 500 then succeeding: the tool error goes back to the model and the run ends with its answer", () =>
    Effect.gen(function*() {
      const server = yield* wireServer([
        { status: 500, body: "{\"error\":{\"message\":\"The server had an error\"}}" },
        { body: { fixture: "openai-chat-tool-calls.sse" } },
        { body: { fixture: "openai-chat-text.sse" } }
      ])
      const gateway = yield* OpenAiChat.make(settings(server.baseUrl))
      const list = yield* collect(run("weather?", { tools: makeToolkit([]), model: { name: "gpt-4.1" }, maxSteps: 3 })).pipe(
        Effect.provide(Layer.mergeAll(Layer.succeed(ModelGateway, gateway), budgetMemory))
      )
      expect(ofType(list, "tool.result").map((r) => r.error?.code)).toEqual(["E2088", "E2088"])
      expect(list.at(-1)).toMatchObject({ type: "done", reason: "final", text: "Why don't skeletons fight each other? They don't have the guts." })
      const third = server.requests[2]?.body as { messages: Array<{ role: string; tool_call_id?: string }> }
      expect(third.messages.filter((m) => m.role === "tool").map((m) => m.tool_call_id)).toEqual([
        "call_qOfTGgDrItLORNfC6VwUbyLL",
        "call_Zl0VbKQmwuOk6YOYq3n6pBbA"
      ])
      expect(list.filter((e) => e.type === "usage")).toEqual([
        { type: "usage", inputTokens: 91, outputTokens: 46 },
        { type: "usage", inputTokens: 23, outputTokens: 14 }
      ])
    }).pipe(Effect.scoped))
})

function withEnv(vars: Record<string, string>) {
  return <A, E, R>(effect: Effect.Effect<A, E, R>) =>
    Effect.acquireUseRelease(
      Effect.sync(() => {
        const before = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]))
        Object.assign(process.env, vars)
        return before
      }),
      () => effect,
      (before) =>
        Effect.sync(() => {
          for (const [k, v] of Object.entries(before)) {
            if (v === undefined) delete process.env[k]
            else process.env[k] = v
          }
        })
    )
}
