/**
 * A deterministic model: it answers from a script of turns, for tests and the demo.
 *
 * Each request takes the next turn: its text streamed word by word, then its tool calls (with their
 * arguments streamed in two halves, as real providers do), usage and the finish reason. A turn may
 * instead fail with a coded model error, to exercise retries and error paths. The requests it
 * received are kept, so a test can check what the loop fed back.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import {
  ModelGateway,
  type ModelError,
  type ModelEvent,
  type ModelGatewayShape,
  type ModelRequest
} from "../../services/ModelGateway.ts"
import { estimateTokens } from "../TokenCounter.ts"

/** A tool call of a scripted turn; `arguments` may be an object (serialised) or raw JSON text. */
export interface ScriptedToolCall {
  readonly id?: string | undefined
  readonly name: string
  readonly arguments: unknown
}

/** One scripted model turn. */
export interface ScriptedTurn {
  readonly text?: string | undefined
  readonly toolCalls?: ReadonlyArray<ScriptedToolCall> | undefined
  /** Fail this turn with this error instead of answering (after any text was streamed). */
  readonly fail?: ModelError | undefined
  /** Pause before each streamed piece, to test cancellation mid-stream. */
  readonly delayMs?: number | undefined
  /** Reported usage; by default estimated from the request and the answer. */
  readonly usage?: { readonly inputTokens: number; readonly outputTokens: number } | undefined
}

/** The scripted gateway and what it saw. */
export interface ScriptedModel {
  readonly gateway: ModelGatewayShape
  /** The requests received so far, in order. */
  readonly requests: () => ReadonlyArray<ModelRequest>
}

const requestTokens = (request: ModelRequest): number =>
  estimateTokens(request.system ?? "") +
  request.messages.reduce((n, m) => n + estimateTokens(m.content) + (m.role === "assistant" ? (m.toolCalls ?? []).reduce((k, c) => k + estimateTokens(c.arguments), 0) : 0), 0)

const eventsOf = (turn: ScriptedTurn, request: ModelRequest, number: number): ReadonlyArray<ModelEvent> => {
  const events: Array<ModelEvent> = []
  const words = (turn.text ?? "").match(/\S+\s*|\s+/g) ?? []
  for (const word of words) events.push({ _tag: "TextDelta", text: word })
  const calls = (turn.toolCalls ?? []).map((call, index) => ({
    id: call.id ?? `call_${number}_${index}`,
    name: call.name,
    arguments: typeof call.arguments === "string" ? call.arguments : JSON.stringify(call.arguments ?? {})
  }))
  calls.forEach((call, index) => {
    const half = Math.ceil(call.arguments.length / 2)
    events.push({ _tag: "ToolCallDelta", index, id: call.id, name: call.name, argumentsDelta: call.arguments.slice(0, half) })
    events.push({ _tag: "ToolCallDelta", index, argumentsDelta: call.arguments.slice(half) })
  })
  for (const call of calls) events.push({ _tag: "ToolCall", call })
  events.push({
    _tag: "Usage",
    ...(turn.usage ?? {
      inputTokens: requestTokens(request),
      outputTokens: estimateTokens(turn.text ?? "") + calls.reduce((n, c) => n + estimateTokens(c.arguments), 0)
    })
  })
  events.push({ _tag: "Finish", reason: calls.length > 0 ? "tool_calls" : "stop" })
  return events
}

/**
 * Builds a scripted model. Asking for more turns than the script has is a bug in the test or demo
 * and dies with a message saying so.
 */
export const make = (turns: ReadonlyArray<ScriptedTurn>): ScriptedModel => {
  const requests: Array<ModelRequest> = []
  const gateway: ModelGatewayShape = {
    provider: "scripted",
    stream: (request) =>
      Stream.suspend(() => {
        requests.push(request)
        const number = requests.length
        const turn = turns[number - 1]
        if (turn === undefined) {
          return Stream.die(new Error(`the scripted model has ${turns.length} turns but was asked for turn ${number}`))
        }
        const events = turn.fail === undefined ? eventsOf(turn, request, number) : eventsOf({ text: turn.text }, request, number).filter((e) => e._tag === "TextDelta")
        const paced = Stream.fromIterable(events).pipe(
          Stream.mapEffect((event) => turn.delayMs === undefined ? Effect.succeed(event) : Effect.as(Effect.sleep(Duration.millis(turn.delayMs)), event))
        )
        return turn.fail === undefined ? paced : Stream.concat(paced, Stream.fail(turn.fail))
      })
  }
  return { gateway, requests: () => [...requests] }
}

/** The scripted model as a layer (a fresh script position per build). */
export const layer = (turns: ReadonlyArray<ScriptedTurn>): Layer.Layer<ModelGateway> =>
  Layer.sync(ModelGateway, () => make(turns).gateway)
