/**
 * What a running graph needs from the runtime: its run record, somewhere to report each node's
 * progress (record, machine, events), and the agents. The graph interpreter (graphWorkflow.ts)
 * runs on the workflow engine and reaches everything else through this service.
 */
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import type * as Exit from "effect/Exit"
import type { AgentConfig } from "../domain/AgentConfig.ts"
import type { ConfigOrigin } from "../domain/ConfigReferences.ts"
import type { ErrorData } from "../domain/ErrorCatalog.ts"
import type { WorkflowGraph } from "../domain/WorkflowGraph.ts"
import type { NodeRun, WorkflowRun } from "../domain/WorkflowRun.ts"

/** The code of a try cut off by the supervisor's shutdown (E2028): not a try, it runs again after the restart. */
export const shutDownCode = "E2028"
/** The code of a try stopped because its run was cancelled (E2031). */
export const cancelledCode = "E2031"

/** What an agent step answered: its text, the data of its done line, and the agent it talked to. */
export interface AgentStepOutput {
  readonly text: string
  readonly data?: unknown
  readonly agentId: string
}

/** One try of an agent step. */
export interface AgentStepRequest {
  readonly workflowId: string
  readonly node: string
  /** 0 for the first try; the agents of different tries are different agents. */
  readonly attempt: number
  /** `step` or `compensation`. */
  readonly role: "step" | "compensation"
  readonly origin: ConfigOrigin
  readonly spawn?: AgentConfig | undefined
  readonly agent?: string | undefined
  readonly input: unknown
  readonly timeoutMs?: number | undefined
}

/** The shape of {@link WorkflowHooks}. */
export interface WorkflowHooksShape {
  /** The run's record (dies when it is missing: the engine runs only runs the runtime created). */
  readonly run: (workflowId: string) => Effect.Effect<WorkflowRun>
  /** The engine began (or resumed) the run. */
  readonly started: (workflowId: string) => Effect.Effect<void>
  /** A node changed: its record is patched, and an event `workflow.node.<event>` recorded when given. */
  readonly node: (
    workflowId: string,
    node: string,
    patch: Partial<NodeRun>,
    event?: { readonly type: string; readonly data?: Record<string, unknown> | undefined }
  ) => Effect.Effect<void>
  /** An approval node waits for its signal. */
  readonly waiting: (workflowId: string, node: string) => Effect.Effect<void>
  /** An approval node's timeout passed before its signal. */
  readonly timedOut: (workflowId: string, node: string) => Effect.Effect<void>
  /** The run ended (its scope closed): completed, failed or cancelled by the exit. */
  readonly finished: (workflowId: string, exit: Exit.Exit<unknown, unknown>) => Effect.Effect<void>
  /** Runs one try of an agent step: spawns or finds its agent, sends the input, collects the answer. */
  readonly agentStep: (request: AgentStepRequest) => Effect.Effect<AgentStepOutput, ErrorData>
  /** How many agent steps of one run may run at once (workflows.max_parallel_steps). */
  readonly maxParallelSteps: number
  /** Whether the supervisor is shutting down (a step cut off then is no failure, compensations wait). */
  readonly shuttingDown: () => boolean
  /** Creates (once) the record of a sub-workflow node's run and answers its id. */
  readonly child: (parent: WorkflowRun, node: string, graph: WorkflowGraph, input: unknown) => Effect.Effect<string>
}

/** The hooks service the graph interpreter runs with. */
export class WorkflowHooks extends Context.Service<WorkflowHooks, WorkflowHooksShape>()("l02/WorkflowHooks") {}
