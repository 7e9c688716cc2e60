/**
 * OpenAI-compatible Chat Completions provider (`POST {baseUrl}/chat/completions`, streamed).
 *
 * Speaks the format OpenAI, Azure OpenAI, vLLM, llama.cpp, Ollama and most gateways share: text in
 * `choices[0].delta.content`, tool calls as `delta.tool_calls[]` deltas keyed by `index`, usage in
 * the final chunk (`stream_options.include_usage`), then `data: [DONE]`.
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import type { ConfigInvalid } from "../../domain/Errors.ts"
import { ModelResponseInvalid } from "../../domain/Errors.ts"
import {
  type ChatMessage,
  type FinishReason,
  ModelGateway,
  type ModelGatewayShape,
  type ModelRequest
} from "../../services/ModelGateway.ts"
import { bearer, parseData, streamSse } from "./internal/httpStream.ts"
import { makeTurnAssembler } from "./internal/turnAssembler.ts"
import { type ModelSettings, resolveApiKey } from "./ModelSettings.ts"

const label = "OpenAI Chat Completions"

const messagesOf = (request: ModelRequest): ReadonlyArray<Record<string, unknown>> => [
  ...(request.system === undefined ? [] : [{ role: "system", content: request.system }]),
  ...request.messages.map((message: ChatMessage): Record<string, unknown> => {
    switch (message.role) {
      case "user":
        return { role: "user", content: message.content }
      case "assistant":
        return {
          role: "assistant",
          content: message.content === "" ? null : message.content,
          ...(message.toolCalls === undefined || message.toolCalls.length === 0 ? {} : {
            tool_calls: message.toolCalls.map((call) => ({
              id: call.id,
              type: "function",
              function: { name: call.name, arguments: call.arguments }
            }))
          })
        }
      case "tool":
        return { role: "tool", tool_call_id: message.toolCallId, content: message.content }
    }
  })
]

/** The request body for a turn (exported for tests that check the wire format). */
export const requestBody = (request: ModelRequest): Record<string, unknown> => ({
  model: request.model,
  messages: messagesOf(request),
  ...(request.tools.length === 0 ? {} : {
    tools: request.tools.map((tool) => ({
      type: "function",
      function: { name: tool.name, description: tool.description, parameters: tool.parameters }
    }))
  }),
  ...(request.maxTokens === undefined ? {} : { max_tokens: request.maxTokens }),
  stream: true,
  stream_options: { include_usage: true }
})

const finishReason = (value: unknown): FinishReason =>
  value === "stop" || value === "tool_calls" || value === "length" || value === "content_filter"
    ? value
    : value === "function_call"
    ? "tool_calls"
    : "other"

interface Chunk {
  readonly error?: { readonly message?: string }
  readonly choices?: ReadonlyArray<{
    readonly delta?: {
      readonly content?: string | null
      readonly tool_calls?: ReadonlyArray<{
        readonly index?: number
        readonly id?: string
        readonly function?: { readonly name?: string; readonly arguments?: string }
      }>
    }
    readonly finish_reason?: string | null
  }>
  readonly usage?: { readonly prompt_tokens?: number; readonly completion_tokens?: number } | null
}

/** Builds the gateway from settings; resolves the API key once (E2000 when it is missing). */
export const make = (settings: ModelSettings): Effect.Effect<ModelGatewayShape, ConfigInvalid> =>
  Effect.gen(function*() {
    const headers = bearer(yield* resolveApiKey(settings.apiKey))
    return {
      provider: "openai-chat",
      stream: (request) =>
        Stream.suspend(() => {
          const turn = makeTurnAssembler(label)
          const started = new Set<number>()
          return streamSse({ settings, path: "/chat/completions", headers: {}, body: requestBody(request), label }, headers).pipe(
            Stream.takeWhile((message) => message.data.trim() !== "[DONE]"),
            Stream.mapEffect((message) =>
              Effect.gen(function*() {
                const chunk = (yield* parseData(label, message)) as Chunk
                if (chunk.error !== undefined) {
                  return yield* Effect.fail(
                    new ModelResponseInvalid({ message: `${label} reported an error mid-stream: ${chunk.error.message ?? "unknown"}; retry the turn` })
                  )
                }
                if (chunk.usage != null) {
                  turn.usage({ inputTokens: chunk.usage.prompt_tokens, outputTokens: chunk.usage.completion_tokens })
                }
                const events = []
                for (const choice of chunk.choices ?? []) {
                  const delta = choice.delta
                  if (typeof delta?.content === "string") events.push(...turn.text(delta.content))
                  for (const [position, call] of (delta?.tool_calls ?? []).entries()) {
                    const index = call.index ?? position
                    if (!started.has(index)) {
                      started.add(index)
                      events.push(
                        ...turn.toolStart(index, call.id ?? `call_${index}`, call.function?.name ?? "", call.function?.arguments ?? "")
                      )
                    } else {
                      events.push(...turn.toolArguments(index, call.function?.arguments ?? ""))
                    }
                  }
                  if (choice.finish_reason != null) turn.finish(finishReason(choice.finish_reason))
                }
                return events
              })
            ),
            Stream.flattenIterable,
            Stream.concat(Stream.fromEffect(turn.end).pipe(Stream.flattenIterable))
          )
        })
    } satisfies ModelGatewayShape
  })

/** The gateway as a layer. */
export const layer = (settings: ModelSettings): Layer.Layer<ModelGateway, ConfigInvalid> =>
  Layer.effect(ModelGateway, make(settings))
