/**
 * One execute step: the agent (resumed first when suspended) is marked busy for the step and idle
 * after it, however it ends; with a model, the agent loop runs (its conversation persisted as it
 * goes); without, the JSON-lines program protocol. The step lives in the scope it is begun in (a
 * durable run's, see executionRuns.ts): closing that scope ends it.
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type { AgentState } from "../../domain/AgentState.ts"
import { ExecuteFailed, type RuntimeError } from "../../domain/Errors.ts"
import type { ExecuteEvent } from "../AgentRuntimeApi.ts"
import { runProgramStep } from "./programProtocol.ts"
import type { RuntimeCore } from "./runtimeCore.ts"

/** What a step is begun with: the run it belongs to (its id is the step's execution id) and its timeout. */
export interface StepOptions {
  readonly runId: string
  /** How long to wait for the agent's `done` line; default 300 s. */
  readonly timeoutMs?: number | undefined
  /** Runs once the agent accepted the step (it is busy), before its input is sent; its failure ends the step. */
  readonly accepted?: Effect.Effect<void, RuntimeError> | undefined
}

/**
 * Begins steps over the runtime's core; `resume` wakes a suspended agent for the step. A step that
 * the agent's state refuses (E2020), an unknown agent (E2021) or a failure before the step is under way
 * fails the effect; once it succeeds, the agent is busy and the stream is the step's output.
 */
export const makeExecuteStep = (core: RuntimeCore, resume: (agentId: string) => Effect.Effect<AgentState, RuntimeError>) => {
  const { backend, host, now, tokenBudget, operatorResources } = core
  const { liveOrTerminated, sendChecked, flushed } = core.access
  return (agentId: string, input: unknown, opts: StepOptions): Effect.Effect<Stream.Stream<ExecuteEvent, RuntimeError>, RuntimeError, Scope.Scope> =>
    Effect.gen(function* () {
      // A terminated agent is E2020 (as for every operation), an unknown one E2021.
      const h = yield* liveOrTerminated(agentId, "execute")
      // An agent suspended (by a user or for idleness) is resumed for the step.
      if (h.state === "suspended") yield* resume(agentId)
      const sandboxId = h.lastContext.sandboxId
      yield* sendChecked(h, { type: "agent.busy" }, "execute")
      yield* Effect.addFinalizer(() => Effect.sync(() => void host.sendIfAccepted(h, { type: "agent.idle" })))
      yield* flushed(h)
      if (sandboxId === undefined) return yield* new ExecuteFailed({ message: "the agent has no sandbox", agentId })
      if (opts.accepted !== undefined) yield* opts.accepted
      if (h.config.model !== undefined) {
        const model = h.config.model
        // The agent loop (providers, tokenizer, MCP) is loaded by the first agent that has a model.
        const { prepareModel, runModelLoop } = yield* Effect.promise(() => import("./modelExecution.ts"))
        h.model ??= yield* prepareModel(model, operatorResources)
        const caps = yield* backend.capabilities
        return runModelLoop({
          agentId,
          input,
          model,
          prepared: h.model,
          resources: operatorResources,
          budget: tokenBudget,
          tokensPerHour: h.sandbox.resources.tokensPerHour,
          backend,
          sandboxId,
          dialect: caps.toolDialect ?? "posix",
          conversation: h.conversation,
          onConversation: (conversation) =>
            Effect.gen(function* () {
              h.conversation = conversation
              h.tokenUsage = yield* tokenBudget.usage(agentId)
              host.persist(h, [])
            })
        }).pipe(
          Stream.mapEffect((event): Effect.Effect<ExecuteEvent, RuntimeError> =>
            event.type === "done"
              ? Effect.as(flushed(h), { type: "done", executionId: opts.runId, data: { reason: event.reason, text: event.text } })
              : Effect.succeed(event)
          )
        ) as Stream.Stream<ExecuteEvent, RuntimeError>
      }
      const step = yield* runProgramStep({ backend, agentId, sandboxId, input, timeoutMs: opts.timeoutMs ?? 300_000, now, executionId: opts.runId })
      return step as Stream.Stream<ExecuteEvent, RuntimeError>
    })
}
