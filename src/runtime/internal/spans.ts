/**
 * The runtime's spans: one per lifecycle operation (with the agent, its trust level and, on failure,
 * the error's code) and one per supervision decision, on the runtime's tracer when it has one.
 */
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import * as Tracer from "effect/Tracer"

/** The spans of one runtime. */
export const makeSpans = (options: { readonly runtimeId: string; readonly backendName: string; readonly tracer?: Tracer.Tracer | undefined }) => {
  const spanBase = { "l02.runtime_id": options.runtimeId, "l02.backend": options.backendName }
  /** Runs background work (restarts, escalations, idle suspensions) on the runtime's tracer. */
  const background = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
    options.tracer === undefined ? effect : Effect.withTracer(effect, options.tracer)
  return {
    spanBase,
    background,
    /** A span around a lifecycle operation, with the agent and, on failure, the error's code. */
    traced:
      (name: string, attributes: Record<string, unknown>) =>
      <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
        effect.pipe(
          Effect.tapError((error) => Effect.annotateCurrentSpan("l02.error.code", (error as { code?: unknown } | undefined)?.code ?? "unknown")),
          Effect.withSpan(name, { attributes: { ...spanBase, ...attributes } }),
          background
        ),
    /** A span around a stream (an execute step). */
    tracedStream:
      (name: string, attributes: Record<string, unknown>) =>
      <A, E, R>(stream: Stream.Stream<A, E, R>): Stream.Stream<A, E, R> => {
        const spanned = Stream.withSpan(stream, name, { attributes: { ...spanBase, ...attributes } })
        return options.tracer === undefined ? spanned : Stream.provideService(spanned, Tracer.Tracer, options.tracer)
      }
  }
}

/** What operations and decisions use of {@link makeSpans}. */
export type Spans = ReturnType<typeof makeSpans>
