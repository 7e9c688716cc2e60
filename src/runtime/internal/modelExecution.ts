/**
 * The runtime's side of the agent loop: builds an agent's model gateway and toolkit from its
 * ModelConfig and runs src/execution/AgentLoop.ts for one input, continuing its persisted conversation.
 */
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import type { ModelConfig } from "../../domain/AgentConfig.ts"
import type { ErrorData } from "../../domain/ErrorCatalog.ts"
import { ConfigInvalid, type RuntimeError } from "../../domain/Errors.ts"
import * as AgentLoop from "../../execution/AgentLoop.ts"
import { makeModelGateway } from "../../execution/providers/ModelProvider.ts"
import * as ScriptedModel from "../../execution/providers/ScriptedModel.ts"
import { TokenBudget, type TokenBudgetShape } from "../../execution/TokenBudget.ts"
import { makeSandboxTools } from "../../execution/tools/SandboxTools.ts"
import { connectMcpServer } from "../../execution/tools/McpTools.ts"
import { makeToolkit } from "../../execution/tools/Toolkit.ts"
import { ModelGateway, type ModelGatewayShape } from "../../services/ModelGateway.ts"
import type { SandboxBackendShape } from "../../services/SandboxBackend.ts"

/** What the model loop streams to `execute` callers (besides the final `done`). */
export type ModelExecuteEvent =
  | { readonly type: "text"; readonly text: string }
  | { readonly type: "tool.call"; readonly id: string; readonly name: string; readonly arguments: string }
  | { readonly type: "tool.result"; readonly toolCallId: string; readonly name: string; readonly content: string; readonly isError: boolean }
  | { readonly type: "usage"; readonly inputTokens: number; readonly outputTokens: number }
  | { readonly type: "error"; readonly error: ErrorData }

type LoopOut = ModelExecuteEvent | { readonly type: "done"; readonly reason: AgentLoop.DoneReason; readonly text: string }

/** Builds (once per agent) the model gateway of a ModelConfig. */
export const gatewayFor = (model: ModelConfig): Effect.Effect<ModelGatewayShape, ConfigInvalid> => {
  if (model.provider === "scripted") {
    return Effect.succeed(
      ScriptedModel.make(
        (model.script ?? []).map((turn) => ({
          ...(turn.text === undefined ? {} : { text: turn.text }),
          ...(turn.toolCalls === undefined ? {} : { toolCalls: turn.toolCalls }),
          ...(turn.usage === undefined ? {} : { usage: turn.usage })
        }))
      ).gateway
    )
  }
  if (model.baseUrl === undefined) {
    return Effect.fail(new ConfigInvalid({ message: `model.baseUrl is required for provider ${model.provider}`, key: "model.baseUrl" }))
  }
  return makeModelGateway({
    provider: model.provider,
    baseUrl: model.baseUrl,
    model: model.model,
    apiKey: model.apiKeyEnv !== undefined ? { env: model.apiKeyEnv } : model.apiKeyFile !== undefined ? { secretFile: model.apiKeyFile } : undefined
  })
}

/** One run of the loop; `onConversation` receives every new conversation state to persist. */
export const runModelLoop = (options: {
  readonly agentId: string
  readonly input: unknown
  readonly model: ModelConfig
  readonly gateway: ModelGatewayShape
  readonly budget: TokenBudgetShape
  readonly tokensPerHour: number
  readonly backend: SandboxBackendShape
  readonly sandboxId: string
  readonly dialect: "posix" | "memory"
  readonly conversation: AgentLoop.Conversation | undefined
  readonly onConversation: (conversation: AgentLoop.Conversation) => Effect.Effect<void>
}): Stream.Stream<LoopOut, RuntimeError> => {
  const input = typeof options.input === "string" ? options.input : JSON.stringify(options.input)
  return Stream.unwrap(
    Effect.gen(function* () {
      // MCP servers are connected for the step and closed with it (a stdio server's process ends).
      const mcpTools = yield* Effect.forEach(options.model.mcp ?? [], (server) => connectMcpServer(server))
      const tools = makeToolkit(
        [...makeSandboxTools(options.backend, { sandboxId: options.sandboxId, dialect: options.dialect }), ...mcpTools.flat()],
        options.model.tools
      )
      return loop(tools)
    })
  )
  function loop(tools: ReturnType<typeof makeToolkit>): Stream.Stream<LoopOut, RuntimeError> {
  return AgentLoop.run(input, {
    conversation: options.conversation,
    tools,
    model: {
      name: options.model.model,
      system: options.model.system,
      maxTokens: options.model.maxTokens,
      contextWindow: options.model.contextWindow
    },
    budget: options.tokensPerHour > 0 ? { agentId: options.agentId, tokensPerHour: options.tokensPerHour } : undefined,
    maxSteps: options.model.maxSteps ?? 8
  }).pipe(
    Stream.provideService(ModelGateway, options.gateway),
    Stream.provideService(TokenBudget, options.budget),
    Stream.mapEffect((event): Effect.Effect<LoopOut | undefined> => {
      switch (event.type) {
        case "conversation":
          return Effect.as(options.onConversation(event.conversation), undefined)
        case "done":
          return Effect.as(options.onConversation(event.conversation), { type: "done" as const, reason: event.reason, text: event.text })
        case "text.delta":
          return Effect.succeed({ type: "text" as const, text: event.text })
        case "tool.call":
          return Effect.succeed({ type: "tool.call" as const, id: event.call.id, name: event.call.name, arguments: event.call.arguments })
        case "tool.result":
          return Effect.succeed({
            type: "tool.result" as const,
            toolCallId: event.toolCallId,
            name: event.name,
            content: event.content,
            isError: event.isError
          })
        case "usage":
          return Effect.succeed({ type: "usage" as const, inputTokens: event.inputTokens, outputTokens: event.outputTokens })
        case "error":
          return Effect.succeed({ type: "error" as const, error: event.error })
        case "turn.retry":
          return Effect.succeed(undefined)
      }
    }),
    Stream.filter((e): e is LoopOut => e !== undefined)
  )
  }
}
