/**
 * A tool an agent can call: its definition for the model and how to run it.
 *
 * A tool's own failure that the model can act on (a command exiting non-zero, a missing file) is
 * an `isError` result; failures of the machinery (timeout, sandbox error, MCP server gone, bad
 * input) are coded errors, which the {@link Toolkit} also turns into error results for the model.
 */
import type * as Effect from "effect/Effect"
import type { ToolFailed, ToolInputInvalid } from "../../domain/Errors.ts"
import type { ToolDefinition } from "../../services/ModelGateway.ts"

/** What a tool returns to the model. */
export interface ToolOutput {
  readonly content: string
  readonly isError?: boolean | undefined
}

/** The coded failures of running a tool. */
export type ToolError = ToolFailed | ToolInputInvalid

/** A runnable tool; `input` has already been validated against `definition.parameters`. */
export interface AgentTool {
  readonly definition: ToolDefinition
  readonly run: (input: Readonly<Record<string, unknown>>) => Effect.Effect<ToolOutput, ToolError>
}
