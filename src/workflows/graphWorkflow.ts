/**
 * The graph interpreter on the durable workflow engine (effect/workflow): one engine workflow,
 * `l02/graph`, whose payload is a run id. Every node's outcome is an engine activity, clock or
 * deferred, so after a crash the engine replays the run, finished nodes answer from storage and
 * only unfinished ones run again.
 *
 * - agent: each try is the activity `node/<id>/<try>`; between tries a durable sleep
 *   (`retry/<id>/<try>`); a completed step with a compensation registers it on the run's scope,
 *   where it runs (as the activity `compensate/<id>`) if the run later fails or is cancelled
 * - approval: the durable deferred `approval/<id>`, completed by `signal`
 * - timer: the durable clock `timer/<id>`
 * - workflow: a child run of the same engine workflow
 *
 * Nodes run as soon as the nodes before them settled (branches run concurrently); a node whose
 * incoming edges are not taken as its join asks is skipped.
 */
import * as Cause from "effect/Cause"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Schema from "effect/Schema"
import * as Semaphore from "effect/Semaphore"
import * as Activity from "effect/workflow/Activity"
import * as DurableClock from "effect/workflow/DurableClock"
import * as DurableDeferred from "effect/workflow/DurableDeferred"
import * as Workflow from "effect/workflow/Workflow"
import type { ErrorData } from "../domain/ErrorCatalog.ts"
import type { AgentNode, WorkflowEdge, WorkflowNode } from "../domain/WorkflowGraph.ts"
import type { WorkflowRun } from "../domain/WorkflowRun.ts"
import { evaluateCondition } from "./conditions.ts"
import { render, type TemplateScope } from "./templates.ts"
import { type ValidGraph, validateGraph } from "./validateGraph.ts"
import { cancelledCode, shutDownCode, WorkflowHooks } from "./WorkflowHooks.ts"

/** A node's or a run's failure, as the engine stores it. */
export const NodeFailure = Schema.Struct({
  code: Schema.String,
  message: Schema.String,
  retryable: Schema.Boolean,
  node: Schema.optional(Schema.String)
})
/** @see NodeFailure */
export type NodeFailure = typeof NodeFailure.Type

/** The engine workflow every graph run is. */
export const GraphWorkflow = Workflow.make("l02/graph", {
  payload: { workflowId: Schema.String },
  success: Schema.Unknown,
  error: NodeFailure,
  idempotencyKey: (p) => p.workflowId
})

/** The durable deferred an approval node waits on. */
export const approvalDeferred = (node: string) => DurableDeferred.make(`approval/${node}`, { success: Schema.Unknown })

/** Completes the approval node `node` of the run `workflowId` with `value` (on the engine in context). */
export const signalApproval = (workflowId: string, node: string, value: unknown) =>
  Effect.gen(function* () {
    const deferred = approvalDeferred(node)
    const executionId = yield* GraphWorkflow.executionId({ workflowId })
    yield* DurableDeferred.succeed(deferred, { token: DurableDeferred.tokenFromExecutionId(deferred, { workflow: GraphWorkflow, executionId }), value })
  })

/** How often one try may be cut off by a shutdown and run again. */
const maxIncarnations = 5

type Settled = { readonly taken: true; readonly output: unknown } | { readonly taken: false }

const nodeFailed = (run: WorkflowRun, node: string, error: ErrorData): NodeFailure => ({
  code: "E2033",
  message: `node ${node} of workflow ${run.name} (${run.workflowId}) failed: ${error.code}: ${error.message}`,
  retryable: false,
  node
})

/** The wait before the try after try `attempt` (0-based): `backoffSeconds` doubling, at most `maxBackoffSeconds`. */
export const backoffMs = (node: Pick<AgentNode, "retry">, attempt: number): number => {
  const base = (node.retry?.backoffSeconds ?? 1) * 1000
  const max = (node.retry?.maxBackoffSeconds ?? 300) * 1000
  return Math.min(max, base * 2 ** attempt)
}

const interpret = (run: WorkflowRun, valid: ValidGraph) =>
  Effect.gen(function* () {
    const hooks = yield* WorkflowHooks
    const id = run.workflowId
    const settled = new Map<string, Deferred.Deferred<Settled>>()
    for (const nodeId of valid.order) settled.set(nodeId, yield* Deferred.make<Settled>())
    const outputs: Record<string, { readonly output?: unknown; readonly state: string }> = {}
    // A wide fan-out runs its agent steps a few at a time (the permits are this replay's, in memory).
    const steps = yield* Semaphore.make(hooks.maxParallelSteps)
    const scope = (extra?: { readonly failure?: unknown }): TemplateScope => ({ input: run.input, nodes: { ...outputs }, ...extra })

    const agentStep = (node: AgentNode, role: "step" | "compensation", attempt: number, input: unknown) => {
      const target = role === "step" ? node : node.compensate!
      return hooks.agentStep({
        workflowId: id,
        node: node.id,
        attempt,
        role,
        origin: run.origin,
        spawn: target.spawn,
        agent: target.agent,
        input,
        timeoutMs: node.timeoutSeconds === undefined ? undefined : node.timeoutSeconds * 1000
      })
    }

    // One try as an activity. A try the supervisor's shutdown cut off (E2028) is no try: the run
    // stops there, and after the restart the same try runs again under a new activity name (its
    // agent found again by its labels).
    const tryOnce = (node: AgentNode, attempt: number, input: unknown) =>
      Effect.gen(function* () {
        for (let incarnation = 0; ; incarnation++) {
          const exit = yield* Effect.exit(
            Activity.make({
              name: incarnation === 0 ? `node/${node.id}/${attempt}` : `node/${node.id}/${attempt}.${incarnation}`,
              success: Schema.Unknown,
              error: NodeFailure,
              execute: Effect.gen(function* () {
                yield* hooks.node(id, node.id, { state: "running", attempts: attempt + 1, startedAt: new Date().toISOString(), error: undefined }, { type: "workflow.node.started", data: { attempt } })
                return yield* agentStep(node, "step", attempt, input)
              })
            })
          )
          const error = Exit.isFailure(exit) ? Cause.findErrorOption(exit.cause) : undefined
          if (error?._tag === "Some" && error.value.code === shutDownCode) {
            if (hooks.shuttingDown()) return yield* Effect.interrupt
            // Cut off by shutdowns this often: it counts as the try's failure after all.
            if (incarnation < maxIncarnations) continue
          }
          return exit
        }
      })

    const runAgent = (node: AgentNode) =>
      Effect.gen(function* () {
        const attempts = (node.retry?.attempts ?? 0) + 1
        const input = render(node.input, scope())
        for (let attempt = 0; ; attempt++) {
          const exit = yield* steps.withPermit(tryOnce(node, attempt, input))
          if (Exit.isSuccess(exit)) return exit.value
          const error = Cause.findErrorOption(exit.cause)
          if (error._tag === "None") return yield* Effect.failCause(exit.cause as Cause.Cause<never>)
          const failure: ErrorData = { code: error.value.code as ErrorData["code"], message: error.value.message, retryable: error.value.retryable }
          if (failure.code === cancelledCode) {
            yield* hooks.node(id, node.id, { state: "cancelled", finishedAt: new Date().toISOString() }, { type: "workflow.node.cancelled", data: { attempt } })
            return yield* Effect.fail({ ...failure, node: node.id })
          }
          if (attempt + 1 >= attempts) {
            yield* hooks.node(id, node.id, { state: "failed", error: failure, finishedAt: new Date().toISOString() }, { type: "workflow.node.failed", data: { attempt, error: failure } })
            return yield* Effect.fail(nodeFailed(run, node.id, failure))
          }
          const delay = backoffMs(node, attempt)
          yield* hooks.node(id, node.id, { state: "pending", error: failure }, { type: "workflow.node.retry", data: { attempt, error: failure, delayMs: delay } })
          yield* DurableClock.sleep({ name: `retry/${node.id}/${attempt}`, duration: `${delay} millis` })
        }
      })

    const compensate = (node: AgentNode, cause: Cause.Cause<unknown>) =>
      Effect.gen(function* () {
        // A shutdown is no failure: the run resumes after the restart.
        if (hooks.shuttingDown()) return
        const failure = Cause.findErrorOption(cause)
        const reason = failure._tag === "Some" ? failure.value : { code: "cancelled", message: "the workflow was cancelled" }
        const input = render(node.compensate!.input, scope({ failure: reason }))
        yield* hooks.node(id, node.id, { compensation: "running" }, { type: "workflow.compensation.started" })
        const exit = yield* Effect.exit(
          Activity.make({
            name: `compensate/${node.id}`,
            success: Schema.Unknown,
            error: NodeFailure,
            execute: agentStep(node, "compensation", 0, input)
          })
        )
        if (Exit.isSuccess(exit)) {
          yield* hooks.node(id, node.id, { state: "compensated", compensation: "completed" }, { type: "workflow.compensation.completed", data: { output: exit.value } })
        } else {
          const error = Cause.findErrorOption(exit.cause)
          yield* hooks.node(id, node.id, { compensation: "failed" }, { type: "workflow.compensation.failed", data: { error: error._tag === "Some" ? error.value : Cause.pretty(exit.cause) } })
        }
      })

    const runNode = (node: WorkflowNode) => {
      switch (node.kind) {
        case "agent": {
          const step = runAgent(node)
          return node.compensate === undefined ? step : Workflow.withCompensation(step, (_output, cause) => compensate(node, cause))
        }
        case "approval":
          return Effect.gen(function* () {
            yield* hooks.waiting(id, node.id)
            if (node.timeoutSeconds === undefined) return yield* DurableDeferred.await(approvalDeferred(node.id))
            // A durable race: whichever of the signal and the clock came first, the same after a replay.
            const outcome = (yield* DurableDeferred.raceAll({
              name: `approval/${node.id}`,
              success: Schema.Struct({ signalled: Schema.Boolean, value: Schema.optional(Schema.Unknown) }),
              error: Schema.Never,
              effects: [
                Effect.map(DurableDeferred.await(approvalDeferred(node.id)), (value) => ({ signalled: true, value })),
                Effect.as(DurableClock.sleep({ name: `approval-timeout/${node.id}`, duration: `${node.timeoutSeconds} seconds`, inMemoryThreshold: "0 millis" }), { signalled: false })
              ]
            })) as { readonly signalled: boolean; readonly value?: unknown }
            if (outcome.signalled) return outcome.value
            yield* hooks.timedOut(id, node.id)
            if (node.onTimeout !== undefined) return node.onTimeout.value
            const error: ErrorData = { code: "E2033", message: `no signal within ${node.timeoutSeconds} s`, retryable: false }
            yield* hooks.node(id, node.id, { state: "failed", error, finishedAt: new Date().toISOString() }, { type: "workflow.node.failed", data: { error } })
            return yield* Effect.fail(nodeFailed(run, node.id, error))
          })
        case "timer":
          return Effect.gen(function* () {
            yield* hooks.node(id, node.id, { state: "running", startedAt: new Date().toISOString() })
            yield* DurableClock.sleep({ name: `timer/${node.id}`, duration: `${node.seconds} seconds`, inMemoryThreshold: "0 millis" })
          })
        case "workflow":
          return Effect.gen(function* () {
            const childId = yield* Activity.make({
              name: `child/${node.id}`,
              success: Schema.String,
              execute: hooks.child(run, node.id, node.graph, render(node.input, scope()))
            })
            yield* hooks.node(id, node.id, { state: "running", startedAt: new Date().toISOString(), agentId: undefined }, { type: "workflow.node.started", data: { childId } })
            return yield* GraphWorkflow.execute({ workflowId: childId })
          })
      }
    }

    const settle = (nodeId: string, value: Settled) => Deferred.succeed(settled.get(nodeId)!, value)

    const taken = (edge: WorkflowEdge, source: Settled) =>
      source.taken && (edge.when === undefined || evaluateCondition(edge.when, scope()))

    const visit = (nodeId: string) =>
      Effect.gen(function* () {
        const node = valid.nodes.get(nodeId)!
        const incoming = valid.incoming.get(nodeId) ?? []
        const sources = yield* Effect.forEach(incoming, (edge) => Effect.map(Deferred.await(settled.get(edge.from)!), (s) => taken(edge, s)))
        const runs = incoming.length === 0 || ((node.join ?? "all") === "all" ? sources.every(Boolean) : sources.some(Boolean))
        if (!runs) {
          outputs[nodeId] = { state: "skipped" }
          yield* hooks.node(id, nodeId, { state: "skipped" }, { type: "workflow.node.skipped" })
          return yield* settle(nodeId, { taken: false })
        }
        const output = yield* runNode(node)
        outputs[nodeId] = { output, state: "completed" }
        yield* hooks.node(id, nodeId, { state: "completed", output, error: undefined, finishedAt: new Date().toISOString() }, { type: "workflow.node.completed" })
        yield* settle(nodeId, { taken: true, output })
      })

    yield* Effect.forEach(valid.order, visit, { concurrency: "unbounded", discard: true })
    // The run's output: the outputs of the nodes nothing follows.
    const sinks = valid.order.filter((n) => ![...valid.incoming.values()].some((edges) => edges.some((e) => e.from === n)))
    return Object.fromEntries(sinks.filter((n) => outputs[n]?.state === "completed").map((n) => [n, outputs[n]!.output]))
  })

/** The engine workflow's implementation, as a layer over {@link WorkflowHooks}. */
export const graphWorkflowLayer = GraphWorkflow.toLayer(
  Effect.fn(function* (payload) {
    const hooks = yield* WorkflowHooks
    const run = yield* hooks.run(payload.workflowId)
    yield* Workflow.addFinalizer((exit) => hooks.finished(run.workflowId, exit))
    // A graph that no longer validates (stored by an older version) fails its run, naming why.
    const valid = validateGraph(run.graph)
    if (!("order" in valid)) return yield* Effect.fail({ code: valid.code, message: valid.message, retryable: false, ...(valid.node === undefined ? {} : { node: valid.node }) })
    yield* hooks.started(run.workflowId)
    // Cancelled before the engine had the run (a sub-workflow cancelled before its parent handed it over).
    // The engine's own interrupt (idempotent) is then taken as the run suspends.
    const now = (yield* hooks.run(run.workflowId)).state
    if (now === "cancelling" || now === "cancelled") {
      yield* GraphWorkflow.interrupt(yield* GraphWorkflow.executionId({ workflowId: run.workflowId }))
      return yield* DurableDeferred.await(DurableDeferred.make("l02/cancelled"))
    }
    return yield* interpret(run, valid)
  })
)
