/**
 * The tools of one agent: the allowlist applied, inputs validated against each tool's JSON schema,
 * and every failure turned into a tool result the model can read, never a crash of the loop.
 */
import { Ajv, type ValidateFunction } from "ajv"
import * as Effect from "effect/Effect"
import { ToolInputInvalid, ToolNotAllowed } from "../../domain/Errors.ts"
import type { ToolCall, ToolDefinition } from "../../services/ModelGateway.ts"
import type { AgentTool, ToolError, ToolOutput } from "./AgentTool.ts"

/** The outcome of one tool call: the result for the model, and the coded error when it failed. */
export interface ToolCallOutcome {
  readonly output: ToolOutput
  readonly error?: { readonly code: string; readonly message: string } | undefined
}

/** A set of tools ready to serve model calls. */
export interface Toolkit {
  /** Definitions to offer the model (allowed tools only). */
  readonly definitions: ReadonlyArray<ToolDefinition>
  /** Runs one call; never fails: errors come back as `isError` outputs with their code. */
  readonly call: (call: ToolCall) => Effect.Effect<ToolCallOutcome>
}

/** A tool name is allowed when the list is absent, or contains it, or a `prefix*` matching it. */
export const isAllowed = (allowlist: ReadonlyArray<string> | undefined, name: string): boolean =>
  allowlist === undefined ||
  allowlist.some((entry) => entry === name || (entry.endsWith("*") && name.startsWith(entry.slice(0, -1))))

const failed = (error: ToolError | ToolNotAllowed): ToolCallOutcome => ({
  output: { content: `${error.code} ${error._tag}: ${error.message}`, isError: true },
  error: { code: error.code, message: error.message }
})

/**
 * Builds a toolkit. With an `allowlist`, only the tools it names are offered and callable; the
 * model calling anything else gets an E2088 result.
 */
export const makeToolkit = (tools: ReadonlyArray<AgentTool>, allowlist?: ReadonlyArray<string>): Toolkit => {
  const ajv = new Ajv({ allErrors: true, strict: false })
  const allowed = tools.filter((tool) => isAllowed(allowlist, tool.definition.name))
  const byName = new Map<string, { tool: AgentTool; validate: ValidateFunction }>()
  for (const tool of allowed) {
    byName.set(tool.definition.name, { tool, validate: ajv.compile(tool.definition.parameters) })
  }
  return {
    definitions: allowed.map((tool) => tool.definition),
    call: (call) =>
      Effect.gen(function*() {
        const entry = byName.get(call.name)
        if (entry === undefined) {
          return failed(
            new ToolNotAllowed({
              message: `there is no tool "${call.name}" for this agent; use one of: ${[...byName.keys()].join(", ") || "(none)"}`,
              key: call.name
            })
          )
        }
        let input: unknown
        try {
          input = JSON.parse(call.arguments === "" ? "{}" : call.arguments)
        } catch {
          return failed(new ToolInputInvalid({ message: `the arguments of "${call.name}" are not JSON`, key: call.name }))
        }
        if (!entry.validate(input) || typeof input !== "object" || input === null || Array.isArray(input)) {
          const details = (entry.validate.errors ?? [])
            .map((e) => `${e.instancePath === "" ? "input" : e.instancePath} ${e.message ?? "is invalid"}`)
            .join("; ")
          return failed(
            new ToolInputInvalid({
              message: `the input of "${call.name}" does not match its schema: ${details || "expected an object"}`,
              key: call.name
            })
          )
        }
        const result = yield* Effect.result(entry.tool.run(input as Record<string, unknown>))
        return result._tag === "Success" ? { output: result.success } : failed(result.failure)
      })
  }
}
