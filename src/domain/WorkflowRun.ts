/**
 * One run of a workflow graph, as the store keeps it and `workflows.get` answers it: the graph, its
 * input, the run's state and each node's state and output.
 */
import type { ConfigOrigin } from "./ConfigReferences.ts"
import type { ErrorData } from "./ErrorCatalog.ts"
import type { WorkflowGraph } from "./WorkflowGraph.ts"

/** Where a run is (the workflow machine's states). */
export type WorkflowStateValue = "pending" | "running" | "waiting" | "cancelling" | "completed" | "failed" | "cancelled"

/** The states a run ends in. */
export const finalWorkflowStates: ReadonlyArray<WorkflowStateValue> = ["completed", "failed", "cancelled"]

/** Where a node is. */
export type NodeState = "pending" | "running" | "waiting" | "completed" | "failed" | "skipped" | "cancelled" | "compensated"

/** One node of a run. */
export interface NodeRun {
  readonly state: NodeState
  /** Tries started so far. */
  readonly attempts: number
  readonly output?: unknown
  readonly error?: ErrorData | undefined
  /** The agent the current or last try talks to. */
  readonly agentId?: string | undefined
  readonly startedAt?: string | undefined
  readonly finishedAt?: string | undefined
  /** Where the node's compensation is, once it ran. */
  readonly compensation?: "running" | "completed" | "failed" | undefined
}

/** A workflow run. */
export interface WorkflowRun {
  readonly workflowId: string
  /** The run that started this one as a sub-workflow node. */
  readonly parentId?: string | undefined
  readonly name: string
  readonly state: WorkflowStateValue
  readonly graph: WorkflowGraph
  readonly input: unknown
  /** Whether the graph came from outside the process (HTTP): its agent configs are checked as remote ones. */
  readonly origin: ConfigOrigin
  /** With `cluster.enabled`: the runner the run belongs to (`host:port`), which alone signals and cancels it. */
  readonly hostedBy?: string | undefined
  readonly nodes: Readonly<Record<string, NodeRun>>
  readonly output?: unknown
  readonly error?: ErrorData | undefined
  /** The workflow actor's persisted snapshot. */
  readonly snapshot?: unknown
  readonly createdAt: string
  readonly updatedAt: string
}

/** A run without its graph and snapshot, as lists show it. */
export type WorkflowSummary = Omit<WorkflowRun, "graph" | "snapshot">
