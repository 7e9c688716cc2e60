/**
 * Anthropic Messages provider (`POST {baseUrl}/messages`, streamed).
 *
 * Events: `message_start` (input usage), `content_block_start` (text or tool_use),
 * `content_block_delta` (`text_delta`, `input_json_delta`), `content_block_stop`, `message_delta`
 * (stop reason, output usage), `message_stop`; `ping` is ignored and `error` fails the turn.
 * Tool results travel as `tool_result` blocks of one user message, as the API requires.
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Stream from "effect/Stream"
import type { ConfigInvalid } from "../../domain/Errors.ts"
import { ModelRequestFailed, ModelResponseInvalid } from "../../domain/Errors.ts"
import {
  type FinishReason,
  ModelGateway,
  type ModelEvent,
  type ModelGatewayShape,
  type ModelRequest
} from "../../services/ModelGateway.ts"
import { parseData, streamSse } from "./internal/httpStream.ts"
import { makeTurnAssembler } from "./internal/turnAssembler.ts"
import { type ModelSettings, resolveApiKey } from "./ModelSettings.ts"

const label = "Anthropic Messages"

/** The API version header this provider speaks. */
export const anthropicVersion = "2023-06-01"

type Block = Record<string, unknown>

const parseInput = (text: string): unknown => {
  try {
    return JSON.parse(text === "" ? "{}" : text)
  } catch {
    return {}
  }
}

const messagesOf = (request: ModelRequest): ReadonlyArray<{ role: "user" | "assistant"; content: string | Array<Block> }> => {
  const out: Array<{ role: "user" | "assistant"; content: string | Array<Block> }> = []
  for (const message of request.messages) {
    if (message.role === "user") {
      out.push({ role: "user", content: message.content })
    } else if (message.role === "assistant") {
      const blocks: Array<Block> = message.content === "" ? [] : [{ type: "text", text: message.content }]
      for (const call of message.toolCalls ?? []) {
        blocks.push({ type: "tool_use", id: call.id, name: call.name, input: parseInput(call.arguments) })
      }
      out.push({ role: "assistant", content: blocks })
    } else {
      const block: Block = {
        type: "tool_result",
        tool_use_id: message.toolCallId,
        content: message.content,
        ...(message.isError === true ? { is_error: true } : {})
      }
      const last = out[out.length - 1]
      if (last !== undefined && last.role === "user" && Array.isArray(last.content)) last.content.push(block)
      else out.push({ role: "user", content: [block] })
    }
  }
  return out
}

/** The request body for a turn (exported for tests that check the wire format). */
export const requestBody = (request: ModelRequest): Record<string, unknown> => ({
  model: request.model,
  max_tokens: request.maxTokens ?? 4096,
  ...(request.system === undefined ? {} : { system: request.system }),
  messages: messagesOf(request),
  ...(request.tools.length === 0 ? {} : {
    tools: request.tools.map((tool) => ({ name: tool.name, description: tool.description, input_schema: tool.parameters }))
  }),
  stream: true
})

const finishReason = (value: unknown): FinishReason =>
  value === "end_turn" || value === "stop_sequence"
    ? "stop"
    : value === "tool_use"
    ? "tool_calls"
    : value === "max_tokens"
    ? "length"
    : value === "refusal"
    ? "content_filter"
    : "other"

interface AnthropicEvent {
  readonly type?: string
  readonly index?: number
  readonly message?: { readonly usage?: { readonly input_tokens?: number; readonly output_tokens?: number } }
  readonly content_block?: { readonly type?: string; readonly id?: string; readonly name?: string; readonly text?: string }
  readonly delta?: { readonly type?: string; readonly text?: string; readonly partial_json?: string; readonly stop_reason?: string }
  readonly usage?: { readonly input_tokens?: number; readonly output_tokens?: number }
  readonly error?: { readonly type?: string; readonly message?: string }
}

/** Builds the gateway from settings; resolves the API key once (E2000 when it is missing). */
export const make = (settings: ModelSettings): Effect.Effect<ModelGatewayShape, ConfigInvalid> =>
  Effect.gen(function*() {
    const key = yield* resolveApiKey(settings.apiKey)
    const headers: Record<string, string> = {
      "anthropic-version": anthropicVersion,
      ...(key === undefined ? {} : { "x-api-key": Redacted.value(key) })
    }
    return {
      provider: "anthropic",
      stream: (request) =>
        Stream.suspend(() => {
          const turn = makeTurnAssembler(label)
          let stopped = false
          return streamSse({ settings, path: "/messages", headers: {}, body: requestBody(request), label }, headers).pipe(
            Stream.takeWhile(() => !stopped),
            Stream.mapEffect((message) =>
              Effect.gen(function*() {
                const event = (yield* parseData(label, message)) as AnthropicEvent
                const events: Array<ModelEvent> = []
                switch (event.type) {
                  case "message_start":
                    turn.usage({
                      inputTokens: event.message?.usage?.input_tokens,
                      outputTokens: event.message?.usage?.output_tokens
                    })
                    break
                  case "content_block_start": {
                    const block = event.content_block
                    if (block?.type === "text" && block.text !== undefined) events.push(...turn.text(block.text))
                    if (block?.type === "tool_use") events.push(...turn.toolStart(event.index ?? 0, block.id ?? "", block.name ?? ""))
                    break
                  }
                  case "content_block_delta":
                    if (event.delta?.type === "text_delta") events.push(...turn.text(event.delta.text ?? ""))
                    if (event.delta?.type === "input_json_delta") {
                      events.push(...turn.toolArguments(event.index ?? 0, event.delta.partial_json ?? ""))
                    }
                    break
                  case "message_delta":
                    if (event.delta?.stop_reason != null) turn.finish(finishReason(event.delta.stop_reason))
                    if (event.usage !== undefined) {
                      turn.usage({ inputTokens: event.usage.input_tokens, outputTokens: event.usage.output_tokens })
                    }
                    break
                  case "message_stop":
                    stopped = true
                    break
                  case "error": {
                    const kind = event.error?.type ?? "error"
                    const text = `${label} reported ${kind} mid-stream: ${event.error?.message ?? "no message"}; retry the turn`
                    return yield* Effect.fail(
                      kind === "overloaded_error" || kind === "api_error"
                        ? new ModelRequestFailed({ message: text })
                        : new ModelResponseInvalid({ message: text })
                    )
                  }
                  default:
                    break
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
