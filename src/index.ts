/**
 * L02 Agent Runtime: runs AI agents as supervised XState actors inside real sandboxes.
 *
 * Two ways in:
 * - the promise API, {@link createRuntime}, for embedding in any Node process;
 * - the Effect API, the {@link AgentRuntime} service and its `layer`, over the ports
 *   {@link SandboxBackend}, {@link StateStore}, {@link CheckpointStore} and {@link EventLog}.
 *
 * @example
 * ```ts
 * import { createRuntime } from "l02-agent-runtime"
 * const runtime = await createRuntime()
 * const { agentId } = await runtime.spawn({ name: "hello", trustLevel: "TRUSTED" })
 * await runtime.terminate(agentId)
 * await runtime.shutdown()
 * ```
 * @packageDocumentation
 */
export { createRuntime, type L02Runtime, type RuntimeOptions } from "./runtime/createRuntime.ts"
export {
  AgentRuntime,
  type AgentRuntimeOptions,
  type AgentRuntimeShape,
  type ExecuteEvent,
  type ExecuteOptions,
  layer as agentRuntimeLayer,
  make as makeAgentRuntime,
  poolLabel,
  type ScaleOptions,
  type SuspendOptions,
  type TerminateOptions
} from "./runtime/AgentRuntime.ts"
export { type AttachOptions, type RunsShape } from "./runtime/AgentRuntimeApi.ts"
export { type ConfigOverrides, type ConfigSources, loadConfig, loadConfigSync } from "./runtime/loadConfig.ts"
export { toMermaid } from "./runtime/machineDiagram.ts"
export * from "./domain/AgentConfig.ts"
export * from "./domain/AgentInstance.ts"
export * from "./domain/AgentState.ts"
export * from "./domain/ConfigReferences.ts"
export * from "./domain/Checkpoint.ts"
export * from "./domain/ErrorCatalog.ts"
export * from "./domain/Errors.ts"
export * from "./domain/FleetStatus.ts"
export * from "./domain/PoolStatus.ts"
export * from "./domain/HealthStatus.ts"
export * from "./domain/Ids.ts"
export * from "./domain/LifecycleEvent.ts"
export * from "./domain/Quantity.ts"
export * from "./domain/resolveSandbox.ts"
export * from "./domain/RuntimeConfig.ts"
export * from "./domain/SandboxConfiguration.ts"
export * from "./domain/WorkflowGraph.ts"
export * from "./domain/WorkflowRun.ts"
export * from "./domain/ExecutionRun.ts"
export { layerMemory as runLogMemory, RunLog, type RunEnd, type RunLogShape, type RunQuery, type RunRetention } from "./services/RunLog.ts"
export { layer as workflowsLayer, type StartOptions, Workflows, type WorkflowsShape } from "./workflows/Workflows.ts"
export { validateGraph, type ValidGraph } from "./workflows/validateGraph.ts"
export { layerMemory as workflowStoreMemory, type WorkflowFilter, WorkflowStore, type WorkflowStoreShape } from "./services/WorkflowStore.ts"
export {
  CheckpointStore,
  type CheckpointRequest,
  type CheckpointStoreShape,
  layerMemory as checkpointStoreMemory
} from "./services/CheckpointStore.ts"
export {
  layerConfig as secretStoreFromConfig,
  layerMemory as secretStoreMemory,
  makeSecretStore,
  SecretStore,
  type SecretStoreShape
} from "./services/SecretStore.ts"
export { type SpawnPolicy } from "./runtime/SpawnPolicy.ts"
export { EventLog, type EventLogShape, type EventQuery, layerMemory as eventLogMemory } from "./services/EventLog.ts"
export {
  type Attachment,
  type BackendCapabilities,
  type ExecChunk,
  type ExecRequest,
  layerMemory as sandboxBackendMemory,
  type OutputLine,
  SandboxBackend,
  type SandboxBackendShape,
  type SandboxEvent,
  type SandboxInfo,
  type SandboxSpec,
  type SandboxStats,
  type SandboxStatus
} from "./services/SandboxBackend.ts"
export {
  type AgentFilter,
  type AgentRecord,
  AtomicWrites,
  type AtomicWritesShape,
  type FleetOperation,
  layerMemory as stateStoreMemory,
  StateStore,
  type StateStoreShape
} from "./services/StateStore.ts"
export { agentMachine, fleetMachine, accepts, backoffDelay } from "../machines/index.ts"
export type {
  AgentContext,
  AgentEvent,
  AgentInput,
  AgentMachine,
  FleetContext,
  FleetEmitted,
  FleetEvent,
  FleetInput,
  FleetMachine,
  FleetPolicy
} from "../machines/index.ts"
