/**
 * OpenAI Responses API provider (`POST {baseUrl}/responses`, streamed).
 *
 * Events: `response.output_item.added` (a message or a `function_call` with its `call_id` and
 * name), `response.output_text.delta`, `response.function_call_arguments.delta`,
 * `response.completed` / `response.incomplete` (usage, why it stopped), `response.failed` and
 * `error`. Requests are sent with `store: false`: the runtime keeps the conversation itself.
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import type { ConfigInvalid } from "../../domain/Errors.ts"
import { ModelRequestFailed, ModelResponseInvalid } from "../../domain/Errors.ts"
import { ModelGateway, type ModelEvent, type ModelGatewayShape, type ModelRequest } from "../../services/ModelGateway.ts"
import { bearer, parseData, streamSse } from "./internal/httpStream.ts"
import { makeTurnAssembler } from "./internal/turnAssembler.ts"
import { type ModelSettings, resolveApiKey } from "./ModelSettings.ts"

const label = "OpenAI Responses"

const inputOf = (request: ModelRequest): ReadonlyArray<Record<string, unknown>> =>
  request.messages.flatMap((message): ReadonlyArray<Record<string, unknown>> => {
    switch (message.role) {
      case "user":
        return [{ role: "user", content: message.content }]
      case "assistant":
        return [
          ...(message.content === "" ? [] : [{ role: "assistant", content: message.content }]),
          ...(message.toolCalls ?? []).map((call) => ({
            type: "function_call",
            call_id: call.id,
            name: call.name,
            arguments: call.arguments
          }))
        ]
      case "tool":
        return [{ type: "function_call_output", call_id: message.toolCallId, output: message.content }]
    }
  })

/** The request body for a turn (exported for tests that check the wire format). */
export const requestBody = (request: ModelRequest): Record<string, unknown> => ({
  model: request.model,
  ...(request.system === undefined ? {} : { instructions: request.system }),
  input: inputOf(request),
  ...(request.tools.length === 0 ? {} : {
    tools: request.tools.map((tool) => ({
      type: "function",
      name: tool.name,
      description: tool.description,
      parameters: tool.parameters
    }))
  }),
  ...(request.maxTokens === undefined ? {} : { max_output_tokens: request.maxTokens }),
  store: false,
  stream: true
})

interface ResponsesEvent {
  readonly type?: string
  readonly output_index?: number
  readonly delta?: string
  readonly item?: { readonly type?: string; readonly call_id?: string; readonly id?: string; readonly name?: string; readonly arguments?: string }
  readonly response?: {
    readonly usage?: { readonly input_tokens?: number; readonly output_tokens?: number }
    readonly incomplete_details?: { readonly reason?: string } | null
    readonly error?: { readonly code?: string; readonly message?: string } | null
  }
  readonly code?: string
  readonly message?: string
}

/** Builds the gateway from settings; resolves the API key once (E2000 when it is missing). */
export const make = (settings: ModelSettings): Effect.Effect<ModelGatewayShape, ConfigInvalid> =>
  Effect.gen(function*() {
    const headers = bearer(yield* resolveApiKey(settings.apiKey))
    return {
      provider: "openai-responses",
      stream: (request) =>
        Stream.suspend(() => {
          const turn = makeTurnAssembler(label)
          let ended = false
          return streamSse({ settings, path: "/responses", headers: {}, body: requestBody(request), label }, headers).pipe(
            Stream.takeWhile(() => !ended),
            Stream.mapEffect((message) =>
              Effect.gen(function*() {
                const event = (yield* parseData(label, message)) as ResponsesEvent
                const events: Array<ModelEvent> = []
                switch (event.type) {
                  case "response.output_item.added":
                    if (event.item?.type === "function_call") {
                      events.push(
                        ...turn.toolStart(event.output_index ?? 0, event.item.call_id ?? event.item.id ?? "", event.item.name ?? "", event.item.arguments ?? "")
                      )
                    }
                    break
                  case "response.output_text.delta":
                    events.push(...turn.text(event.delta ?? ""))
                    break
                  case "response.function_call_arguments.delta":
                    events.push(...turn.toolArguments(event.output_index ?? 0, event.delta ?? ""))
                    break
                  case "response.completed":
                  case "response.incomplete": {
                    const usage = event.response?.usage
                    turn.usage({ inputTokens: usage?.input_tokens, outputTokens: usage?.output_tokens })
                    const reason = event.response?.incomplete_details?.reason
                    turn.finish(
                      event.type === "response.completed"
                        ? "stop"
                        : reason === "max_output_tokens"
                        ? "length"
                        : reason === "content_filter"
                        ? "content_filter"
                        : "other"
                    )
                    ended = true
                    break
                  }
                  case "response.failed":
                    return yield* Effect.fail(
                      new ModelRequestFailed({
                        message: `${label} failed the response: ${event.response?.error?.code ?? "error"}: ${
                          event.response?.error?.message ?? "no message"
                        }; retry the turn`
                      })
                    )
                  case "error":
                    return yield* Effect.fail(
                      new ModelResponseInvalid({
                        message: `${label} reported ${event.code ?? "an error"} mid-stream: ${event.message ?? "no message"}; retry the turn`
                      })
                    )
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
