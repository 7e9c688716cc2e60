/**
 * Keeps a conversation within the model's context window: the system prompt, the first user
 * message (the task) and the latest turns stay; the oldest turns in between go, or are replaced by
 * a summary when a summariser is configured.
 *
 * Turns are cut at safe places only: an assistant message and the tool results answering its calls
 * are dropped together, so no provider ever sees a tool result without its call.
 */
import * as Effect from "effect/Effect"
import { ContextWindowExceeded } from "../domain/Errors.ts"
import type { ChatMessage, ModelRequest } from "../services/ModelGateway.ts"
import { type CountTokens, fixedTokens, messageTokens } from "./TokenCounter.ts"

/** What to do with the turns that do not fit: drop them (with a note), or summarise them. */
export type ContextPolicy =
  | { readonly kind: "drop" }
  | {
    readonly kind: "summarise"
    /** Summarises the dropped messages; a failure falls back to dropping. */
    readonly summarise: (dropped: ReadonlyArray<ChatMessage>) => Effect.Effect<string, unknown>
  }

/** The window to fit into. */
export interface ContextWindowOptions {
  /** The model's context window in tokens. */
  readonly contextWindow: number
  /** Tokens kept free for the answer (usually the request's maxTokens). */
  readonly reserveOutput: number
  readonly policy: ContextPolicy
}

/** The messages to send, and how many of the conversation's messages were left out. */
export interface FittedContext {
  readonly messages: ReadonlyArray<ChatMessage>
  readonly dropped: number
}

/** Splits messages into units that can be dropped whole: a message, or an assistant turn with its tool results. */
const unitsOf = (messages: ReadonlyArray<ChatMessage>): ReadonlyArray<ReadonlyArray<ChatMessage>> => {
  const units: Array<Array<ChatMessage>> = []
  for (const message of messages) {
    const last = units[units.length - 1]
    if (message.role === "tool" && last !== undefined) last.push(message)
    else units.push([message])
  }
  return units
}

const note = (dropped: number): ChatMessage => ({
  role: "user",
  content: `[${dropped} earlier messages were left out to fit the context window]`
})

/**
 * Fits a request's messages into the window. Fails with E2085 when the system prompt, the tools and
 * the latest unit alone do not fit.
 */
export const fitToWindow = (
  count: CountTokens,
  request: Pick<ModelRequest, "system" | "tools" | "messages">,
  options: ContextWindowOptions
): Effect.Effect<FittedContext, ContextWindowExceeded> =>
  Effect.gen(function*() {
    const available = options.contextWindow - options.reserveOutput - fixedTokens(count, request)
    const units = unitsOf(request.messages)
    const unitTokens = units.map((unit) => unit.reduce((n, m) => n + messageTokens(count, m), 0))
    const total = unitTokens.reduce((a, b) => a + b, 0)
    if (total <= available) return { messages: request.messages, dropped: 0 }
    const lastTokens = unitTokens[unitTokens.length - 1] ?? 0
    if (units.length === 0 || lastTokens + messageTokens(count, note(0)) > available) {
      return yield* Effect.fail(
        new ContextWindowExceeded({
          message: `the system prompt, tools and latest message need ${
            fixedTokens(count, request) + lastTokens + options.reserveOutput
          } tokens (with ${options.reserveOutput} kept for the answer) but the model's window is ${options.contextWindow}; shorten them or use a larger model`
        })
      )
    }
    // Keep the first unit when it is the task (a user message) and fits next to the latest one.
    const noteTokens = messageTokens(count, note(request.messages.length))
    const headTokens = unitTokens[0] ?? 0
    const headKept = units.length > 1 && units[0]?.[0]?.role === "user" &&
      noteTokens + headTokens + lastTokens <= available
    const minFrom = headKept ? 1 : 0
    let used = noteTokens + (headKept ? headTokens : 0)
    let from = units.length
    while (from > minFrom && used + (unitTokens[from - 1] ?? 0) <= available) {
      used += unitTokens[from - 1] ?? 0
      from -= 1
    }
    const head = headKept ? units[0] ?? [] : []
    const tail = units.slice(from).flat()
    const dropped = units.slice(minFrom, from).flat()
    if (options.policy.kind === "summarise") {
      const summary = yield* Effect.result(options.policy.summarise(dropped))
      if (summary._tag === "Success") {
        const message: ChatMessage = { role: "user", content: `[Summary of ${dropped.length} earlier messages] ${summary.success}` }
        if (used - noteTokens + messageTokens(count, message) <= available) {
          return { messages: [...head, message, ...tail], dropped: dropped.length }
        }
      }
    }
    return { messages: [...head, note(dropped.length), ...tail], dropped: dropped.length }
  })
