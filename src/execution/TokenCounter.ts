/**
 * Counts tokens: with the model's real tokenizer where one ships as a package (OpenAI models via
 * gpt-tokenizer: `o200k_base`, `cl100k_base`), with a conservative estimate otherwise (Anthropic and
 * other models publish no local tokenizer).
 *
 * The encodings are loaded on first use (about half a second each), never at import, and never
 * downloaded: their ranks ship inside the package.
 */
import * as Effect from "effect/Effect"
import type { ChatMessage, ModelRequest } from "../services/ModelGateway.ts"

/** How a model's text is counted. */
export type Encoding = "o200k_base" | "cl100k_base" | "estimate"

/** A function counting the tokens of a text. */
export type CountTokens = (text: string) => number

/** Characters per token of the estimate: lower than the usual ~4 so the estimate errs high. */
const charsPerToken = 3.5

/** Estimated tokens of a text when no tokenizer is known: rounds up, never under-counts empty-ish text as zero. */
export const estimateTokens = (text: string): number => text === "" ? 0 : Math.ceil(text.length / charsPerToken)

/** Which encoding a model id uses. */
export const encodingFor = (model: string): Encoding => {
  const id = model.toLowerCase().replace(/^.*\//, "")
  if (/^(gpt-4o|gpt-4\.1|gpt-4\.5|gpt-5|o1|o3|o4|chatgpt-4o|gpt-oss)/.test(id)) return "o200k_base"
  if (/^(gpt-4|gpt-3\.5|text-embedding-3|text-embedding-ada)/.test(id)) return "cl100k_base"
  return "estimate"
}

const loaded = new Map<Encoding, Promise<CountTokens>>()

const load = (encoding: Exclude<Encoding, "estimate">): Promise<CountTokens> => {
  let pending = loaded.get(encoding)
  if (pending === undefined) {
    pending = (encoding === "o200k_base"
      ? import("gpt-tokenizer/encoding/o200k_base")
      : import("gpt-tokenizer/encoding/cl100k_base")).then((module) => (text: string) => module.countTokens(text))
    loaded.set(encoding, pending)
  }
  return pending
}

/** The counter of a model: its tokenizer when one is known, the estimate otherwise. */
export const counterFor = (model: string): Effect.Effect<CountTokens> => {
  const encoding = encodingFor(model)
  return encoding === "estimate" ? Effect.succeed(estimateTokens) : Effect.promise(() => load(encoding))
}

/** Per-message framing overhead of chat formats (role markers, separators). */
const messageOverhead = 4

// Messages are immutable values that are counted again on every turn of a run: remember their
// counts per counter (weakly, so dropped conversations are collected).
const counted = new WeakMap<ChatMessage, Map<CountTokens, number>>()

/** Tokens of one message as sent (content, tool calls, framing); remembered per message object. */
export const messageTokens = (count: CountTokens, message: ChatMessage): number => {
  let byCounter = counted.get(message)
  const known = byCounter?.get(count)
  if (known !== undefined) return known
  const tokens = messageOverhead + count(message.content) +
    (message.role === "assistant"
      ? (message.toolCalls ?? []).reduce((n, call) => n + count(call.name) + count(call.arguments) + messageOverhead, 0)
      : message.role === "tool"
      ? count(message.name)
      : 0)
  if (byCounter === undefined) {
    byCounter = new Map()
    counted.set(message, byCounter)
  }
  byCounter.set(count, tokens)
  return tokens
}

/** Tokens of the part of a request that is not the conversation: system prompt and tool definitions. */
export const fixedTokens = (count: CountTokens, request: Pick<ModelRequest, "system" | "tools">): number =>
  (request.system === undefined ? 0 : messageOverhead + count(request.system)) +
  request.tools.reduce((n, tool) => n + count(tool.name) + count(tool.description) + count(JSON.stringify(tool.parameters)), 0)

/** Input tokens of a whole request. */
export const requestTokens = (count: CountTokens, request: ModelRequest): number =>
  fixedTokens(count, request) + request.messages.reduce((n, m) => n + messageTokens(count, m), 0)
