/**
 * Reporting actor errors. An unobserved XState error would escape as an uncaught exception in the
 * host process, so every actor has an error observer; what it observes is a bug of this runtime, and
 * is reported: to the logger, and as a `runtime.defect` lifecycle event naming the actor. At most
 * `limit` are reported per runtime; the one after says how many were left out from then on.
 */
import * as Effect from "effect/Effect"

/** A reporter of defects: `report(who, error)`. */
export const makeDefectReporter = (options: {
  readonly record: (who: string, data: { readonly message: string; readonly suppressed?: true }) => void
  readonly limit?: number | undefined
}) => {
  const limit = options.limit ?? 100
  let reported = 0
  return (who: string, error: unknown): void => {
    reported += 1
    if (reported > limit + 1) return
    const message = error instanceof Error ? `${error.name}: ${error.message}` : String(error)
    if (reported === limit + 1) {
      options.record(who, { message: `more than ${limit} actor errors; further ones are not reported`, suppressed: true })
      return
    }
    Effect.runFork(Effect.logError(`actor ${who} failed: ${message}`))
    options.record(who, { message })
  }
}
