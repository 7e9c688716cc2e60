/**
 * The public view of one agent, and the result of spawning one.
 */
import * as Schema from "effect/Schema"
import { AgentConfig } from "./AgentConfig.ts"
import { AgentActivity, AgentState } from "./AgentState.ts"
import { SandboxConfiguration } from "./SandboxConfiguration.ts"

/** The plain error shape carried in states and events. */
export const ErrorDataSchema = Schema.Struct({
  code: Schema.String,
  message: Schema.String,
  retryable: Schema.Boolean
})

/** Live or last known resource usage of an agent's sandbox. */
export const ResourceUsage = Schema.Struct({
  cpuPercent: Schema.optional(Schema.Number),
  memoryBytes: Schema.optional(Schema.Number),
  tokensUsed: Schema.optional(Schema.Number),
  sampledAt: Schema.optional(Schema.String)
})
/** @see ResourceUsage */
export type ResourceUsage = typeof ResourceUsage.Type

/** Everything the runtime knows about an agent. */
export const AgentInstance = Schema.Struct({
  agentId: Schema.String,
  sessionId: Schema.String,
  name: Schema.String,
  state: AgentState,
  activity: Schema.optional(AgentActivity),
  backend: Schema.String,
  /** With `cluster.enabled`: the address of the runner hosting the agent now (`host:port`). */
  hostedBy: Schema.optional(Schema.String),
  sandboxId: Schema.optional(Schema.String),
  config: AgentConfig,
  sandbox: SandboxConfiguration,
  restartCount: Schema.Number,
  checkpointId: Schema.optional(Schema.String),
  lastError: Schema.optional(ErrorDataSchema),
  resourceUsage: Schema.optional(ResourceUsage),
  createdAt: Schema.String,
  updatedAt: Schema.String,
  terminatedAt: Schema.optional(Schema.String)
})
/** @see AgentInstance */
export type AgentInstance = typeof AgentInstance.Type

/** What `spawn` returns once the agent is running. */
export const SpawnResult = Schema.Struct({
  agentId: Schema.String,
  sessionId: Schema.String,
  state: AgentState,
  sandboxId: Schema.optional(Schema.String),
  sandbox: SandboxConfiguration,
  backend: Schema.String
})
/** @see SpawnResult */
export type SpawnResult = typeof SpawnResult.Type
