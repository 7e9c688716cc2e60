/**
 * Multi-agent workflows: `start` a WorkflowGraph with an input, `get` and `list` runs, `signal` an
 * approval node, `cancel` a run, follow its `events`, `wait` for its end.
 *
 * A run is a record (WorkflowStore), a workflow actor (machines/workflowMachine.ts) that guards its
 * operations, and an execution of the durable engine (engine.ts), which keeps every node's outcome
 * in the store's SQL database: after a crash the next start of the runtime resumes the run where it
 * was, without running a finished node again. Node progress arrives through the hooks below.
 */
import { createHash, randomUUID } from "node:crypto"
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as PubSub from "effect/PubSub"
import * as Schedule from "effect/Schedule"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Tracer from "effect/Tracer"
import { SqlClient } from "effect/sql/SqlClient"
import type { Actor, InspectionEvent } from "xstate"
import type { workflowMachine } from "../../machines/workflowMachine.ts"
import type { AgentConfig } from "../domain/AgentConfig.ts"
import type { ErrorData } from "../domain/ErrorCatalog.ts"
import { ClusterUnavailable, InputInvalid, type RuntimeError, type StoreFailed, WorkflowGraphInvalid, WorkflowTransitionInvalid } from "../domain/Errors.ts"
import type { LifecycleEvent } from "../domain/LifecycleEvent.ts"
import type { WorkflowGraph, WorkflowNode } from "../domain/WorkflowGraph.ts"
import { finalWorkflowStates, type NodeRun, type WorkflowRun, type WorkflowSummary } from "../domain/WorkflowRun.ts"
import type { WorkflowFilter } from "../services/WorkflowStore.ts"
import { WorkflowStore } from "../services/WorkflowStore.ts"
import { AgentRuntime } from "../runtime/AgentRuntime.ts"
import type { SpawnPolicy } from "../runtime/SpawnPolicy.ts"
import { runAgentStep } from "./agentSteps.ts"
import { type Engine, startEngine } from "./engine.ts"
import { type HostedRun, makeRunHost, runNotFound } from "./runHost.ts"
import { validateGraph } from "./validateGraph.ts"
import type { WorkflowHooksShape } from "./WorkflowHooks.ts"

/** Options of `start`. */
export interface StartOptions {
  /** Who sent the graph: `remote` (HTTP) checks its agent configs as remote ones; default `embedding`. */
  readonly policy?: SpawnPolicy | undefined
}

/** The shape of {@link Workflows}. */
export interface WorkflowsShape {
  /** Validates the graph (E2006) and its agent configs (as `spawn` would), writes the run and starts it. */
  readonly start: (graph: unknown, input?: unknown, options?: StartOptions) => Effect.Effect<WorkflowRun, RuntimeError>
  readonly get: (workflowId: unknown) => Effect.Effect<WorkflowRun, RuntimeError>
  /** Runs, oldest first, without their graphs; top-level runs unless `parentId` is given. */
  readonly list: (filter?: WorkflowFilter) => Effect.Effect<ReadonlyArray<WorkflowSummary>, RuntimeError>
  /** Completes a waiting approval node with `value` (its output); E2031 when the node does not wait. */
  readonly signal: (workflowId: unknown, node: unknown, value?: unknown) => Effect.Effect<WorkflowRun, RuntimeError>
  /** Cancels a run: running nodes stop, their agents are terminated, compensations run. */
  readonly cancel: (workflowId: unknown, reason?: string) => Effect.Effect<WorkflowRun, RuntimeError>
  /** The run's events: those recorded so far, then the live ones, ending with the run's end. */
  readonly events: (workflowId: unknown) => Stream.Stream<LifecycleEvent, RuntimeError>
  /** Resolves with the run once it has ended. */
  readonly wait: (workflowId: unknown) => Effect.Effect<WorkflowRun, RuntimeError>
  /** The run's live workflow actor (for inspection). */
  readonly actorOf: (workflowId: string) => Option.Option<Actor<typeof workflowMachine>>
}

/** Options of {@link make}. */
export interface WorkflowsOptions {
  /** The engine runner's name: the runtime id (stable per host, backend, data directory and store). */
  readonly runnerName: string
  readonly inspect?: ((event: InspectionEvent) => void) | undefined
  /** Seconds a run may go unchanged before only its record and snapshot are kept (0: never); default 60. */
  readonly hibernateAfterSeconds?: number | undefined
  /** The runtime's tracer: a span per operation and per node try (the agents' own spans inside). */
  readonly tracer?: Tracer.Tracer | undefined
  /** workflows.max_parallel_steps; default 16. */
  readonly maxParallelSteps?: number | undefined
  /**
   * The engine's tables; a runner of an agent cluster has its own (its runs are its own), and then
   * leaves the pending runs of the shared store to the runners that accepted them.
   */
  readonly engineTablePrefix?: string | undefined
  /**
   * A cluster runner's address: its runs say they are its own (`hostedBy`), and a signal or cancel of
   * another runner's run is refused here with E2034 naming that runner (its engine has the run).
   */
  readonly runnerAddress?: string | undefined
}

/** The workflows service. */
export class Workflows extends Context.Service<Workflows, WorkflowsShape>()("l02/Workflows") {}

const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

const workflowIdOf = (value: unknown) =>
  typeof value === "string" && uuid.test(value.toLowerCase())
    ? Effect.succeed(value.toLowerCase())
    : Effect.fail(new InputInvalid({ message: `expected a workflow id (a UUID; workflows.list() shows them), got ${JSON.stringify(value)?.slice(0, 80)}`, key: "workflowId" }))

// A sub-workflow node's run id, the same on every replay: a UUID made from the parent's id and the node.
const childIdOf = (parentId: string, node: string): string => {
  const h = createHash("sha256").update(`${parentId}/${node}`).digest("hex")
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-8${h.slice(13, 16)}-${((parseInt(h[16]!, 16) & 3) | 8).toString(16)}${h.slice(17, 20)}-${h.slice(20, 32)}`
}

// How far along its lifecycle a node state is (a replay never moves a node back).
const stateRank: Readonly<Record<NodeRun["state"], number>> = {
  pending: 0,
  running: 1,
  waiting: 1,
  completed: 2,
  failed: 2,
  skipped: 2,
  cancelled: 2,
  compensated: 3
}

const summaryOf = ({ graph: _graph, snapshot: _snapshot, ...summary }: WorkflowRun): WorkflowSummary => summary

const spawnConfigs = (graph: WorkflowGraph, prefix = ""): ReadonlyArray<{ readonly node: string; readonly config: AgentConfig }> =>
  graph.nodes.flatMap((n: WorkflowNode) =>
    n.kind === "agent"
      ? [
          ...(n.spawn === undefined ? [] : [{ node: prefix + n.id, config: n.spawn }]),
          ...(n.compensate?.spawn === undefined ? [] : [{ node: `${prefix}${n.id} (compensation)`, config: n.compensate.spawn }])
        ]
      : n.kind === "workflow"
        ? spawnConfigs(n.graph, `${prefix}${n.id}/`)
        : []
  )

const failureOf = (cause: Cause.Cause<unknown>): ErrorData => {
  const error = Cause.findErrorOption(cause)
  if (error._tag === "Some" && typeof error.value === "object" && error.value !== null && "code" in error.value) {
    const e = error.value as { code: ErrorData["code"]; message: string; retryable?: boolean }
    return { code: e.code, message: e.message, retryable: e.retryable ?? false }
  }
  return { code: "E2033", message: `the workflow failed: ${Cause.pretty(cause).split("\n")[0]}`, retryable: false }
}

/** The workflows service, over the agent runtime, the workflow store and the store's SQL database. */
export const make = (options: WorkflowsOptions) =>
  Effect.gen(function* () {
    const runtime = yield* AgentRuntime
    const store = yield* WorkflowStore
    const sql = yield* SqlClient
    const scope = yield* Effect.scope
    const iso = () => new Date().toISOString()
    const hibernate = options.hibernateAfterSeconds ?? 60
    const traced =
      (name: string, attributes: Record<string, unknown>) =>
      <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> => {
        const spanned = effect.pipe(
          Effect.tapError((error) => Effect.annotateCurrentSpan("l02.error.code", (error as { code?: unknown } | undefined)?.code ?? "unknown")),
          Effect.withSpan(name, { attributes: { "l02.runtime_id": options.runnerName, ...attributes } })
        )
        return options.tracer === undefined ? spanned : Effect.withTracer(spanned, options.tracer)
      }
    const idAttribute = (id: unknown) => (typeof id === "string" ? id.slice(0, 100) : "(not an id)")
    const host = yield* makeRunHost({ store, now: iso, inspect: options.inspect, idleMs: hibernate === 0 ? undefined : hibernate * 1000 })
    let shuttingDown = false
    // What tells a run's running steps to stop (cancel), and every step at shutdown.
    const shutdown = Deferred.makeUnsafe<"shutdown">()
    const stops = new Map<string, Deferred.Deferred<"cancel">>()
    const stopOf = (workflowId: string) => {
      let stop = stops.get(workflowId)
      if (stop === undefined) {
        stop = Deferred.makeUnsafe<"cancel">()
        stops.set(workflowId, stop)
      }
      return stop
    }

    // Every event of a run goes through here: written, published on the runtime's events, and on this
    // service's own feed, which a follower subscribes to before it reads the history.
    const feed = yield* PubSub.unbounded<LifecycleEvent>()
    yield* Effect.addFinalizer(() => PubSub.shutdown(feed))
    const record = (workflowId: string, type: string, data?: Record<string, unknown>) =>
      runtime.recordEvents([{ agentId: workflowId, type, data: { workflowId, ...data }, at: iso() }]).pipe(
        Effect.retry({ schedule: Schedule.exponential("100 millis"), times: 5 }),
        Effect.flatMap((events) => PubSub.publishAll(feed, events)),
        Effect.ignore
      )

    const patchNode = (node: string, patch: Partial<NodeRun>) => (run: WorkflowRun): WorkflowRun => ({
      ...run,
      nodes: { ...run.nodes, [node]: { ...(run.nodes[node] ?? { state: "pending", attempts: 0 }), ...patch } as NodeRun }
    })

    const loaded = (workflowId: string) => Effect.orDie(host.load(workflowId))
    // What the engine has done must reach the record: a store that refuses is asked again (100 ms
    // doubling to 5 s, for about a minute) before the run's fiber gives up.
    const writeSurely = <A>(write: Effect.Effect<A, StoreFailed>) =>
      write.pipe(Effect.retry({ schedule: Schedule.exponential("100 millis").pipe(Schedule.modifyDelay((m) => Effect.succeed(Duration.min(m.output, Duration.seconds(5))))), times: 20 }), Effect.orDie)

    const hooks: WorkflowHooksShape = {
      run: (workflowId) => Effect.map(loaded(workflowId), (h) => h.run),
      started: (workflowId) =>
        Effect.gen(function* () {
          const hosted = yield* loaded(workflowId)
          if (yield* writeSurely(host.change(hosted, { event: { type: "workflow.start" } }))) yield* record(workflowId, "workflow.started")
        }),
      node: (workflowId, node, patch, event) =>
        Effect.gen(function* () {
          const hosted = yield* loaded(workflowId)
          const before = hosted.run.nodes[node]
          // The engine replays a run's body from the top (after a signal, a timer, a restart): a node
          // never goes back in its lifecycle, and only a change is an event. A try's start, reported
          // from inside its activity, is one each time it really starts.
          const tryStart = event?.type === "workflow.node.started" && event.data?.attempt !== undefined
          // A try failed and another follows: back to pending, only from the try that failed.
          const retry = event?.type === "workflow.node.retry" && before?.state === "running" && before.attempts === Number(event.data?.attempt) + 1
          if (patch.state !== undefined && before !== undefined && stateRank[patch.state] < stateRank[before.state] && !tryStart && !retry) return
          if (patch.compensation !== undefined && before?.compensation === patch.compensation) return
          yield* writeSurely(host.change(hosted, { patch: patchNode(node, patch) }))
          const changed = patch.state === undefined ? patch.compensation !== undefined : patch.state !== before?.state
          if (event !== undefined && (changed || tryStart)) yield* record(workflowId, event.type, { node, ...event.data })
        }),
      waiting: (workflowId, node) =>
        Effect.gen(function* () {
          const hosted = yield* loaded(workflowId)
          if (hosted.run.nodes[node]?.state !== "pending") return
          yield* writeSurely(host.change(hosted, { event: { type: "workflow.waiting", node }, patch: patchNode(node, { state: "waiting", startedAt: iso() }) }))
          yield* record(workflowId, "workflow.node.waiting", { node })
        }),
      timedOut: (workflowId, node) =>
        Effect.gen(function* () {
          const hosted = yield* loaded(workflowId)
          if (hosted.run.nodes[node]?.state !== "waiting") return
          yield* writeSurely(host.change(hosted, { event: { type: "workflow.timedOut", node }, patch: patchNode(node, { state: "running" }) }))
          yield* record(workflowId, "workflow.node.timedOut", { node })
        }),
      finished: (workflowId, exit) =>
        Effect.gen(function* () {
          if (shuttingDown) return
          stops.delete(workflowId)
          const hosted = yield* loaded(workflowId)
          const settleOpen = (state: NodeRun["state"]) => (run: WorkflowRun): WorkflowRun => ({
            ...run,
            nodes: Object.fromEntries(
              Object.entries(run.nodes).map(([id, n]) => [id, n.state === "pending" || n.state === "running" || n.state === "waiting" ? { ...n, state } : n])
            )
          })
          // The engine also closes the scopes of runs a later replay superseded (with success): the
          // run's machine, already final, takes no second end.
          if (Exit.isSuccess(exit)) {
            if (yield* writeSurely(host.change(hosted, { event: { type: "workflow.completed", output: exit.value } }))) yield* record(workflowId, "workflow.completed")
            return
          }
          // A cancelled run ends cancelled, whether its stop reached it as an interrupt or as a stopped step.
          if (Cause.hasInterruptsOnly(exit.cause) || hosted.run.state === "cancelling") {
            // A sub-workflow is interrupted with its parent's cancel, without a cancel of its own.
            if (host.accepts(hosted, { type: "workflow.cancel" })) {
              yield* writeSurely(host.change(hosted, { event: { type: "workflow.cancel", reason: "its parent run was cancelled" } }))
            }
            if (yield* writeSurely(host.change(hosted, { event: { type: "workflow.cancelled" }, patch: settleOpen("cancelled") }))) {
              yield* record(workflowId, "workflow.cancelled", { reason: hosted.actor.getSnapshot().context.cancelReason })
            }
            return
          }
          const error = failureOf(exit.cause)
          if (yield* writeSurely(host.change(hosted, { event: { type: "workflow.failed", error }, patch: settleOpen("cancelled") }))) {
            yield* record(workflowId, "workflow.failed", { error })
          }
        }),
      shuttingDown: () => shuttingDown,
      maxParallelSteps: options.maxParallelSteps ?? 16,
      agentStep: (request) =>
        traced("l02.workflow.node", {
          "l02.workflow_id": request.workflowId,
          "l02.workflow.node": request.node,
          "l02.workflow.attempt": request.attempt,
          "l02.workflow.role": request.role
        })(runAgentStep(runtime, request, {
          shuttingDown: () => shuttingDown,
          // A compensation runs because of the cancel: only the shutdown stops it.
          stopped:
            request.role === "compensation"
              ? Deferred.await(shutdown)
              : Effect.raceFirst(Deferred.await(shutdown), Deferred.await(stopOf(request.workflowId))),
          started: (agentId) => Effect.flatMap(loaded(request.workflowId), (h) => writeSurely(host.change(h, { patch: patchNode(request.node, { agentId }) })))
        })),
      child: (parent, node, graph, input) =>
        Effect.gen(function* () {
          const childId = childIdOf(parent.workflowId, node)
          const known = yield* Effect.orDie(store.get(childId))
          if (Option.isSome(known)) return childId
          yield* Effect.orDie(host.create(newRun(childId, graph, input, parent.origin, parent.workflowId)))
          return childId
        })
    }

    const newRun = (workflowId: string, graph: WorkflowGraph, input: unknown, origin: WorkflowRun["origin"], parentId?: string): WorkflowRun => {
      const at = iso()
      return {
        workflowId,
        ...(parentId === undefined ? {} : { parentId }),
        name: graph.name,
        state: "pending",
        graph,
        input,
        origin,
        ...(options.runnerAddress === undefined ? {} : { hostedBy: options.runnerAddress }),
        nodes: Object.fromEntries(graph.nodes.map((n) => [n.id, { state: "pending", attempts: 0 } satisfies NodeRun])),
        createdAt: at,
        updatedAt: at
      }
    }

    // The engine runs in its own scope, closed (after marking the shutdown) before the runtime's other parts.
    const engineScope = yield* Scope.fork(scope, "sequential")
    yield* Effect.addFinalizer(() =>
      Effect.suspend(() => {
        shuttingDown = true
        Deferred.doneUnsafe(shutdown, Exit.succeed("shutdown" as const))
        return Scope.close(engineScope, Exit.void)
      })
    )
    const engine = yield* Effect.cached(startEngine({ sql, hooks, runnerName: options.runnerName, tablePrefix: options.engineTablePrefix, scope: engineScope }).pipe(Effect.orDie))
    const withEngine = <A, E>(f: (engine: Engine) => Effect.Effect<A, E, any>) =>
      Effect.flatMap(engine, (e) => Effect.provideContext(f(e), e.context) as Effect.Effect<A, E>)
    const executionIdOf = (workflowId: string) => withEngine((e) => e.graph.GraphWorkflow.executionId({ workflowId }))
    const execute = (workflowId: string) => withEngine((e) => Effect.asVoid(e.graph.GraphWorkflow.execute({ workflowId }, { discard: true })))

    // Unfinished runs (of an earlier process) resume: the engine, once started, redelivers the messages
    // of the runs it had begun from its storage; a run it never received (the process stopped between
    // writing the record and handing the run over) is handed over now.
    const unfinished = yield* Effect.orDie(store.list({ state: ["pending", "running", "waiting", "cancelling"], limit: 1 }))
    if (unfinished.length > 0) {
      yield* engine
      if (options.engineTablePrefix === undefined) {
        for (const run of yield* Effect.orDie(store.list({ state: "pending", parentId: null }))) yield* execute(run.workflowId)
      }
    }

    const start: WorkflowsShape["start"] = (document, input, startOptions) =>
      Effect.gen(function* () {
        const valid = validateGraph(document)
        if (valid instanceof WorkflowGraphInvalid) return yield* valid
        for (const { node, config } of spawnConfigs(valid.graph)) {
          yield* runtime.checkSpawn(config, startOptions?.policy).pipe(
            Effect.mapError((e) => Object.assign(e, { message: `node ${node}: ${e.message}` }))
          )
        }
        const hosted = yield* host.create(newRun(randomUUID(), valid.graph, input ?? null, startOptions?.policy?.origin ?? "embedding"))
        yield* record(hosted.run.workflowId, "workflow.created", { name: hosted.run.name })
        yield* execute(hosted.run.workflowId)
        return hosted.run
      })

    // Read from the store: it holds what every writer of the run wrote.
    const get: WorkflowsShape["get"] = (workflowId) =>
      Effect.flatMap(workflowIdOf(workflowId), (id) =>
        Effect.flatMap(store.get(id), (found) =>
          Option.isSome(found)
            ? Effect.succeed(found.value)
            : Effect.fail(runNotFound(id))
        )
      )

    const refuse = (hosted: HostedRun, operation: string, why: string) =>
      new WorkflowTransitionInvalid({
        message: `${operation} is not accepted: workflow ${hosted.run.name} (${hosted.run.workflowId}) is ${hosted.run.state}${why}`,
        workflowId: hosted.run.workflowId,
        state: hosted.run.state,
        operation
      })

    /** A run another runner of the cluster hosts: refused here, before anything changes. */
    const hereOnly = (id: string, operation: string) =>
      Effect.gen(function* () {
        const found = yield* store.get(id)
        const owner = Option.isSome(found) ? found.value.hostedBy : undefined
        if (owner !== undefined && owner !== options.runnerAddress) {
          return yield* new ClusterUnavailable({
            message: `workflow ${id} runs on the runner at ${owner}, whose engine has it; ${operation} it through that runner (a workflow does not move between runners yet)`
          })
        }
      })

    const signal: WorkflowsShape["signal"] = (workflowId, node, value) =>
      Effect.gen(function* () {
        const id = yield* workflowIdOf(workflowId)
        if (typeof node !== "string") return yield* new InputInvalid({ message: "the node to signal is the id of an approval node", key: "node" })
        yield* hereOnly(id, "signal")
        const hosted = yield* host.load(id)
        return yield* hosted.operations.withPermit(
          Effect.gen(function* () {
            if (!host.accepts(hosted, { type: "workflow.signal", node })) {
              const waiting = hosted.actor.getSnapshot().context.waiting
              return yield* refuse(hosted, `signal ${node}`, waiting.length === 0 ? " and waits for no signal" : `; it waits for a signal to ${waiting.join(", ")}`)
            }
            // The engine takes the value first: a refusal there changes nothing; the record follows.
            yield* withEngine((e) => e.graph.signalApproval(id, node, value ?? null))
            const taken = yield* host.change(hosted, { event: { type: "workflow.signal", node }, patch: patchNode(node, { state: "running", output: value ?? null }) })
            if (!taken) return yield* refuse(hosted, `signal ${node}`, ", which ended before the signal was taken")
            yield* record(id, "workflow.signalled", { node, value: value ?? null })
            return hosted.run
          })
        )
      })

    const cancel: WorkflowsShape["cancel"] = (workflowId, reason) =>
      Effect.gen(function* () {
        const id = yield* workflowIdOf(workflowId)
        yield* hereOnly(id, "cancel")
        const hosted = yield* host.load(id)
        return yield* hosted.operations.withPermit(
          Effect.gen(function* () {
            if (!(yield* host.change(hosted, { event: { type: "workflow.cancel", reason } }))) return yield* refuse(hosted, "cancel", "")
            yield* record(id, "workflow.cancelling", { reason })
            // Its running steps stop now, and the engine's interrupt ends the run; its sub-workflows'
            // (innermost first) too, since a parent waiting on a child takes no interrupt until it ends.
            const stopTree = (runId: string): Effect.Effect<void, StoreFailed> =>
              Effect.gen(function* () {
                Deferred.doneUnsafe(stopOf(runId), Exit.succeed("cancel" as const))
                for (const child of yield* store.list({ parentId: runId })) {
                  if (!finalWorkflowStates.includes(child.state)) yield* stopTree(child.workflowId)
                }
                yield* withEngine((e) => Effect.flatMap(executionIdOf(runId), (executionId) => e.graph.GraphWorkflow.interrupt(executionId)))
              })
            yield* stopTree(id)
            return hosted.run
          })
        )
      })

    const isFinal = (run: WorkflowRun) => finalWorkflowStates.includes(run.state)

    const wait: WorkflowsShape["wait"] = (workflowId) =>
      Effect.gen(function* () {
        const id = yield* workflowIdOf(workflowId)
        // Subscribed before looking, so an end in between is not missed.
        return yield* Effect.scoped(
          Effect.gen(function* () {
            const changes = yield* Stream.toPull(host.changes.pipe(Stream.filter((r) => r.workflowId === id && isFinal(r))))
            const hosted = yield* host.load(id)
            if (isFinal(hosted.run)) return hosted.run
            const next = yield* changes
            return next[0]!
          })
        ).pipe(Effect.catchTag("NoSuchElementError" as never, () => Effect.flatMap(host.load(id), (h) => Effect.succeed(h.run))))
      }) as Effect.Effect<WorkflowRun, RuntimeError>

    const events: WorkflowsShape["events"] = (workflowId) =>
      Stream.unwrap(
        Effect.gen(function* () {
          const id = (yield* get(workflowId)).workflowId
          const ends = new Set(["workflow.completed", "workflow.failed", "workflow.cancelled"])
          // Subscribed before the history is read, so nothing recorded in between is missed.
          const subscription = yield* PubSub.subscribe(feed)
          const recorded = yield* runtime.history({ agentId: id })
          const lastId = recorded.at(-1)?.eventId ?? 0
          if (recorded.some((e) => ends.has(e.type))) return Stream.fromIterable(recorded)
          const live = Stream.fromSubscription(subscription).pipe(Stream.filter((e) => e.agentId === id && (e.eventId ?? 0) > lastId))
          return Stream.concat(Stream.fromIterable(recorded), live).pipe(Stream.takeUntil((e) => ends.has(e.type)))
        })
      )

    return Workflows.of({
      start: (graph, input, startOptions) =>
        traced("l02.workflow.start", { "l02.workflow.name": typeof (graph as { name?: unknown } | null)?.name === "string" ? (graph as { name: string }).name.slice(0, 100) : "" })(
          Effect.tap(start(graph, input, startOptions), (run) => Effect.annotateCurrentSpan("l02.workflow_id", run.workflowId))
        ),
      get,
      list: (filter) => Effect.map(store.list({ parentId: null, ...filter }), (runs) => runs.map(summaryOf)),
      signal: (workflowId, node, value) =>
        traced("l02.workflow.signal", { "l02.workflow_id": idAttribute(workflowId), "l02.workflow.node": idAttribute(node) })(signal(workflowId, node, value)),
      cancel: (workflowId, reason) => traced("l02.workflow.cancel", { "l02.workflow_id": idAttribute(workflowId) })(cancel(workflowId, reason)),
      events,
      wait,
      actorOf: (workflowId) => Option.map(Option.fromUndefinedOr(host.hosted().find((h) => h.run.workflowId === workflowId)), (h) => h.actor)
    })
  })

/** The workflows service as a layer. */
export const layer = (options: WorkflowsOptions) =>
  Layer.effect(Workflows, make(options))
