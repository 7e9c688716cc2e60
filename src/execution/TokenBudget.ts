/**
 * Per-agent token budgets over a sliding one-hour window.
 *
 * Before a model call the loop asks {@link TokenBudgetShape.reserve} with the call's estimate; a call
 * that would take the agent over its `tokensPerHour` is refused before it is sent (E2084, with the
 * time until enough of the window has slid by). After the call the real usage is recorded. The
 * in-memory layer keeps the usage in a `Ref`; the runtime persists it through `usage`/`restore`.
 */
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Ref from "effect/Ref"
import { TokenBudgetExceeded } from "../domain/Errors.ts"

/** Tokens used at one moment (epoch milliseconds). */
export interface UsageEntry {
  readonly at: number
  readonly tokens: number
}

/** The window length: one hour. */
export const windowMs = 60 * 60 * 1000

/** The shape of the token budget service. */
export interface TokenBudgetShape {
  /** Fails with E2084 when `used + estimate > tokensPerHour`; records nothing. */
  readonly reserve: (agentId: string, tokensPerHour: number, estimate: number) => Effect.Effect<void, TokenBudgetExceeded>
  /** Records tokens actually used now. */
  readonly record: (agentId: string, tokens: number) => Effect.Effect<void>
  /** Tokens used in the last hour. */
  readonly used: (agentId: string) => Effect.Effect<number>
  /** The entries still inside the window, for persisting. */
  readonly usage: (agentId: string) => Effect.Effect<ReadonlyArray<UsageEntry>>
  /** Restores persisted entries (e.g. after a restart). */
  readonly restore: (agentId: string, entries: ReadonlyArray<UsageEntry>) => Effect.Effect<void>
}

/** The token budget port. */
export class TokenBudget extends Context.Service<TokenBudget, TokenBudgetShape>()("l02/TokenBudget") {}

/** Builds the in-memory budget; time comes from the Effect clock, so a TestClock drives the window. */
export const makeMemory: Effect.Effect<TokenBudgetShape> = Effect.gen(function*() {
  const state = yield* Ref.make(new Map<string, ReadonlyArray<UsageEntry>>())
  const live = (agentId: string) =>
    Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      const entries = (yield* Ref.get(state)).get(agentId) ?? []
      const inside = entries.filter((entry) => entry.at > now - windowMs)
      if (inside.length !== entries.length) yield* Ref.update(state, (map) => new Map(map).set(agentId, inside))
      return { now, inside }
    })
  return {
    reserve: (agentId, tokensPerHour, estimate) =>
      Effect.gen(function*() {
        const { now, inside } = yield* live(agentId)
        const used = inside.reduce((n, entry) => n + entry.tokens, 0)
        if (used + estimate <= tokensPerHour) return
        // Walk the oldest entries out of the window until the call would fit.
        let freed = used
        let at = now
        for (const entry of inside) {
          freed -= entry.tokens
          at = entry.at + windowMs
          if (freed + estimate <= tokensPerHour) break
        }
        const never = estimate > tokensPerHour
        return yield* Effect.fail(
          new TokenBudgetExceeded({
            message: never
              ? `agent ${agentId}: this call needs about ${estimate} tokens, more than its whole budget of ${tokensPerHour} per hour; raise tokensPerHour or shorten the conversation`
              : `agent ${agentId} used ${used} of its ${tokensPerHour} tokens this hour and the call needs about ${estimate}; wait ${
                Math.ceil((at - now) / 1000)
              } s or raise tokensPerHour`,
            agentId,
            ...(never ? { retryable: false } : { retryAfterMs: Math.max(0, at - now) })
          })
        )
      }),
    record: (agentId, tokens) =>
      Effect.gen(function*() {
        const { now, inside } = yield* live(agentId)
        if (tokens > 0) yield* Ref.update(state, (map) => new Map(map).set(agentId, [...inside, { at: now, tokens }]))
      }),
    used: (agentId) => Effect.map(live(agentId), ({ inside }) => inside.reduce((n, entry) => n + entry.tokens, 0)),
    usage: (agentId) => Effect.map(live(agentId), ({ inside }) => inside),
    restore: (agentId, entries) =>
      Ref.update(state, (map) => new Map(map).set(agentId, [...entries].sort((a, b) => a.at - b.at)))
  }
})

/** The in-memory layer: usage lives as long as the layer. */
export const layerMemory: Layer.Layer<TokenBudget> = Layer.effect(TokenBudget, makeMemory)
