/**
 * Assembles one streamed model turn into {@link ModelEvent}s the same way for every provider:
 * deltas pass through as they come; complete tool calls, usage and the finish reason follow at the
 * end, after their arguments were checked to be JSON.
 */
import * as Effect from "effect/Effect"
import { ModelResponseInvalid } from "../../../domain/Errors.ts"
import type { FinishReason, ModelEvent, ToolCall } from "../../../services/ModelGateway.ts"

interface PendingCall {
  id: string
  name: string
  arguments: string
}

/** The mutable state of one turn; create one per request. */
export interface TurnAssembler {
  readonly text: (delta: string) => ReadonlyArray<ModelEvent>
  /** A tool call begins at `index` (providers number them per turn). */
  readonly toolStart: (index: number, id: string, name: string, argumentsDelta?: string) => ReadonlyArray<ModelEvent>
  readonly toolArguments: (index: number, delta: string) => ReadonlyArray<ModelEvent>
  /** Records usage; a provider may report input and output in separate events. */
  readonly usage: (usage: { readonly inputTokens?: number | undefined; readonly outputTokens?: number | undefined }) => void
  readonly finish: (reason: FinishReason) => void
  /** The closing events; fails with E2083 when the turn never finished or a call's arguments are not JSON. */
  readonly end: Effect.Effect<ReadonlyArray<ModelEvent>, ModelResponseInvalid>
}

/** Creates the assembler of one turn; `label` names the provider in error messages. */
export const makeTurnAssembler = (label: string): TurnAssembler => {
  const calls = new Map<number, PendingCall>()
  let inputTokens: number | undefined
  let outputTokens: number | undefined
  let reason: FinishReason | undefined
  return {
    text: (delta) => delta === "" ? [] : [{ _tag: "TextDelta", text: delta }],
    toolStart: (index, id, name, argumentsDelta = "") => {
      calls.set(index, { id, name, arguments: argumentsDelta })
      return [{ _tag: "ToolCallDelta", index, id, name, argumentsDelta }]
    },
    toolArguments: (index, delta) => {
      const call = calls.get(index)
      if (call === undefined) return []
      call.arguments += delta
      return delta === "" ? [] : [{ _tag: "ToolCallDelta", index, argumentsDelta: delta }]
    },
    usage: (usage) => {
      if (usage.inputTokens !== undefined) inputTokens = usage.inputTokens
      if (usage.outputTokens !== undefined) outputTokens = usage.outputTokens
    },
    finish: (r) => {
      reason = r
    },
    end: Effect.suspend(() => {
      if (reason === undefined) {
        return Effect.fail(
          new ModelResponseInvalid({ message: `${label} ended the stream without finishing the turn; retry it` })
        )
      }
      const events: Array<ModelEvent> = []
      for (const index of [...calls.keys()].sort((a, b) => a - b)) {
        const pending = calls.get(index) as PendingCall
        const args = pending.arguments.trim() === "" ? "{}" : pending.arguments
        try {
          JSON.parse(args)
        } catch {
          return Effect.fail(
            new ModelResponseInvalid({
              message: `${label} produced arguments for tool "${pending.name}" that are not JSON (${args.slice(0, 120)}); retry the turn`
            })
          )
        }
        const call: ToolCall = { id: pending.id, name: pending.name, arguments: args }
        events.push({ _tag: "ToolCall", call })
      }
      if (inputTokens !== undefined || outputTokens !== undefined) {
        events.push({ _tag: "Usage", inputTokens: inputTokens ?? 0, outputTokens: outputTokens ?? 0 })
      }
      // A provider may say "stop" while it did call tools (some OpenAI-compatible servers do).
      events.push({ _tag: "Finish", reason: calls.size > 0 && reason === "stop" ? "tool_calls" : reason })
      return Effect.succeed(events)
    })
  }
}
