/**
 * The runtime's side of the agent loop: builds an agent's model gateway and toolkit from its
 * ModelConfig and runs src/execution/AgentLoop.ts for one input, continuing its persisted conversation.
 */
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as Stream from "effect/Stream"
import type { McpServerConfig, ModelConfig } from "../../domain/AgentConfig.ts"
import { declaredMcpServer, type DeclaredResources, endpointOf } from "../../domain/ConfigReferences.ts"
import type { ErrorData } from "../../domain/ErrorCatalog.ts"
import { ConfigInvalid, fromErrorData, ReferenceUnknown, type RuntimeError, toErrorData } from "../../domain/Errors.ts"
import * as AgentLoop from "../../execution/AgentLoop.ts"
import { makeModelGateway } from "../../execution/providers/ModelProvider.ts"
import { resolveApiKey } from "../../execution/providers/ModelSettings.ts"
import * as ScriptedModel from "../../execution/providers/ScriptedModel.ts"
import { makeSecretRedactor, type SecretRedactor } from "../../execution/SecretRedactor.ts"
import { TokenBudget, type TokenBudgetShape } from "../../execution/TokenBudget.ts"
import type { AgentTool } from "../../execution/tools/AgentTool.ts"
import { makeSandboxTools } from "../../execution/tools/SandboxTools.ts"
import * as McpTools from "../../execution/tools/McpTools.ts"
import { makeToolkit } from "../../execution/tools/Toolkit.ts"
import type { SecretStoreShape } from "../../services/SecretStore.ts"
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

/** An agent's model, ready to run: its gateway and the secret values it holds (redacted from outputs). */
export interface PreparedModel {
  readonly gateway: ModelGatewayShape
  /** The model id the requests name. */
  readonly modelId: string
  readonly secrets: ReadonlyArray<Redacted.Redacted<string>>
}

/** What the operator declared, and its secrets: where named endpoints and MCP servers are looked up. */
export interface OperatorResources {
  readonly declared: DeclaredResources
  readonly secrets: SecretStoreShape
}

/**
 * Builds (once per agent) the model gateway of a ModelConfig: from the operator's declared endpoint
 * (`model.endpoint`, its key from a secret), or from explicit settings (embedding code), or scripted.
 */
export const prepareModel = (
  model: ModelConfig,
  resources: OperatorResources
): Effect.Effect<PreparedModel, ConfigInvalid | ReferenceUnknown> =>
  Effect.gen(function* () {
    if (model.provider === "scripted") {
      const gateway = ScriptedModel.make(
        (model.script ?? []).map((turn) => ({
          ...(turn.text === undefined ? {} : { text: turn.text }),
          ...(turn.toolCalls === undefined ? {} : { toolCalls: turn.toolCalls }),
          ...(turn.usage === undefined ? {} : { usage: turn.usage })
        }))
      ).gateway
      return { gateway, modelId: model.model ?? "scripted", secrets: [] }
    }
    if (model.endpoint !== undefined) {
      // Checked at spawn, and again here: the operator may have changed the endpoints since.
      const found = endpointOf({ endpoint: model.endpoint, model: model.model }, resources.declared)
      if (found instanceof ReferenceUnknown) return yield* found
      const { endpoint, modelId } = found
      const apiKey = endpoint.api_key_secret === undefined ? undefined : yield* resources.secrets.resolve(endpoint.api_key_secret)
      const gateway = yield* makeModelGateway({
        provider: endpoint.provider,
        baseUrl: endpoint.base_url,
        model: modelId,
        apiKey,
        ...(endpoint.headers === undefined ? {} : { headers: endpoint.headers }),
        ...(endpoint.timeout_ms === undefined ? {} : { timeoutMs: endpoint.timeout_ms })
      })
      return { gateway, modelId, secrets: apiKey === undefined ? [] : [apiKey] }
    }
    if (model.baseUrl === undefined || model.provider === undefined || model.model === undefined) {
      return yield* new ConfigInvalid({ message: `model.baseUrl is required for provider ${model.provider}; or name a declared endpoint (model.endpoint)`, key: "model.baseUrl" })
    }
    const apiKey = yield* resolveApiKey(
      model.apiKeyEnv !== undefined ? { env: model.apiKeyEnv } : model.apiKeyFile !== undefined ? { secretFile: model.apiKeyFile } : undefined
    )
    const gateway = yield* makeModelGateway({ provider: model.provider, baseUrl: model.baseUrl, model: model.model, apiKey })
    return { gateway, modelId: model.model, secrets: apiKey === undefined ? [] : [apiKey] }
  })

/** The connection of one of an agent's MCP servers, and the secret values it carries. */
const mcpConnection = (
  server: McpServerConfig,
  sandbox: { readonly backend: SandboxBackendShape; readonly sandboxId: string },
  resources: OperatorResources
): Effect.Effect<{ readonly config: McpTools.McpServerConfig; readonly secrets: ReadonlyArray<Redacted.Redacted<string>> }, ConfigInvalid | ReferenceUnknown> =>
  Effect.gen(function* () {
    const base = {
      name: server.name,
      ...(server.allowlist === undefined ? {} : { allowlist: server.allowlist }),
      ...(server.prefix === undefined ? {} : { prefix: server.prefix }),
      ...(server.timeoutMs === undefined ? {} : { timeoutMs: server.timeoutMs })
    }
    if (server.server !== undefined) {
      const declared = declaredMcpServer(resources.declared, server.server)
      if (declared === undefined) {
        return yield* new ReferenceUnknown({ message: `MCP server ${JSON.stringify(server.server)} is not declared in execution.mcp_servers`, key: "mcp.server" })
      }
      const secrets: Array<Redacted.Redacted<string>> = []
      const resolve = (name: string) => Effect.tap(resources.secrets.resolve(name), (value) => Effect.sync(() => secrets.push(value)))
      if (declared.command !== undefined) {
        const env: Record<string, string> = { ...declared.env }
        for (const [variable, secret] of Object.entries(declared.env_secrets ?? {})) env[variable] = Redacted.value(yield* resolve(secret))
        return {
          config: {
            ...base,
            transport: { type: "stdio", command: declared.command[0]!, args: declared.command.slice(1), env, ...(declared.cwd === undefined ? {} : { cwd: declared.cwd }) }
          },
          secrets
        }
      }
      const headers: Record<string, string> = { ...declared.headers }
      if (declared.bearer_secret !== undefined) headers.authorization = `Bearer ${Redacted.value(yield* resolve(declared.bearer_secret))}`
      return { config: { ...base, transport: { type: "http", url: declared.url!, headers } }, secrets }
    }
    const transport = server.transport!
    if (transport.type === "http") {
      return { config: { ...base, transport: { type: "http", url: transport.url, ...(transport.headers === undefined ? {} : { headers: transport.headers }) } }, secrets: [] }
    }
    // An agent's own stdio server runs in its sandbox, as the sandbox user: never on the host.
    return {
      config: {
        ...base,
        transport: {
          type: "sandbox",
          server: {
            backend: sandbox.backend,
            sandboxId: sandbox.sandboxId,
            command: transport.command,
            args: transport.args,
            env: transport.env,
            cwd: transport.cwd
          }
        }
      },
      secrets: []
    }
  })

/** The same coded error with secret values taken out of its message. */
const redactError = <E extends RuntimeError>(redactor: SecretRedactor) => (error: E): E => {
  const message = redactor.redact(error.message)
  return message === error.message ? error : (fromErrorData({ ...toErrorData(error), message }, error.agentId) as E)
}

/** A tool whose results and failures have secret values taken out before the model or anyone sees them. */
const redactedTool = (redactor: SecretRedactor) => (tool: AgentTool): AgentTool => ({
  definition: tool.definition,
  run: (input) =>
    tool.run(input).pipe(
      Effect.map((out) => ({ ...out, content: redactor.redact(out.content) })),
      Effect.mapError(redactError(redactor))
    )
})

/** One run of the loop; `onConversation` receives every new conversation state to persist. */
export const runModelLoop = (options: {
  readonly agentId: string
  readonly input: unknown
  readonly model: ModelConfig
  readonly prepared: PreparedModel
  readonly resources: OperatorResources
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
      const connections = yield* Effect.forEach(options.model.mcp ?? [], (server) =>
        mcpConnection(server, { backend: options.backend, sandboxId: options.sandboxId }, options.resources)
      )
      const redactor = makeSecretRedactor([...options.prepared.secrets, ...connections.flatMap((c) => c.secrets)].map(Redacted.value))
      const mcpTools = yield* Effect.forEach(connections, (connection) => McpTools.connectMcpServer(connection.config).pipe(Effect.mapError(redactError(redactor))))
      const tools = makeToolkit(
        [...makeSandboxTools(options.backend, { sandboxId: options.sandboxId, dialect: options.dialect }), ...mcpTools.flat()].map(redactedTool(redactor)),
        options.model.tools
      )
      return redacted(loop(tools, redactor), redactor)
    })
  )
  function loop(tools: ReturnType<typeof makeToolkit>, redactor: SecretRedactor): Stream.Stream<LoopOut, RuntimeError> {
  return AgentLoop.run(input, {
    conversation: options.conversation,
    tools,
    model: {
      name: options.prepared.modelId,
      system: options.model.system,
      maxTokens: options.model.maxTokens,
      contextWindow: options.model.contextWindow
    },
    budget: options.tokensPerHour > 0 ? { agentId: options.agentId, tokensPerHour: options.tokensPerHour } : undefined,
    maxSteps: options.model.maxSteps ?? 8
  }).pipe(
    Stream.provideService(ModelGateway, options.prepared.gateway),
    Stream.provideService(TokenBudget, options.budget),
    Stream.mapEffect((event): Effect.Effect<LoopOut | undefined> => {
      switch (event.type) {
        case "conversation":
          return Effect.as(options.onConversation(redactor.redactDeep(event.conversation)), undefined)
        case "done":
          return Effect.as(options.onConversation(redactor.redactDeep(event.conversation)), { type: "done" as const, reason: event.reason, text: event.text })
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

/**
 * The loop's output with the step's secret values taken out: text held back across deltas, every
 * other string redacted whole, failures redacted. Conversations are redacted by `runModelLoop`'s caller
 * through the same redactor before they are persisted.
 */
const redacted = (events: Stream.Stream<LoopOut, RuntimeError>, redactor: SecretRedactor): Stream.Stream<LoopOut, RuntimeError> => {
  if (redactor.empty) return events
  const text = redactor.textStream()
  return events.pipe(
    Stream.mapError(redactError(redactor)),
    Stream.flatMap((event): Stream.Stream<LoopOut> => {
      if (event.type === "text") {
        const safe = text.push(event.text)
        return safe === "" ? Stream.empty : Stream.make({ type: "text" as const, text: safe })
      }
      const rest = text.flush()
      const out = redactor.redactDeep(event)
      return rest === "" ? Stream.make(out) : Stream.make({ type: "text" as const, text: rest }, out)
    })
  )
}
