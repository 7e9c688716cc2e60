/**
 * Checks a workflow graph before anything runs: the document's shape (the schema), then what the
 * schema cannot see: unique node ids, edges between known nodes, no cycle, each agent step naming
 * exactly one agent, and templates and conditions that read only the input and nodes that have
 * finished before them. Every refusal is E2006 naming the node.
 */
import * as Cause from "effect/Cause"
import * as Exit from "effect/Exit"
import * as Schema from "effect/Schema"
import { WorkflowGraphInvalid } from "../domain/Errors.ts"
import { type WorkflowEdge, WorkflowGraph, type WorkflowNode } from "../domain/WorkflowGraph.ts"
import { pathReference, referencesOf, type TemplateReference } from "./templates.ts"

/** A graph that passed validation, with what running it needs. */
export interface ValidGraph {
  readonly graph: WorkflowGraph
  /** Node ids in an order where every node comes after the nodes with edges into it. */
  readonly order: ReadonlyArray<string>
  readonly nodes: ReadonlyMap<string, WorkflowNode>
  /** Incoming edges of each node. */
  readonly incoming: ReadonlyMap<string, ReadonlyArray<WorkflowEdge>>
  /** The sub-workflows' own validated graphs, by node id. */
  readonly children: ReadonlyMap<string, ValidGraph>
}

/** How deep sub-workflows may nest. */
export const maxNesting = 5

const invalid = (message: string, node?: string, key?: string) =>
  new WorkflowGraphInvalid({
    message,
    ...(node === undefined ? {} : { node }),
    ...(key === undefined ? {} : { key })
  })

const decode = (document: unknown, prefix: string): WorkflowGraph | WorkflowGraphInvalid => {
  const where = prefix === "" ? "" : ` of node ${prefix.slice(0, -1)}`
  const result = Schema.decodeUnknownExit(WorkflowGraph)(document, { onExcessProperty: "error" })
  if (Exit.isSuccess(result)) return result.value
  const failure = result.cause.reasons.find(Cause.isFailReason)
  const text = failure === undefined ? "invalid" : String((failure.error as { message?: unknown }).message ?? failure.error)
  const path = /at \[(.+)\]\s*$/s.exec(text)?.[1]?.replaceAll('"', "").replaceAll("][", ".") ?? ""
  const what = text.replace(/\n?\s*at \[.*$/s, "").replaceAll("\n", "; ")
  // Name the node the issue is under, when it is under one.
  const index = /^nodes\.(\d+)/.exec(path)?.[1]
  const nodes = (document as { nodes?: ReadonlyArray<{ id?: unknown }> } | null)?.nodes
  const id = index !== undefined && Array.isArray(nodes) ? nodes[Number(index)]?.id : undefined
  return invalid(
    `the workflow graph${where} does not match the document format${path === "" ? "" : ` at ${path}`}: ${what}`,
    typeof id === "string" ? prefix + id : undefined,
    path === "" ? undefined : path
  )
}

// Kahn's algorithm: the nodes in dependency order, or one node on a cycle.
const topologicalOrder = (ids: ReadonlyArray<string>, edges: ReadonlyArray<WorkflowEdge>): ReadonlyArray<string> | { readonly onCycle: string } => {
  const indegree = new Map(ids.map((id) => [id, 0]))
  for (const e of edges) indegree.set(e.to, (indegree.get(e.to) ?? 0) + 1)
  const ready = ids.filter((id) => indegree.get(id) === 0)
  const order: Array<string> = []
  while (ready.length > 0) {
    const id = ready.shift()!
    order.push(id)
    for (const e of edges) {
      if (e.from !== id) continue
      const left = (indegree.get(e.to) ?? 0) - 1
      indegree.set(e.to, left)
      if (left === 0) ready.push(e.to)
    }
  }
  if (order.length === ids.length) return order
  return { onCycle: ids.find((id) => !order.includes(id))! }
}

const ancestorsOf = (order: ReadonlyArray<string>, edges: ReadonlyArray<WorkflowEdge>): ReadonlyMap<string, ReadonlySet<string>> => {
  const ancestors = new Map<string, Set<string>>()
  for (const id of order) {
    const own = new Set<string>()
    for (const e of edges) {
      if (e.to !== id) continue
      own.add(e.from)
      for (const a of ancestors.get(e.from) ?? []) own.add(a)
    }
    ancestors.set(id, own)
  }
  return ancestors
}

const checkReference = (
  ref: TemplateReference,
  where: string,
  node: string,
  readable: ReadonlySet<string>,
  allowFailure: boolean
): WorkflowGraphInvalid | undefined => {
  if (ref.root === "invalid") {
    return invalid(`${where} of node ${node} has the template {{ ${ref.expression} }}, which names nothing: templates read input.<path>, nodes.<id>.output.<path> or (in a compensation) failure.<path>`, node)
  }
  if (ref.root === "failure" && !allowFailure) return invalid(`${where} of node ${node} reads failure, which only a compensation has`, node)
  if (ref.root === "nodes" && !readable.has(ref.node!)) {
    return invalid(`${where} of node ${node} reads nodes.${ref.node}, which ${ref.node === node ? "is the node itself" : "does not finish before it (add an edge from it, directly or through other nodes)"}`, node)
  }
  return undefined
}

const checkAgentChoice = (choice: { readonly spawn?: unknown; readonly agent?: string | undefined }, node: string, what: string) =>
  (choice.spawn === undefined) === (choice.agent === undefined)
    ? invalid(`${what} of node ${node} names ${choice.spawn === undefined ? "no agent" : "both spawn and agent"}: give exactly one of spawn (an agent config, spawned for the step) or agent (the name of a running agent)`, node)
    : undefined

const checkNode = (node: WorkflowNode, readable: ReadonlySet<string>): WorkflowGraphInvalid | undefined => {
  if (node.kind === "agent") {
    const refused =
      checkAgentChoice(node, node.id, "the step") ??
      referencesOf(node.input).map((r) => checkReference(r, "the input", node.id, readable, false)).find((e) => e !== undefined)
    if (refused !== undefined) return refused
    if (node.compensate !== undefined) {
      const withSelf = new Set([...readable, node.id])
      return (
        checkAgentChoice(node.compensate, node.id, "the compensation") ??
        referencesOf(node.compensate.input).map((r) => checkReference(r, "the compensation's input", node.id, withSelf, true)).find((e) => e !== undefined)
      )
    }
  }
  if (node.kind === "approval" && node.onTimeout !== undefined && node.timeoutSeconds === undefined) {
    return invalid(`approval ${node.id} has onTimeout but no timeoutSeconds; give how long it waits`, node.id)
  }
  if (node.kind === "workflow") {
    return referencesOf(node.input).map((r) => checkReference(r, "the input", node.id, readable, false)).find((e) => e !== undefined)
  }
  return undefined
}

const validateAt = (document: unknown, prefix: string, depth: number): ValidGraph | WorkflowGraphInvalid => {
  const graph = decode(document, prefix)
  if (graph instanceof WorkflowGraphInvalid) return graph
  const nodes = new Map<string, WorkflowNode>()
  for (const node of graph.nodes) {
    if (nodes.has(node.id)) return invalid(`two nodes have the id ${node.id}; node ids are unique`, prefix + node.id)
    nodes.set(node.id, node)
  }
  const edges = graph.edges ?? []
  const seen = new Set<string>()
  for (const [i, e] of edges.entries()) {
    for (const end of [e.from, e.to]) {
      if (!nodes.has(end)) return invalid(`edges[${i}] names the node ${end}, which the graph does not have (it has ${[...nodes.keys()].join(", ")})`, prefix + end, `edges[${i}]`)
    }
    if (e.from === e.to) return invalid(`edges[${i}] goes from ${e.from} to itself; a node that should run again is a retry (retry.attempts)`, prefix + e.from, `edges[${i}]`)
    const key = `${e.from}\u0000${e.to}`
    if (seen.has(key)) return invalid(`edges[${i}] repeats the edge ${e.from} -> ${e.to}`, prefix + e.to, `edges[${i}]`)
    seen.add(key)
  }
  const order = topologicalOrder([...nodes.keys()], edges)
  if (!Array.isArray(order)) {
    const { onCycle } = order as { readonly onCycle: string }
    return invalid(`the edges form a cycle through node ${onCycle}; graphs are acyclic (a step that should repeat is a retry, a loop a sub-workflow)`, prefix + onCycle)
  }
  const ancestors = ancestorsOf(order as ReadonlyArray<string>, edges)
  const incoming = new Map<string, Array<WorkflowEdge>>([...nodes.keys()].map((id) => [id, []]))
  for (const e of edges) {
    incoming.get(e.to)!.push(e)
    if (e.when === undefined) continue
    const ref = pathReference(e.when.path)
    const readable = new Set([e.from, ...(ancestors.get(e.from) ?? [])])
    const refused = checkReference(ref, `the condition on the edge ${e.from} -> ${e.to}`, e.to, readable, false)
    if (refused !== undefined) return invalid(refused.message, prefix + e.to)
  }
  const children = new Map<string, ValidGraph>()
  for (const node of nodes.values()) {
    const refused = checkNode(node, ancestors.get(node.id) ?? new Set())
    if (refused !== undefined) return invalid(refused.message, prefix + node.id, refused.key)
    if (node.kind === "workflow") {
      if (depth >= maxNesting) return invalid(`node ${node.id} nests sub-workflows deeper than ${maxNesting}`, prefix + node.id)
      const child = validateAt(node.graph, `${prefix}${node.id}/`, depth + 1)
      if (child instanceof WorkflowGraphInvalid) return child
      children.set(node.id, child)
    }
  }
  return { graph, order: order as ReadonlyArray<string>, nodes, incoming, children }
}

/**
 * Validates a graph document (already parsed from YAML or JSON). Node ids in refusals of a
 * sub-workflow's nodes are `outer/inner`.
 */
export const validateGraph = (document: unknown): ValidGraph | WorkflowGraphInvalid => validateAt(document, "", 0)
