/**
 * The agent loop: model turn -> tool calls -> tool results fed back -> next turn, until the model
 * answers without calling tools or `maxSteps` turns were made.
 *
 * Everything that happens is an {@link ExecutionEvent}; failures are coded `error` events followed
 * by `done`, so the stream itself never fails. The {@link Conversation} is plain JSON (messages,
 * tool calls still to run, usage, steps) and is emitted after every turn and every tool result, so
 * the runtime can persist it and continue it later. Interrupting the stream (or aborting `signal`)
 * aborts the model's HTTP request and interrupts the running tool (killing its sandbox exec or
 * cancelling its MCP request).
 *
 * @example
 * ```ts
 * const events = run("fix the failing test", {
 *   tools: makeToolkit(makeSandboxTools(backend, { sandboxId })),
 *   model: { name: "gpt-4.1", contextWindow: 128_000, maxTokens: 4096 },
 *   budget: { agentId, tokensPerHour: 200_000 },
 *   maxSteps: 20
 * })
 * ```
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Queue from "effect/Queue"
import * as Stream from "effect/Stream"
import type { ErrorData } from "../domain/ErrorCatalog.ts"
import { MaxStepsExceeded, type RuntimeError, toErrorData, ToolFailed } from "../domain/Errors.ts"
import { type ChatMessage, ModelGateway, type ModelRequest, type ToolCall } from "../services/ModelGateway.ts"
import { type ContextPolicy, fitToWindow } from "./ContextWindow.ts"
import { TokenBudget } from "./TokenBudget.ts"
import { counterFor, requestTokens } from "./TokenCounter.ts"
import type { Toolkit } from "./tools/Toolkit.ts"

/** Tokens used so far. */
export interface TokenUsage {
  readonly inputTokens: number
  readonly outputTokens: number
}

/** The persistent state of a conversation: plain JSON. */
export interface Conversation {
  readonly messages: ReadonlyArray<ChatMessage>
  /** Calls of the last assistant message not yet answered by a tool result; run first on continue. */
  readonly pendingToolCalls: ReadonlyArray<ToolCall>
  readonly usage: TokenUsage
  /** Model turns made so far, over all runs. */
  readonly steps: number
}

/** An empty conversation. */
export const emptyConversation: Conversation = {
  messages: [],
  pendingToolCalls: [],
  usage: { inputTokens: 0, outputTokens: 0 },
  steps: 0
}

/** Why a run ended. */
export type DoneReason = "final" | "max_steps" | "error"

/** What a run streams. */
export type ExecutionEvent =
  | { readonly type: "text.delta"; readonly text: string }
  | { readonly type: "tool.call"; readonly call: ToolCall }
  | {
    readonly type: "tool.result"
    readonly toolCallId: string
    readonly name: string
    readonly content: string
    readonly isError: boolean
    /** The coded error when the tool could not run (also given to the model in `content`). */
    readonly error?: { readonly code: string; readonly message: string } | undefined
  }
  | { readonly type: "usage"; readonly inputTokens: number; readonly outputTokens: number }
  /** A model turn failed after streaming some of it and is tried again: discard that turn's text so far. */
  | { readonly type: "turn.retry"; readonly attempt: number; readonly error: ErrorData }
  | { readonly type: "conversation"; readonly conversation: Conversation }
  | { readonly type: "error"; readonly error: ErrorData }
  | { readonly type: "done"; readonly reason: DoneReason; readonly text: string; readonly conversation: Conversation }

/** The model side of a run. */
export interface LoopModel {
  readonly name: string
  readonly system?: string | undefined
  readonly maxTokens?: number | undefined
  /** The model's context window; when set, older turns are dropped (or summarised) to fit. */
  readonly contextWindow?: number | undefined
  readonly contextPolicy?: ContextPolicy | undefined
  /** Extra attempts of a turn that failed mid-stream with a retryable code (E2080, E2083). Default 1. */
  readonly turnRetries?: number | undefined
}

/** Options of one run. */
export interface AgentLoopOptions {
  /** The conversation to continue; a new one when absent. */
  readonly conversation?: Conversation | undefined
  readonly tools: Toolkit
  readonly model: LoopModel
  /** The agent's hourly token budget; unlimited when absent. */
  readonly budget?: { readonly agentId: string; readonly tokensPerHour: number } | undefined
  /** Most model turns in this run. */
  readonly maxSteps: number
  /** Upper bound of one tool call, on top of the tool's own timeout. Default 120 s. */
  readonly toolTimeoutMs?: number | undefined
  /** Aborting it stops the run like interrupting the stream. */
  readonly signal?: AbortSignal | undefined
}

interface TurnResult {
  readonly text: string
  readonly calls: ReadonlyArray<ToolCall>
  readonly usage: TokenUsage | undefined
}

const retryableMidStream = (code: string) => code === "E2080" || code === "E2083"

/**
 * Runs the loop for one input (omit it, or pass `undefined`, to continue a conversation whose
 * pending tool calls must be answered first).
 */
export const run = (
  input: string | undefined,
  options: AgentLoopOptions
): Stream.Stream<ExecutionEvent, never, ModelGateway | TokenBudget> => {
  const events = Stream.callback<ExecutionEvent, never, ModelGateway | TokenBudget>(
    (queue) =>
      Effect.gen(function*() {
        const gateway = yield* ModelGateway
        const budget = yield* TokenBudget
        const emit = (event: ExecutionEvent) => Queue.offer(queue, event)
        const count = yield* counterFor(options.model.name)
        const start = options.conversation ?? emptyConversation
        let conversation: Conversation = {
          ...start,
          messages: input === undefined ? start.messages : [...start.messages, { role: "user", content: input }]
        }
        let lastText = ""
        const finish = (reason: DoneReason, error?: RuntimeError) =>
          Effect.gen(function*() {
            if (error !== undefined) yield* emit({ type: "error", error: toErrorData(error) })
            yield* emit({ type: "done", reason, text: lastText, conversation })
            yield* Queue.end(queue)
          })

        const runTools = (calls: ReadonlyArray<ToolCall>) =>
          Effect.gen(function*() {
            for (const call of calls) {
              const timeoutMs = options.toolTimeoutMs ?? 120_000
              const outcome = yield* options.tools.call(call).pipe(
                Effect.timeoutOrElse({
                  duration: Duration.millis(timeoutMs),
                  orElse: () => {
                    const error = new ToolFailed({
                      message: `tool "${call.name}" did not finish within ${timeoutMs} ms and was cancelled`,
                      key: call.name
                    })
                    return Effect.succeed({
                      output: { content: `${error.code} ${error._tag}: ${error.message}`, isError: true },
                      error: { code: error.code, message: error.message }
                    })
                  }
                })
              )
              const isError = outcome.output.isError === true
              yield* emit({
                type: "tool.result",
                toolCallId: call.id,
                name: call.name,
                content: outcome.output.content,
                isError,
                ...(outcome.error === undefined ? {} : { error: outcome.error })
              })
              conversation = {
                ...conversation,
                messages: [
                  ...conversation.messages,
                  { role: "tool", toolCallId: call.id, name: call.name, content: outcome.output.content, ...(isError ? { isError } : {}) }
                ],
                pendingToolCalls: conversation.pendingToolCalls.filter((pending) => pending.id !== call.id)
              }
              yield* emit({ type: "conversation", conversation })
            }
          })

        const turn = (request: ModelRequest) =>
          Effect.gen(function*() {
            let text = ""
            const calls: Array<ToolCall> = []
            let usage: TokenUsage | undefined
            yield* gateway.stream(request).pipe(
              Stream.runForEach((event) => {
                switch (event._tag) {
                  case "TextDelta":
                    text += event.text
                    return emit({ type: "text.delta", text: event.text })
                  case "ToolCall":
                    calls.push(event.call)
                    return emit({ type: "tool.call", call: event.call })
                  case "Usage":
                    usage = { inputTokens: event.inputTokens, outputTokens: event.outputTokens }
                    return emit({ type: "usage", inputTokens: event.inputTokens, outputTokens: event.outputTokens })
                  default:
                    return Effect.void
                }
              })
            )
            return { text, calls, usage } satisfies TurnResult
          })

        // A continued conversation may stop between a turn's tool calls: answer them first.
        if (conversation.pendingToolCalls.length > 0) yield* runTools(conversation.pendingToolCalls)

        for (let step = 0; step < options.maxSteps; step++) {
          const fitted = options.model.contextWindow === undefined
            ? Effect.succeed({ messages: conversation.messages, dropped: 0 })
            : fitToWindow(
              count,
              { system: options.model.system, tools: options.tools.definitions, messages: conversation.messages },
              {
                contextWindow: options.model.contextWindow,
                reserveOutput: options.model.maxTokens ?? 0,
                policy: options.model.contextPolicy ?? { kind: "drop" }
              }
            )
          const window = yield* Effect.result(fitted)
          if (window._tag === "Failure") return yield* finish("error", window.failure)
          const request: ModelRequest = {
            model: options.model.name,
            ...(options.model.system === undefined ? {} : { system: options.model.system }),
            messages: window.success.messages,
            tools: options.tools.definitions,
            ...(options.model.maxTokens === undefined ? {} : { maxTokens: options.model.maxTokens })
          }
          const estimate = requestTokens(count, request) + (options.model.maxTokens ?? 0)
          if (options.budget !== undefined) {
            const reserved = yield* Effect.result(budget.reserve(options.budget.agentId, options.budget.tokensPerHour, estimate))
            if (reserved._tag === "Failure") return yield* finish("error", reserved.failure)
          }
          let result: TurnResult | undefined
          for (let attempt = 0; result === undefined; attempt++) {
            const outcome = yield* Effect.result(turn(request))
            if (outcome._tag === "Success") {
              result = outcome.success
            } else if (retryableMidStream(outcome.failure.code) && attempt < (options.model.turnRetries ?? 1)) {
              yield* emit({ type: "turn.retry", attempt: attempt + 1, error: toErrorData(outcome.failure) })
            } else {
              return yield* finish("error", outcome.failure)
            }
          }
          const usage = result.usage ?? { inputTokens: estimate, outputTokens: 0 }
          if (options.budget !== undefined) yield* budget.record(options.budget.agentId, usage.inputTokens + usage.outputTokens)
          lastText = result.text
          conversation = {
            messages: [
              ...conversation.messages,
              { role: "assistant", content: result.text, ...(result.calls.length === 0 ? {} : { toolCalls: result.calls }) }
            ],
            pendingToolCalls: result.calls,
            usage: {
              inputTokens: conversation.usage.inputTokens + usage.inputTokens,
              outputTokens: conversation.usage.outputTokens + usage.outputTokens
            },
            steps: conversation.steps + 1
          }
          yield* emit({ type: "conversation", conversation })
          if (result.calls.length === 0) return yield* finish("final")
          yield* runTools(result.calls)
        }
        return yield* finish(
          "max_steps",
          new MaxStepsExceeded({
            message: `the agent made ${options.maxSteps} model turns without a final answer; raise maxSteps or continue the conversation`
          })
        )
      }),
    { bufferSize: 256, strategy: "suspend" }
  )
  const signal = options.signal
  return signal === undefined
    ? events
    : events.pipe(
      Stream.interruptWhen(
        Effect.callback<void>((resume) => {
          if (signal.aborted) return resume(Effect.void)
          const onAbort = () => resume(Effect.void)
          signal.addEventListener("abort", onAbort, { once: true })
          return Effect.sync(() => signal.removeEventListener("abort", onAbort))
        })
      )
    )
}
