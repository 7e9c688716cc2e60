/**
 * The main program's output, read from its log files as it is written: the files are the output
 * (they outlive the host that started the program, so a later host re-adopts it with its history),
 * and the reads follow the kernel's notifications (inotify, through `fs.watch`) and the program's
 * own exit, not a timer. An adopted program (no child of this host) is looked at for its exit every
 * `livenessPollMs`, as nothing else tells of it.
 */
import { closeSync, openSync, readSync, watch } from "node:fs"
import { StringDecoder } from "node:string_decoder"
import * as Effect from "effect/Effect"
import * as Queue from "effect/Queue"
import * as Stream from "effect/Stream"
import type { OutputLine } from "../../../services/SandboxBackend.ts"

/** What to tail, from where, and how to tell the program has ended. */
export interface LogTailOptions<Err> {
  readonly stdout: string
  readonly stderr: string
  /** Where to start: the files' sizes at attach time. */
  readonly offsets: { readonly stdout: number; readonly stderr: number }
  /** True while the program runs (checked after every wake-up). */
  readonly alive: () => boolean
  /** Calls back once the program exits, when it is a child of this host; returns an unsubscribe. */
  readonly onExit: ((notify: () => void) => () => void) | undefined
  /** How often an adopted program is looked at for its exit. */
  readonly livenessPollMs: number
  /** Wraps a failed read. */
  readonly failure: (error: unknown) => Err
}

/** A wake-up that is remembered until the next wait takes it. */
const makeSignal = () => {
  let raised = false
  let waiter: (() => void) | undefined
  return {
    raise: () => {
      raised = true
      const w = waiter
      waiter = undefined
      w?.()
    },
    wait: Effect.callback<void>((resume) => {
      if (raised) {
        raised = false
        return resume(Effect.void)
      }
      waiter = () => {
        raised = false
        resume(Effect.void)
      }
      return Effect.sync(() => {
        waiter = undefined
      })
    })
  }
}

/** Lines of stdout and stderr written after the offsets, until the program has exited and all is read. */
export const tailLogs = <Err>(options: LogTailOptions<Err>): Stream.Stream<OutputLine, Err> =>
  Stream.callback<OutputLine, Err>((queue) =>
    Effect.gen(function* () {
      const signal = makeSignal()
      const sources = yield* Effect.acquireRelease(
        Effect.try({
          try: () =>
            (["stdout", "stderr"] as const).map((stream) => {
              const path = stream === "stdout" ? options.stdout : options.stderr
              const fd = openSync(path, "r")
              const watcher = watch(path, { persistent: false }, signal.raise)
              watcher.on("error", signal.raise)
              return { stream, fd, watcher, offset: options.offsets[stream], pending: "", decoder: new StringDecoder("utf8") }
            }),
          catch: options.failure
        }),
        (sources) =>
          Effect.sync(() => {
            for (const s of sources) {
              s.watcher.close()
              closeSync(s.fd)
            }
          })
      )
      const unsubscribe = options.onExit?.(signal.raise)
      yield* Effect.addFinalizer(() => Effect.sync(() => unsubscribe?.()))
      const buffer = Buffer.alloc(64 * 1024)
      const drain = (final: boolean) => {
        for (const source of sources) {
          for (;;) {
            const n = readSync(source.fd, buffer, 0, buffer.length, source.offset)
            if (n <= 0) break
            source.offset += n
            source.pending += source.decoder.write(buffer.subarray(0, n))
          }
          const lines = source.pending.split("\n")
          source.pending = lines.pop()!
          if (final && source.pending !== "") {
            lines.push(source.pending)
            source.pending = ""
          }
          for (const line of lines) Queue.offerUnsafe(queue, { stream: source.stream, line })
        }
      }
      // A child's exit is an event; an adopted program's is looked for now and then.
      const idle = options.onExit === undefined ? Effect.timeoutOption(signal.wait, `${options.livenessPollMs} millis`) : signal.wait
      for (;;) {
        const alive = options.alive()
        yield* Effect.try({ try: () => drain(!alive), catch: options.failure })
        if (!alive) break
        yield* idle
      }
      yield* Queue.end(queue)
    })
  )
