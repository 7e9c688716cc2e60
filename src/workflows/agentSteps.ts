/**
 * One try of an agent step, over the agent runtime: the agent it talks to (a fresh one spawned for
 * the try, found again by its labels when the try runs again after a restart, or a named running
 * agent), the input sent by `execute`, and the answer collected: the text (a model's text, a
 * program's `output` lines) and the data of the program's last `output` line that carried `data`.
 * An agent spawned for the try is terminated when the try ends, also when it is cancelled, but not
 * when the supervisor shuts down (the next start adopts it).
 */
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Stream from "effect/Stream"
import type { AgentInstance } from "../domain/AgentInstance.ts"
import type { ErrorData } from "../domain/ErrorCatalog.ts"
import { AgentNotFound, toErrorData } from "../domain/Errors.ts"
import type { AgentRuntimeShape, ExecuteEvent } from "../runtime/AgentRuntimeApi.ts"
import { workflowLabelPrefix } from "../runtime/SpawnPolicy.ts"
import { type AgentStepOutput, type AgentStepRequest, cancelledCode, shutDownCode } from "./WorkflowHooks.ts"

/** The labels that tie an agent to the workflow try that spawned it. */
export const stepLabels = (request: Pick<AgentStepRequest, "workflowId" | "node" | "attempt" | "role">): Readonly<Record<string, string>> => ({
  [`${workflowLabelPrefix}run`]: request.workflowId,
  [`${workflowLabelPrefix}node`]: request.node,
  [`${workflowLabelPrefix}try`]: `${request.role}-${request.attempt}`
})

const live = (a: AgentInstance) => a.state !== "terminated" && a.state !== "failed" && a.state !== "terminating"

const agentFor = (runtime: AgentRuntimeShape, request: AgentStepRequest) =>
  Effect.gen(function* () {
    if (request.agent !== undefined) {
      const named = (yield* runtime.list()).find((a) => a.config.name === request.agent && live(a))
      if (named === undefined) {
        return yield* new AgentNotFound({ message: `node ${request.node} talks to the agent named ${request.agent}, and no running agent has that name; spawn it first, or give the node spawn: instead` })
      }
      return { agentId: named.agentId, state: named.state, owned: false }
    }
    const labels = stepLabels(request)
    // A try that runs again after a restart finds the agent it spawned before, instead of spawning a second.
    const earlier = (yield* runtime.list({ labels })).find(live)
    if (earlier !== undefined) return { agentId: earlier.agentId, state: earlier.state, owned: true }
    const config = { ...request.spawn!, labels: { ...request.spawn!.labels, ...labels } }
    const spawned = yield* runtime.spawn(config, undefined, { origin: request.origin, workflowStep: true })
    return { agentId: spawned.agentId, state: spawned.state, owned: true }
  })

const collect = (events: ReadonlyArray<ExecuteEvent>, agentId: string): AgentStepOutput | ErrorData => {
  const texts: Array<string> = []
  let data: unknown
  // Lines answering an earlier input (one sent before a restart, to an adopted agent) are not this step's.
  const executionId = events.find((e) => e.type === "done")?.executionId
  for (const e of events) {
    if (e.type === "output" && executionId !== undefined) {
      const answers = (e.data as { id?: unknown } | undefined)?.id
      if (answers !== undefined && answers !== executionId) continue
    }
    if (e.type === "error") return e.error
    if (e.type === "text") texts.push(e.text)
    if (e.type === "output" && e.stream === "stdout") {
      const message = e.data as { type?: unknown; text?: unknown; data?: unknown } | undefined
      if (message === undefined) texts.push(e.line)
      else if (message.type === "output") {
        if (typeof message.text === "string") texts.push(message.text)
        if (message.data !== undefined) data = message.data
      }
    }
  }
  return { text: texts.join(texts.length > 0 && events.some((e) => e.type === "output") ? "\n" : ""), ...(data === undefined ? {} : { data }), agentId }
}

/**
 * Runs one try; fails with the error's plain data (E2021 for a named agent that does not run, the
 * spawn's or the step's own code otherwise).
 */
export const runAgentStep = (
  runtime: AgentRuntimeShape,
  request: AgentStepRequest,
  options: {
    readonly shuttingDown: () => boolean
    readonly started: (agentId: string) => Effect.Effect<void>
    /** Resolves when the step must stop: its run was cancelled, or the supervisor shuts down. */
    readonly stopped: Effect.Effect<"cancel" | "shutdown">
  }
): Effect.Effect<AgentStepOutput, ErrorData> =>
  // The engine runs activities uninterruptibly; the step itself may be stopped.
  Effect.raceFirst(
    Effect.interruptible(step(runtime, request, options)),
    Effect.flatMap(options.stopped, (why) =>
      Effect.fail<ErrorData>(
        why === "cancel"
          ? { code: cancelledCode, message: `the step was stopped: workflow ${request.workflowId} was cancelled`, retryable: false }
          : { code: shutDownCode, message: "the step was cut off by the supervisor's shutdown; it runs again after the restart", retryable: true }
      )
    )
  )

const step = (
  runtime: AgentRuntimeShape,
  request: AgentStepRequest,
  options: { readonly shuttingDown: () => boolean; readonly started: (agentId: string) => Effect.Effect<void> }
): Effect.Effect<AgentStepOutput, ErrorData> =>
  Effect.gen(function* () {
    const agent = yield* Effect.mapError(agentFor(runtime, request), toErrorData)
    yield* options.started(agent.agentId)
    // A step that ended lets its agent go gracefully; a stopped one (cancel) at once.
    const release = (stopped: boolean) =>
      agent.owned && !options.shuttingDown()
        ? Effect.ignore(runtime.terminate(agent.agentId, { reason: `workflow ${request.workflowId} node ${request.node} ${stopped ? "was stopped" : "ended"}`, force: stopped }))
        : Effect.void
    return yield* Effect.gen(function* () {
      if (agent.state === "suspended") yield* Effect.mapError(runtime.resume(agent.agentId), toErrorData)
      // The node owns its step: a node stopped (cancel, timeout) cancels the agent's run with it.
      const events = yield* Stream.runCollect(
        runtime.execute(agent.agentId, request.input, { cancelOnDisconnect: true, ...(request.timeoutMs === undefined ? {} : { timeoutMs: request.timeoutMs }) })
      ).pipe(Effect.mapError(toErrorData))
      const answer = collect(events, agent.agentId)
      return "code" in answer ? yield* Effect.fail(answer) : answer
    }).pipe(Effect.onExit((exit) => release(Exit.isFailure(exit) && Cause.hasInterrupts(exit.cause))))
  })
