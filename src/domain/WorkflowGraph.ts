/**
 * The specification's `WorkflowGraph`: a multi-agent workflow as a document (YAML or JSON).
 *
 * Nodes are agent steps, approvals (a person's signal), durable timers and sub-workflows; edges say
 * what runs after what, optionally under a condition. A node runs once every node with an edge into
 * it has settled: with `join: "all"` (the default) when every incoming edge is taken, with
 * `join: "any"` when at least one is; otherwise it is skipped, and so are the nodes that depend on it
 * alone. Values are passed by templates: `{{ input.topic }}`, `{{ nodes.plan.output.text }}`.
 *
 * This module only describes the document; `src/workflows/validateGraph.ts` checks what the schema
 * cannot (ids, edges, cycles, references).
 */
import * as Schema from "effect/Schema"
import { AgentConfig } from "./AgentConfig.ts"

/** A node id: letters, digits, `-` and `_`, starting with a letter (templates name nodes by it). */
export const NodeId = Schema.String.check(
  Schema.makeFilter((s: string) => /^[A-Za-z][A-Za-z0-9_-]{0,62}$/.test(s) || `a node id of 1-63 letters, digits, '-' or '_', starting with a letter, got ${JSON.stringify(s)}`)
)

/** How often a failed node is tried again, and how long to wait between tries (doubling). */
export const RetryPolicy = Schema.Struct({
  /** Tries after the first; 0 by default. */
  attempts: Schema.Number.check(Schema.isInt(), Schema.isGreaterThanOrEqualTo(0), Schema.isLessThanOrEqualTo(20)),
  /** Wait before the first retry; doubles for each further one. Default 1. */
  backoffSeconds: Schema.optional(Schema.Number.check(Schema.isGreaterThanOrEqualTo(0), Schema.isLessThanOrEqualTo(86_400))),
  /** The longest wait between tries. Default 300. */
  maxBackoffSeconds: Schema.optional(Schema.Number.check(Schema.isGreaterThanOrEqualTo(0), Schema.isLessThanOrEqualTo(86_400)))
})
/** @see RetryPolicy */
export type RetryPolicy = typeof RetryPolicy.Type

/**
 * Which agent a step talks to: `spawn` a fresh one from a config (terminated when the step ends), or
 * `agent`, the name of one that already runs (left running).
 */
const StepAgent = {
  spawn: Schema.optional(AgentConfig),
  agent: Schema.optional(Schema.String.check(Schema.isMinLength(1)))
}

const seconds = Schema.Number.check(Schema.isGreaterThan(0), Schema.isLessThanOrEqualTo(30 * 86_400))

/** A step that undoes a completed agent step when a later node fails or the workflow is cancelled. */
export const Compensation = Schema.Struct({
  ...StepAgent,
  /** What the compensating agent is sent; templates may read the input, earlier outputs and `failure`. */
  input: Schema.Unknown
})
/** @see Compensation */
export type Compensation = typeof Compensation.Type

const common = {
  id: NodeId,
  /** Shown in the dashboard and the events. */
  title: Schema.optional(Schema.String),
  /** How many of the incoming edges must be taken for the node to run. */
  join: Schema.optional(Schema.Literals(["all", "any"]))
}

/** Sends one input to an agent and captures its answer as the node's output (`text`, `data`). */
export const AgentNode = Schema.Struct({
  ...common,
  kind: Schema.Literal("agent"),
  ...StepAgent,
  /** The input: a string or any JSON value, templates in its strings. */
  input: Schema.Unknown,
  /** The longest one try may take (default: execution.step_timeout_seconds). */
  timeoutSeconds: Schema.optional(seconds),
  retry: Schema.optional(RetryPolicy),
  compensate: Schema.optional(Compensation)
})
/** @see AgentNode */
export type AgentNode = typeof AgentNode.Type

/** Waits, durably, for a signal (`workflows.signal(id, node, value)`); the value is its output. */
export const ApprovalNode = Schema.Struct({
  ...common,
  kind: Schema.Literal("approval"),
  /** What the person is asked. */
  prompt: Schema.optional(Schema.String),
  /** How long to wait for the signal (a durable clock); without `onTimeout` the node then fails (E2033). */
  timeoutSeconds: Schema.optional(seconds),
  /** The node's output when the timeout passes first (e.g. `{ approved: false }`). */
  onTimeout: Schema.optional(Schema.Struct({ value: Schema.Unknown }))
})
/** @see ApprovalNode */
export type ApprovalNode = typeof ApprovalNode.Type

/** Waits durably for a time; survives a restart of the supervisor. */
export const TimerNode = Schema.Struct({
  ...common,
  kind: Schema.Literal("timer"),
  seconds
})
/** @see TimerNode */
export type TimerNode = typeof TimerNode.Type

/** The shape of a graph document (see {@link WorkflowGraph}). */
export interface WorkflowGraphShape {
  readonly name: string
  readonly description?: string | undefined
  readonly nodes: ReadonlyArray<WorkflowNode>
  readonly edges?: ReadonlyArray<WorkflowEdge> | undefined
}

/** Runs another graph as one node; its output is the sub-workflow's output. */
export interface WorkflowSubNode {
  readonly id: string
  readonly title?: string | undefined
  readonly join?: "all" | "any" | undefined
  readonly kind: "workflow"
  readonly graph: WorkflowGraphShape
  /** The sub-workflow's input; templates in its strings. */
  readonly input?: unknown
}

/** A condition on an edge: the value at `path` (e.g. `nodes.review.output.data.verdict`) compared. */
export const EdgeCondition = Schema.Struct({
  path: Schema.String.check(Schema.isMinLength(1)),
  equals: Schema.optional(Schema.Unknown),
  notEquals: Schema.optional(Schema.Unknown),
  /** The value, as text, contains this. */
  contains: Schema.optional(Schema.String),
  /** The value is present and not false, null, 0 or "". */
  truthy: Schema.optional(Schema.Boolean)
})
/** @see EdgeCondition */
export type EdgeCondition = typeof EdgeCondition.Type

/** `to` runs after `from` (when `when` holds). */
export const WorkflowEdge = Schema.Struct({
  from: NodeId,
  to: NodeId,
  when: Schema.optional(EdgeCondition)
})
/** @see WorkflowEdge */
export type WorkflowEdge = typeof WorkflowEdge.Type

/** Any node of a graph. */
export type WorkflowNode = AgentNode | ApprovalNode | TimerNode | WorkflowSubNode

const SubNode: Schema.Codec<WorkflowSubNode> = Schema.Struct({
  ...common,
  kind: Schema.Literal("workflow"),
  graph: Schema.suspend((): Schema.Codec<WorkflowGraphShape> => WorkflowGraph),
  input: Schema.optional(Schema.Unknown)
})

/** One node; `kind` says which. */
export const WorkflowNode: Schema.Codec<WorkflowNode> = Schema.Union([AgentNode, ApprovalNode, TimerNode, SubNode])

/** A workflow graph document. */
export const WorkflowGraph: Schema.Codec<WorkflowGraphShape> = Schema.Struct({
  name: Schema.String.check(Schema.isMinLength(1), Schema.isMaxLength(200)),
  description: Schema.optional(Schema.String),
  nodes: Schema.Array(WorkflowNode).check(Schema.isMinLength(1), Schema.isMaxLength(500)),
  edges: Schema.optional(Schema.Array(WorkflowEdge).check(Schema.isMaxLength(5000)))
})
/** @see WorkflowGraph */
export type WorkflowGraph = WorkflowGraphShape
