/**
 * The in-memory sandbox backend: real state and real lifecycle semantics, no operating system.
 *
 * A sandbox's "processes" are in-process programs (Effects) looked up by the command's first
 * element in a registry the options can extend. The main program reads stdin lines and writes
 * output lines; exec programs see a workspace kept as a Map of path -> bytes, exported and
 * imported as a real tar archive. Delays go through `Effect.sleep`, so a TestClock drives them.
 */
import { Clock, Deferred, Effect, Exit, Fiber, Latch, PubSub, Queue, type Scope, Stream } from "effect"
import {
  NetworkPolicyUnsupported,
  RuntimeClassUnavailable,
  SandboxConfigInvalid,
  SandboxNotFound,
  SandboxOperationFailed,
  type SandboxError
} from "../../domain/Errors.ts"
import type { NetworkPolicy } from "../../domain/SandboxConfiguration.ts"
import type {
  Attachment,
  ExecChunk,
  OutputLine,
  SandboxBackendShape,
  SandboxEvent,
  SandboxInfo,
  SandboxSpec,
  SandboxStatus
} from "../SandboxBackend.ts"
import { sandboxLabels } from "../SandboxBackend.ts"
import { readTar, writeTar } from "../WorkspaceArchive.ts"

/** What an in-process program sees: its arguments, stdin, output, workspace and the stop signal. */
export interface MemoryProgramContext {
  /** The command after the program's name. */
  readonly args: ReadonlyArray<string>
  readonly env: Readonly<Record<string, string>>
  /** The sandbox workspace: relative path -> bytes. */
  readonly workspace: Map<string, Uint8Array>
  /** The next stdin line (without its newline), or undefined at end of input. */
  readonly readLine: Effect.Effect<string | undefined>
  /** Writes output; the main program's output is split into lines for attached readers. */
  readonly write: (stream: "stdout" | "stderr", data: string) => Effect.Effect<void>
  /** Completes when the sandbox is asked to stop (SIGTERM); a program that ignores it is killed after the grace period. */
  readonly terminated: Effect.Effect<void>
}

/** An in-process program: runs until it returns its exit code. */
export type MemoryProgram = (context: MemoryProgramContext) => Effect.Effect<number>

/** Options of the in-memory backend. */
export interface MemorySandboxOptions {
  /** Runtime classes it accepts; anything else fails closed with E2041. Default `["runc"]`. */
  readonly runtimeClasses?: ReadonlyArray<string> | undefined
  /** Network policies it accepts; anything else fails with E2043. Default: all three. */
  readonly networkPolicies?: ReadonlyArray<NetworkPolicy> | undefined
  /** How long `provision` takes (the sandbox exists from its start), for race tests. */
  readonly provisionDelayMs?: number | undefined
  /** How long `start` takes before the main program runs, for race tests. */
  readonly startDelayMs?: number | undefined
  /** Extra programs (or replacements), by name. */
  readonly programs?: Readonly<Record<string, MemoryProgram>> | undefined
}

const encoder = new TextEncoder()
const decoder = new TextDecoder()
const exitPattern = /^exit (\d{1,3})$/

/** Reads stdin lines until end of input or the stop signal: the line or undefined. */
const lineOrTerminated = (context: MemoryProgramContext) =>
  Effect.raceFirst(context.readLine, Effect.as(context.terminated, "\u0000terminated" as const))

/** `l02-echo`: echoes each stdin line; `exit N` exits with N; stops with 143 on SIGTERM. */
const echoProgram: MemoryProgram = (context) =>
  Effect.gen(function* () {
    for (;;) {
      const line = yield* lineOrTerminated(context)
      if (line === undefined) return 0
      if (line === "\u0000terminated") return 143
      const exit = exitPattern.exec(line.trim())
      if (exit !== null) return Number(exit[1])
      yield* context.write("stdout", `${line}\n`)
    }
  })

/**
 * `l02-agent`: a minimal agent speaking the runtime's line protocol: for each JSON line
 * `{"type":"input","id":...,"input":...}` it answers `{"type":"output","id","data":input}` then
 * `{"type":"done","id"}`; other lines behave as in `l02-echo`.
 */
const agentProgram: MemoryProgram = (context) =>
  Effect.gen(function* () {
    for (;;) {
      const line = yield* lineOrTerminated(context)
      if (line === undefined) return 0
      if (line === "\u0000terminated") return 143
      const exit = exitPattern.exec(line.trim())
      if (exit !== null) return Number(exit[1])
      let message: { type?: unknown; id?: unknown; input?: unknown } | undefined
      try {
        message = JSON.parse(line) as typeof message
      } catch {
        message = undefined
      }
      if (message?.type === "input") {
        yield* context.write("stdout", `${JSON.stringify({ type: "output", id: message.id, data: message.input })}\n`)
        yield* context.write("stdout", `${JSON.stringify({ type: "done", id: message.id })}\n`)
      } else {
        yield* context.write("stdout", `${line}\n`)
      }
    }
  })

const intArg = (value: string | undefined, name: string): number => {
  const n = Number(value)
  if (value === undefined || !Number.isFinite(n) || n < 0) throw new Error(`${name} must be a non-negative number, got ${value}`)
  return n
}

/** Wraps a program body that may throw on bad arguments into exit code 2 with a message on stderr. */
const usage = (name: string, body: MemoryProgram): MemoryProgram => (context) =>
  Effect.suspend(() => body(context)).pipe(
    Effect.catchDefect((defect) =>
      Effect.as(context.write("stderr", `${name}: ${defect instanceof Error ? defect.message : String(defect)}\n`), 2)
    )
  )

const builtinPrograms: Readonly<Record<string, MemoryProgram>> = {
  "l02-echo": echoProgram,
  "l02-agent": agentProgram,
  /** `l02-print OUT ERR CODE`: writes OUT to stdout, ERR to stderr, exits with CODE. */
  "l02-print": usage("l02-print", (context) =>
    Effect.gen(function* () {
      const [out = "", err = "", code = "0"] = context.args
      const exitCode = intArg(code, "CODE")
      if (out !== "") yield* context.write("stdout", out)
      if (err !== "") yield* context.write("stderr", err)
      return exitCode
    })
  ),
  /** `l02-sleep SECONDS`. */
  "l02-sleep": usage("l02-sleep", (context) =>
    Effect.as(Effect.sleep(`${intArg(context.args[0], "SECONDS") * 1000} millis`), 0)
  ),
  /** `l02-flood BYTES`: writes BYTES bytes of "x" to stdout. */
  "l02-flood": usage("l02-flood", (context) =>
    Effect.gen(function* () {
      let left = intArg(context.args[0], "BYTES")
      const chunk = "x".repeat(64 * 1024)
      while (left > 0) {
        const n = Math.min(left, chunk.length)
        yield* context.write("stdout", n === chunk.length ? chunk : chunk.slice(0, n))
        left -= n
      }
      return 0
    })
  ),
  /** `l02-write PATH CONTENT`: writes CONTENT to the workspace file PATH. */
  "l02-write": usage("l02-write", (context) =>
    Effect.sync(() => {
      const [path, content = ""] = context.args
      if (path === undefined || path === "") throw new Error("usage: l02-write PATH CONTENT")
      context.workspace.set(normalise(path), encoder.encode(content))
      return 0
    })
  ),
  /** `l02-read PATH`: writes the workspace file PATH to stdout; exit 1 when it does not exist. */
  "l02-read": usage("l02-read", (context) =>
    Effect.gen(function* () {
      const path = context.args[0]
      if (path === undefined || path === "") throw new Error("usage: l02-read PATH")
      const data = context.workspace.get(normalise(path))
      if (data === undefined) {
        yield* context.write("stderr", `l02-read: ${path}: no such file\n`)
        return 1
      }
      yield* context.write("stdout", decoder.decode(data))
      return 0
    })
  )
}

const normalise = (path: string): string => path.split("/").filter((p) => p !== "" && p !== ".").join("/")

const END = Symbol("end of output")
type OutputMessage = OutputLine | typeof END

interface Run {
  readonly stdin: Queue.Queue<string>
  readonly output: PubSub.PubSub<OutputMessage>
  readonly terminate: Deferred.Deferred<void>
  readonly exited: Deferred.Deferred<number>
  fiber: Fiber.Fiber<unknown> | undefined
  /** Records the main program's exit once: status, output end, `exited` event unless stopping. */
  settle: (code: number) => Effect.Effect<void>
  /** Set when the runtime asked for the stop, so the exit is not reported as an event. */
  stopping: boolean
}

interface MemorySandbox {
  readonly sandboxId: string
  readonly spec: SandboxSpec
  readonly labels: Readonly<Record<string, string>>
  readonly workspace: Map<string, Uint8Array>
  /** Open while the sandbox runs; closed while paused, so its programs make no progress. */
  readonly gate: Latch.Latch
  status: SandboxStatus
  exitCode: number | undefined
  run: Run | undefined
  execs: number
}

const infoOf = (sandbox: MemorySandbox): SandboxInfo => ({
  sandboxId: sandbox.sandboxId,
  agentId: sandbox.spec.agentId,
  runtimeId: sandbox.spec.runtimeId,
  status: sandbox.status,
  labels: sandbox.labels,
  ...(sandbox.exitCode === undefined ? {} : { exitCode: sandbox.exitCode })
})

/**
 * Builds the in-memory backend's service in the given scope; closing the scope kills every
 * program it runs. Each build starts with no sandboxes.
 */
export const makeMemorySandbox = (options: MemorySandboxOptions = {}): Effect.Effect<SandboxBackendShape, never, Scope.Scope> =>
  Effect.gen(function* () {
    const scope = yield* Effect.scope
    const runtimeClasses = options.runtimeClasses ?? ["runc"]
    const networkPolicies = options.networkPolicies ?? ["allow_egress", "restricted", "isolated"]
    const programs: Record<string, MemoryProgram> = { ...builtinPrograms, ...options.programs }
    const sandboxes = new Map<string, MemorySandbox>()
    const events = yield* PubSub.unbounded<SandboxEvent>()
    let counter = 0

    const notFound = (sandboxId: string) =>
      new SandboxNotFound({ message: `no sandbox "${sandboxId}" on the memory backend; it was removed or never existed` })

    const find = (sandboxId: string): Effect.Effect<MemorySandbox, SandboxNotFound> =>
      Effect.suspend(() => {
        const sandbox = sandboxes.get(sandboxId)
        return sandbox === undefined ? Effect.fail(notFound(sandboxId)) : Effect.succeed(sandbox)
      })

    const refuse = (sandbox: MemorySandbox, operation: string) =>
      new SandboxOperationFailed({
        message: `cannot ${operation} sandbox ${sandbox.sandboxId}: it is ${sandbox.status}${
          sandbox.exitCode === undefined ? "" : ` (exit code ${sandbox.exitCode})`
        }; start it first`,
        agentId: sandbox.spec.agentId
      })

    const publish = (sandbox: MemorySandbox, type: SandboxEvent["type"], exitCode?: number) =>
      Effect.flatMap(Clock.currentTimeMillis, (at) =>
        PubSub.publish(events, {
          sandboxId: sandbox.sandboxId,
          agentId: sandbox.spec.agentId,
          type,
          ...(exitCode === undefined ? {} : { exitCode }),
          at
        })
      )

    const contextFor = (
      sandbox: MemorySandbox,
      args: ReadonlyArray<string>,
      env: Readonly<Record<string, string>>,
      readLine: Effect.Effect<string | undefined>,
      write: MemoryProgramContext["write"],
      terminated: Effect.Effect<void>
    ): MemoryProgramContext => ({
      args,
      env: { ...sandbox.spec.env, ...env, L02_WORKSPACE: "/workspace" },
      workspace: sandbox.workspace,
      readLine: Effect.tap(readLine, () => Latch.await(sandbox.gate)),
      write: (stream, data) => Effect.andThen(Latch.await(sandbox.gate), write(stream, data)),
      terminated
    })

    /** Starts the main program; its end (by itself, by stop or by remove) settles the sandbox. */
    const launch = (sandbox: MemorySandbox) =>
      Effect.gen(function* () {
        const command = sandbox.spec.command ?? ["l02-echo"]
        const program = programs[command[0]!]!
        const run: Run = {
          stdin: yield* Queue.unbounded<string>(),
          output: yield* PubSub.unbounded<OutputMessage>(),
          terminate: yield* Deferred.make<void>(),
          exited: yield* Deferred.make<number>(),
          fiber: undefined,
          settle: () => Effect.void,
          stopping: false
        }
        const pending: Record<"stdout" | "stderr", string> = { stdout: "", stderr: "" }
        const write = (stream: "stdout" | "stderr", data: string) =>
          Effect.gen(function* () {
            const lines = (pending[stream] + data).split("\n")
            pending[stream] = lines.pop()!
            for (const line of lines) yield* PubSub.publish(run.output, { stream, line })
          })
        const flush = Effect.gen(function* () {
          for (const stream of ["stdout", "stderr"] as const) {
            if (pending[stream] !== "") yield* PubSub.publish(run.output, { stream, line: pending[stream] })
            pending[stream] = ""
          }
        })
        const readLine = Effect.map(Effect.exit(Queue.take(run.stdin)), (exit) => (Exit.isSuccess(exit) ? exit.value : undefined))
        const context = contextFor(sandbox, command.slice(1), {}, readLine, write, Deferred.await(run.terminate))
        sandbox.run = run
        sandbox.status = "running"
        sandbox.exitCode = undefined
        yield* Latch.open(sandbox.gate)
        run.settle = (code) =>
          Effect.gen(function* () {
            if (!(yield* Deferred.succeed(run.exited, code))) return
            // Settle the status first: whoever sees the output end or the event may inspect at once.
            if (sandboxes.get(sandbox.sandboxId) === sandbox && sandbox.run === run) {
              sandbox.status = "exited"
              sandbox.exitCode = code
            }
            yield* flush
            yield* PubSub.end(run.output, END)
            yield* Queue.shutdown(run.stdin)
            if (sandboxes.get(sandbox.sandboxId) === sandbox && !run.stopping) yield* publish(sandbox, "exited", code)
          })
        run.fiber = yield* program(context).pipe(
          Effect.onExit((exit) => run.settle(Exit.isSuccess(exit) ? exit.value : Exit.hasInterrupts(exit) ? 137 : 1)),
          Effect.forkIn(scope, { startImmediately: true })
        )
      })

    /** Kills the main program: SIGTERM, then after `graceMs` SIGKILL; resolves once it has exited. */
    const kill = (sandbox: MemorySandbox, graceMs: number) =>
      Effect.gen(function* () {
        const run = sandbox.run
        if (run === undefined || run.fiber === undefined || (yield* Deferred.isDone(run.exited))) return
        run.stopping = true
        // A paused program receives the signal once it can run again, as with SIGTERM on a frozen cgroup.
        yield* Latch.open(sandbox.gate)
        yield* Deferred.succeed(run.terminate, undefined)
        const exited = graceMs > 0 ? yield* Effect.timeoutOption(Deferred.await(run.exited), `${graceMs} millis`) : undefined
        if (exited === undefined || exited._tag === "None") {
          yield* Fiber.interrupt(run.fiber)
          // A fiber interrupted before it ever ran does not run its exit handler: settle here.
          yield* run.settle(137)
        }
      })

    const validate = (spec: SandboxSpec): Effect.Effect<void, SandboxError> =>
      Effect.suspend((): Effect.Effect<void, SandboxError> => {
        const { runtimeClass, networkPolicy } = spec.sandbox
        if (!runtimeClasses.includes(runtimeClass)) {
          return Effect.fail(
            new RuntimeClassUnavailable({
              message: `the memory backend has no runtime class "${runtimeClass}" (it has ${runtimeClasses.join(", ")}); use a backend that provides ${runtimeClass}`,
              agentId: spec.agentId,
              runtimeClass
            })
          )
        }
        if (!networkPolicies.includes(networkPolicy)) {
          return Effect.fail(
            new NetworkPolicyUnsupported({
              message: `the memory backend is configured without network policy "${networkPolicy}" (it has ${networkPolicies.join(", ")})`,
              agentId: spec.agentId
            })
          )
        }
        const name = spec.command?.[0] ?? "l02-echo"
        if (programs[name] === undefined) {
          return Effect.fail(
            new SandboxConfigInvalid({
              message: `the memory backend has no program "${name}"; its programs are ${Object.keys(programs).join(", ")}`,
              agentId: spec.agentId,
              key: "command"
            })
          )
        }
        return Effect.void
      })

    const shape: SandboxBackendShape = {
      capabilities: Effect.succeed({ name: "memory", runtimeClasses, networkPolicies, workspaceArchive: true }),

      provision: (spec) =>
        Effect.gen(function* () {
          yield* validate(spec)
          for (const existing of sandboxes.values()) {
            if (existing.spec.agentId === spec.agentId && existing.spec.runtimeId === spec.runtimeId) return infoOf(existing)
          }
          counter += 1
          const sandbox: MemorySandbox = {
            sandboxId: `mem-${counter}-${spec.agentId.slice(0, 8)}`,
            spec,
            labels: sandboxLabels(spec),
            workspace: new Map(),
            gate: yield* Latch.make(false),
            status: "created",
            exitCode: undefined,
            run: undefined,
            execs: 0
          }
          sandboxes.set(sandbox.sandboxId, sandbox)
          // The sandbox exists from here on, as a container does once the engine accepted the create.
          if (options.provisionDelayMs) yield* Effect.sleep(`${options.provisionDelayMs} millis`)
          if (sandboxes.get(sandbox.sandboxId) !== sandbox) return yield* notFound(sandbox.sandboxId)
          return infoOf(sandbox)
        }),

      start: (sandboxId) =>
        Effect.gen(function* () {
          const sandbox = yield* find(sandboxId)
          if (sandbox.status === "running" || sandbox.status === "paused") return infoOf(sandbox)
          if (options.startDelayMs) yield* Effect.sleep(`${options.startDelayMs} millis`)
          if (sandboxes.get(sandboxId) !== sandbox) return yield* notFound(sandboxId)
          // Another start may have launched it while this one waited.
          const status = sandbox.status as SandboxStatus
          if (status !== "running" && status !== "paused") yield* launch(sandbox)
          return infoOf(sandbox)
        }),

      pause: (sandboxId) =>
        Effect.gen(function* () {
          const sandbox = yield* find(sandboxId)
          if (sandbox.status === "paused") return
          if (sandbox.status !== "running") return yield* refuse(sandbox, "pause")
          sandbox.status = "paused"
          yield* Latch.close(sandbox.gate)
        }),

      unpause: (sandboxId) =>
        Effect.gen(function* () {
          const sandbox = yield* find(sandboxId)
          if (sandbox.status === "running") return
          if (sandbox.status !== "paused") return yield* refuse(sandbox, "unpause")
          sandbox.status = "running"
          yield* Latch.open(sandbox.gate)
        }),

      stop: (sandboxId, { graceMs }) =>
        Effect.gen(function* () {
          const sandbox = yield* find(sandboxId)
          if (sandbox.status === "created") {
            sandbox.status = "exited"
            return
          }
          yield* kill(sandbox, graceMs)
        }),

      remove: (sandboxId) =>
        Effect.gen(function* () {
          const sandbox = sandboxes.get(sandboxId)
          if (sandbox === undefined) return
          sandboxes.delete(sandboxId)
          sandbox.status = "removed"
          yield* kill(sandbox, 0)
        }),

      inspect: (sandboxId) => Effect.map(find(sandboxId), infoOf),

      list: (labels) =>
        Effect.sync(() =>
          [...sandboxes.values()]
            .filter((sandbox) => Object.entries(labels).every(([key, value]) => sandbox.labels[key] === value))
            .map(infoOf)
        ),

      exec: (sandboxId, request) =>
        Stream.callback<ExecChunk, SandboxError>((queue) =>
          Effect.gen(function* () {
            const sandbox = yield* find(sandboxId)
            if (sandbox.status !== "running") return yield* refuse(sandbox, "exec in")
            const [name = "", ...args] = request.command
            let bytes = 0
            let truncated = false
            const write = (stream: "stdout" | "stderr", data: string) =>
              Effect.suspend(() => {
                if (truncated || data === "") return Effect.void
                const room = request.maxOutputBytes - bytes
                let encoded = encoder.encode(data)
                if (encoded.length > room) {
                  truncated = true
                  encoded = encoded.subarray(0, Math.max(0, room))
                  if (encoded.length === 0) return Effect.void
                  data = decoder.decode(encoded)
                }
                bytes += encoded.length
                return Queue.offer(queue, { _tag: stream, data })
              })
            const program = programs[name]
            if (program === undefined) {
              yield* write("stderr", `${name}: command not found\n`)
              yield* Queue.offer(queue, { _tag: "exit", exitCode: 127, timedOut: false, truncated })
              return yield* Queue.end(queue)
            }
            const stdinLines = request.stdin === undefined ? [] : request.stdin.split("\n")
            if (stdinLines.at(-1) === "") stdinLines.pop()
            const readLine = Effect.sync(() => stdinLines.shift())
            sandbox.execs += 1
            const result = yield* program(contextFor(sandbox, args, request.env ?? {}, readLine, write, Effect.never)).pipe(
              Effect.timeoutOption(`${request.timeoutMs} millis`),
              Effect.ensuring(Effect.sync(() => (sandbox.execs -= 1)))
            )
            const exitCode = result._tag === "Some" ? result.value : 137
            yield* Queue.offer(queue, { _tag: "exit", exitCode, timedOut: result._tag === "None", truncated })
            yield* Queue.end(queue)
          })
        ),

      attach: (sandboxId) =>
        Effect.gen(function* () {
          const sandbox = yield* find(sandboxId)
          const run = sandbox.run
          if (run === undefined || (sandbox.status !== "running" && sandbox.status !== "paused")) return yield* refuse(sandbox, "attach to")
          const subscription = yield* PubSub.subscribe(run.output)
          const attachment: Attachment = {
            write: (line) =>
              Effect.gen(function* () {
                if (sandbox.run !== run || (yield* Deferred.isDone(run.exited))) return yield* refuse(sandbox, "write to")
                yield* Queue.offer(run.stdin, line)
              }),
            output: Stream.fromSubscription(subscription).pipe(
              Stream.takeWhile((message): message is OutputLine => message !== END)
            )
          }
          return attachment
        }),

      events: Stream.fromPubSub(events),

      stats: (sandboxId) =>
        Effect.map(find(sandboxId), (sandbox) => {
          let memoryBytes = 0
          for (const data of sandbox.workspace.values()) memoryBytes += data.length
          const live = sandbox.status === "running" || sandbox.status === "paused"
          return { cpuPercent: 0, memoryBytes, pids: live ? 1 + sandbox.execs : 0 }
        }),

      exportWorkspace: (sandboxId) =>
        Effect.map(find(sandboxId), (sandbox) =>
          writeTar([...sandbox.workspace.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([path, data]) => ({ path, type: "file" as const, data })))
        ),

      importWorkspace: (sandboxId, archive) =>
        Effect.gen(function* () {
          const sandbox = yield* find(sandboxId)
          const entries = yield* Effect.try({
            try: () => readTar(archive),
            catch: (error) =>
              new SandboxOperationFailed({
                message: `cannot import the workspace of sandbox ${sandboxId}: ${(error as Error).message}`,
                agentId: sandbox.spec.agentId
              })
          })
          for (const entry of entries) if (entry.type === "file") sandbox.workspace.set(entry.path, entry.data)
        })
    }
    return shape
  })
