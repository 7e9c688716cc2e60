/**
 * What the runtime answers about agents: one agent's state (live, with its sandbox's usage, or
 * from the store), and lists filtered by state, session and labels.
 */
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type { AgentInstance } from "../../domain/AgentInstance.ts"
import { AgentNotFound } from "../../domain/Errors.ts"
import type { AgentFilter } from "../../services/StateStore.ts"
import { type AgentHandle, instanceOf, instanceOfRecord } from "./agentHandle.ts"
import type { RuntimeCore } from "./runtimeCore.ts"

/** getState and list over the runtime's core. */
export const makeQueries = (core: RuntimeCore) => {
  const { backend, host, store, iso } = core
  /** Live CPU and memory of a running agent's sandbox, with its token usage; the stored usage otherwise. */
  const usageOf = (h: AgentHandle): Effect.Effect<AgentInstance["resourceUsage"]> => {
    const tokensUsed = h.conversation === undefined ? undefined : h.conversation.usage.inputTokens + h.conversation.usage.outputTokens
    const base = tokensUsed === undefined ? {} : { tokensUsed }
    const sandboxId = h.lastContext.sandboxId
    if (sandboxId === undefined || h.state !== "running") return Effect.succeed(tokensUsed === undefined ? undefined : base)
    return backend.stats(sandboxId).pipe(
      Effect.map((st) => ({ ...base, cpuPercent: st.cpuPercent, memoryBytes: st.memoryBytes, sampledAt: iso() })),
      Effect.timeoutOption("2 seconds"),
      Effect.map(Option.getOrElse(() => base)),
      Effect.catchCause(() => Effect.succeed(base))
    )
  }

  const getState = (agentId: string) =>
    Effect.suspend(() => {
      const h = host.get(agentId)
      if (h !== undefined) {
        return usageOf(h).pipe(
          Effect.map((usage) => {
            const instance = instanceOf(h, core.backendName)
            return usage === undefined ? instance : { ...instance, resourceUsage: usage }
          })
        )
      }
      return store.getAgent(agentId).pipe(
        Effect.flatMap((found) =>
          Option.isSome(found)
            ? Effect.succeed(instanceOfRecord(found.value, core.backendName))
            : Effect.fail(new AgentNotFound({ message: `no agent ${agentId}; check the id against the agents listed (l02 ls, GET /v1/agents, runtime.list())`, agentId }))
        )
      )
    })

  const matches = (i: AgentInstance, filter: AgentFilter) => {
    if (filter.state !== undefined) {
      const states = typeof filter.state === "string" ? [filter.state] : filter.state
      if (!states.includes(i.state)) return false
    }
    if (filter.sessionId !== undefined && i.sessionId !== filter.sessionId) return false
    if (filter.labels !== undefined) {
      for (const [k, v] of Object.entries(filter.labels)) if (i.config.labels?.[k] !== v) return false
    }
    return true
  }

  const list = (filter: AgentFilter = {}) =>
    Effect.gen(function* () {
      const stored = yield* store.listAgents({ ...filter, runtimeId: core.runtimeId })
      const out = new Map<string, AgentInstance>()
      for (const r of stored) out.set(r.agentId, instanceOfRecord(r, core.backendName))
      for (const h of host.entries()) out.set(h.agentId, instanceOf(h, core.backendName))
      return [...out.values()].filter((i) => matches(i, filter))
    })
  return { getState, list }
}
