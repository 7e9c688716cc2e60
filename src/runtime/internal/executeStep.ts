/**
 * One execute step: the agent (resumed first when suspended) is marked busy for the step and idle
 * after it, however it ends; with a model, the agent loop runs (its conversation persisted as it
 * goes); without, the JSON-lines program protocol. Aborting the caller's signal cancels the step.
 */
import { randomUUID } from "node:crypto"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import type { AgentState } from "../../domain/AgentState.ts"
import { ExecuteFailed, type RuntimeError } from "../../domain/Errors.ts"
import type { ExecuteEvent, ExecuteOptions } from "../AgentRuntimeApi.ts"
import { runProgramStep } from "./programProtocol.ts"
import type { RuntimeCore } from "./runtimeCore.ts"

/** The execute operation over the runtime's core; `resume` wakes a suspended agent for the step. */
export const makeExecute = (core: RuntimeCore, resume: (agentId: string) => Effect.Effect<AgentState, RuntimeError>) => {
  const { backend, host, now, tokenBudget, operatorResources } = core
  const { liveOrTerminated, sendChecked, flushed } = core.access
  const execute = (agentId: string, input: unknown, opts: ExecuteOptions = {}): Stream.Stream<ExecuteEvent, RuntimeError> =>
    Stream.unwrap(
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
        if (h.config.model !== undefined) {
          const model = h.config.model
          // The agent loop (providers, tokenizer, MCP) is loaded by the first agent that has a model.
          const { prepareModel, runModelLoop } = yield* Effect.promise(() => import("./modelExecution.ts"))
          h.model ??= yield* prepareModel(model, operatorResources)
          const caps = yield* backend.capabilities
          const executionId = randomUUID()
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
                ? Effect.as(flushed(h), { type: "done", executionId, data: { reason: event.reason, text: event.text } })
                : Effect.succeed(event)
            )
          )
        }
        return yield* runProgramStep({ backend, agentId, sandboxId, input, timeoutMs: opts.timeoutMs ?? 300_000, now })
      })
    ).pipe(
      Stream.scoped,
      Stream.interruptWhen(
        Effect.callback<void>((resume) => {
          const signal = opts.signal
          if (signal === undefined) return
          if (signal.aborted) return resume(Effect.void)
          const onAbort = () => resume(Effect.void)
          signal.addEventListener("abort", onAbort, { once: true })
          return Effect.sync(() => signal.removeEventListener("abort", onAbort))
        })
      )
    ) as Stream.Stream<ExecuteEvent, RuntimeError>
  return execute
}
