/**
 * The one bridge between XState actors and Effect services: an invoked actor that runs an Effect.
 *
 * The actor's AbortSignal interrupts the Effect when the actor stops (its state was left, or the
 * agent was terminated), so a side effect never outlives the state that asked for it. Failures reach
 * the machine as plain {@link ErrorData}, so snapshots stay JSON.
 */
import type * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import { fromPromise, type PromiseActorLogic } from "xstate"
import type { ErrorData } from "../domain/ErrorCatalog.ts"
import { isRuntimeError, type RuntimeError, toErrorData } from "../domain/Errors.ts"

/**
 * Builds promise-actor logic that runs `f(input)` with the given services.
 * `before` runs first (the runtime uses it to wait until the state that invoked the actor is persisted).
 */
export const fromEffect = <I, O, R>(
  context: Context.Context<R>,
  f: (input: I) => Effect.Effect<O, RuntimeError, R>,
  before?: (input: I) => Promise<void>
): PromiseActorLogic<O, I> =>
  fromPromise<O, I>(async ({ input, signal }) => {
    // Observers of the transition that invoked us run synchronously after this creator returns;
    // yielding once lets them record the new state before any side effect starts.
    await Promise.resolve()
    if (before !== undefined) await before(input)
    if (signal.aborted) throw abortedError
    return Effect.runPromiseWith(context)(
      f(input).pipe(Effect.mapError((error): ErrorData => (isRuntimeError(error) ? toErrorData(error) : error))),
      { signal }
    )
  })

const abortedError: ErrorData = { code: "E2046", message: "operation cancelled because the agent left the state", retryable: true }
