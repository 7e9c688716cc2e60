/**
 * Feeding an exec's standard input, the same way on every backend: a string is written whole and
 * the input ended; a stream is written piece by piece as it comes (in a fiber of the exec's scope,
 * interrupted with it) and the input ended when the stream ends.
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"

/** Where stdin goes: a Node writable, a socket, a PassThrough. */
export interface StdinSink {
  readonly write: (data: string) => unknown
  readonly end: (data?: string) => unknown
}

/** Writes `stdin` to `sink` (nothing when undefined); a stream is pumped in the current scope. */
export const pipeStdin = (stdin: string | Stream.Stream<string> | undefined, sink: StdinSink): Effect.Effect<void, never, Scope.Scope> => {
  if (stdin === undefined) return Effect.void
  if (typeof stdin === "string") return Effect.sync(() => void sink.end(stdin))
  return Effect.asVoid(
    Effect.forkScoped(
      Stream.runForEach(stdin, (data) => Effect.sync(() => void sink.write(data))).pipe(
        Effect.ensuring(Effect.sync(() => void sink.end()))
      )
    )
  )
}

