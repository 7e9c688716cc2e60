/**
 * The port to a language model: one streaming call per model turn.
 *
 * Providers (OpenAI Chat Completions, OpenAI Responses, Anthropic Messages, the scripted model) live
 * in src/execution/providers and translate their wire formats into {@link ModelEvent}s and their
 * failures into the coded {@link ModelError}s. Everything here is plain JSON, so a conversation can
 * be persisted and replayed as it is.
 */
import * as Context from "effect/Context"
import type * as Stream from "effect/Stream"
import type {
  ModelRateLimited,
  ModelRequestFailed,
  ModelRequestRejected,
  ModelResponseInvalid
} from "../domain/Errors.ts"

/** A tool call the model made: `arguments` is the JSON text the model produced. */
export interface ToolCall {
  readonly id: string
  readonly name: string
  readonly arguments: string
}

/** One message of a conversation (the system prompt travels apart, in {@link ModelRequest.system}). */
export type ChatMessage =
  | { readonly role: "user"; readonly content: string }
  | { readonly role: "assistant"; readonly content: string; readonly toolCalls?: ReadonlyArray<ToolCall> | undefined }
  | {
    readonly role: "tool"
    readonly toolCallId: string
    readonly name: string
    readonly content: string
    /** True when the tool failed; the content then says why, so the model can correct itself. */
    readonly isError?: boolean | undefined
  }

/** A tool offered to the model: its name, what it does, and a JSON schema of its input object. */
export interface ToolDefinition {
  readonly name: string
  readonly description: string
  readonly parameters: Readonly<Record<string, unknown>>
}

/** One model turn to run. */
export interface ModelRequest {
  readonly model: string
  readonly system?: string | undefined
  readonly messages: ReadonlyArray<ChatMessage>
  readonly tools: ReadonlyArray<ToolDefinition>
  readonly maxTokens?: number | undefined
}

/** Why the model stopped: a final answer, tool calls to run, the token limit, or something else. */
export type FinishReason = "stop" | "tool_calls" | "length" | "content_filter" | "other"

/**
 * What a model turn streams: text deltas and tool-call deltas as they arrive, each tool call once
 * assembled (`ToolCall`, arguments complete), usage, then exactly one `Finish` last.
 */
export type ModelEvent =
  | { readonly _tag: "TextDelta"; readonly text: string }
  | {
    readonly _tag: "ToolCallDelta"
    /** Position of the call in this turn, stable across its deltas. */
    readonly index: number
    readonly id?: string | undefined
    readonly name?: string | undefined
    readonly argumentsDelta: string
  }
  | { readonly _tag: "ToolCall"; readonly call: ToolCall }
  | { readonly _tag: "Usage"; readonly inputTokens: number; readonly outputTokens: number }
  | { readonly _tag: "Finish"; readonly reason: FinishReason }

/** The coded failures of a model call. */
export type ModelError = ModelRequestFailed | ModelRequestRejected | ModelRateLimited | ModelResponseInvalid

/** The shape of a model gateway. */
export interface ModelGatewayShape {
  /** Which provider kind answers (`openai-chat`, `openai-responses`, `anthropic`, `scripted`). */
  readonly provider: string
  /** Streams one model turn. Interrupting the stream aborts the HTTP request. */
  readonly stream: (request: ModelRequest) => Stream.Stream<ModelEvent, ModelError>
}

/** The model gateway port; implementations are built per agent from its model settings. */
export class ModelGateway extends Context.Service<ModelGateway, ModelGatewayShape>()("l02/ModelGateway") {}
