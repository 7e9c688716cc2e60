/**
 * The JSON-lines program protocol of an execute step, for agents without a model (docs/protocol.md):
 * the input goes to the agent's program as one `{"type":"input"}` line, its output lines stream back
 * (parsed when they are JSON) until its `{"type":"done"}` line. A program whose output ends first is
 * reported with its exit code and last stderr lines; one that stays silent, with the timeout.
 */
import { randomUUID } from "node:crypto"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { ExecuteFailed, type RuntimeError } from "../../domain/Errors.ts"
import type { SandboxBackendShape } from "../../services/SandboxBackend.ts"

/** What a program step streams: its output lines, then `done`. */
export type ProgramExecuteEvent =
  | { readonly type: "output"; readonly stream: "stdout" | "stderr"; readonly line: string; readonly data?: unknown }
  | { readonly type: "done"; readonly executionId: string; readonly data?: unknown }

/** One step: sends the input to the agent's main program and streams its answer until its done line. */
export const runProgramStep = (options: {
  readonly backend: SandboxBackendShape
  readonly agentId: string
  readonly sandboxId: string
  readonly input: unknown
  readonly timeoutMs: number
  readonly now: () => number
  /** The id the input line carries and `done` answers with (the run's id); a fresh one when omitted. */
  readonly executionId?: string | undefined
}): Effect.Effect<Stream.Stream<ProgramExecuteEvent, RuntimeError>, RuntimeError, Scope.Scope> =>
  Effect.gen(function* () {
    const { backend, agentId, sandboxId, input, timeoutMs, now } = options
    const attachment = yield* backend.attach(sandboxId)
    const executionId = options.executionId ?? randomUUID()
    yield* attachment.write(JSON.stringify({ type: "input", id: executionId, input }))
        const startedAt = now()
    let finished = false
    // The agent's last stderr lines, to say why when its output ends without a done line.
    const stderrTail: Array<string> = []
    return attachment.output.pipe(
      Stream.map((out): ProgramExecuteEvent => {
        if (out.stream === "stderr") {
          stderrTail.push(out.line.length > 200 ? `${out.line.slice(0, 200)}...` : out.line)
          if (stderrTail.length > 3) stderrTail.shift()
        }
        let data: unknown
        try {
          data = JSON.parse(out.line)
        } catch {
          data = undefined
        }
        const msg = data as { type?: unknown; id?: unknown } | undefined
        if (msg?.type === "done" && (msg.id === undefined || msg.id === executionId)) {
          finished = true
          return { type: "done", executionId, data }
        }
        return data === undefined ? { type: "output", stream: out.stream, line: out.line } : { type: "output", stream: out.stream, line: out.line, data }
      }),
      Stream.takeUntil((e) => e.type === "done"),
      Stream.timeout(`${timeoutMs} millis`),
      Stream.concat(
        Stream.fromEffect(
          Effect.suspend(() =>
            finished
              ? Effect.void
              : now() - startedAt >= timeoutMs
                ? Effect.fail(new ExecuteFailed({ message: `the agent did not answer with a {"type":"done"} line within ${timeoutMs} ms`, agentId }))
                : backend.inspect(sandboxId).pipe(
                    Effect.map((info) => (info.status === "exited" ? `it exited with code ${info.exitCode ?? "unknown"}` : `it is ${info.status}`)),
                    Effect.orElseSucceed(() => "its sandbox is gone"),
                    Effect.flatMap((why) =>
                      Effect.fail(
                        new ExecuteFailed({
                          message: `the agent's output ended before its {"type":"done"} line: ${why}${stderrTail.length === 0 ? "" : `; its last stderr: ${stderrTail.join(" | ")}`}`,
                          agentId
                        })
                      )
                    )
                  )
          )
        ).pipe(Stream.drain)
      ),
      Stream.mapError((e): RuntimeError =>
        e._tag === "ExecuteFailed" ? e : new ExecuteFailed({ message: `reading the agent's output failed: ${e.message}`, agentId })
      )
    )
  })
