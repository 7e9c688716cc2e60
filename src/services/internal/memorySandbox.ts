/**
 * The in-memory sandbox backend: real state and real lifecycle semantics, no operating system.
 *
 * A sandbox's "processes" are in-process programs (Effects) looked up by the command's first
 * element in a registry the options can extend. The main program reads stdin lines and writes
 * output lines; exec programs see a workspace kept as a Map of path -> bytes, exported and
 * imported as a real tar archive. Delays go through `Effect.sleep`, so a TestClock drives them.
 */
import type * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Latch from "effect/Latch"
import * as PubSub from "effect/PubSub"
import * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
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

/** The stdin lines of an exec: from its whole input, or from a stream as its pieces arrive (scoped). */
const stdinReader = (stdin: string | Stream.Stream<string> | undefined): Effect.Effect<Effect.Effect<string | undefined>, never, Scope.Scope> =>
  Effect.gen(function* () {
    if (stdin === undefined || typeof stdin === "string") {
      const lines = stdin === undefined ? [] : stdin.split("\n")
      if (lines.at(-1) === "") lines.pop()
      return Effect.sync(() => lines.shift())
    }
    const lines = yield* Queue.unbounded<string, Cause.Done>()
    let pending = ""
    yield* Effect.forkScoped(
      Stream.runForEach(stdin, (data) =>
        Effect.sync(() => {
          const parts = (pending + data).split("\n")
          pending = parts.pop() ?? ""
          for (const line of parts) Queue.offerUnsafe(lines, line)
        })
      ).pipe(Effect.ensuring(Effect.sync(() => {
        if (pending !== "") Queue.offerUnsafe(lines, pending)
        Queue.endUnsafe(lines)
      })))
    )
    return Effect.map(Effect.exit(Queue.take(lines)), (exit) => (Exit.isSuccess(exit) ? exit.value : undefined))
  })

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

/**
 * A program that only reacts to stdin lines, like `l02-echo` and `l02-agent`: as a sandbox's main
 * program it holds no fiber while it waits, so an idle sandbox costs a few hundred bytes. Each line
 * runs `onLine`, in order, never two at once, and never while the sandbox is paused; an exit code
 * ends the program. End of input exits with 0 and SIGTERM with 143, as a shell loop would.
 */
export interface MemoryLineProgram {
  readonly onLine: (line: string, context: MemoryProgramContext) => Effect.Effect<number | undefined>
}

/** What the backend's program registry holds: a program that runs, or one that reacts to lines. */
export type MemoryProgramEntry = MemoryProgram | MemoryLineProgram

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
  readonly programs?: Readonly<Record<string, MemoryProgramEntry>> | undefined
}

const encoder = new TextEncoder()
const decoder = new TextDecoder()
const exitPattern = /^exit (\d{1,3})$/

/** `l02-echo`: echoes each stdin line; `exit N` exits with N; stops with 143 on SIGTERM. */
const echoProgram: MemoryLineProgram = {
  onLine: (line, context) => {
    const exit = exitPattern.exec(line.trim())
    return exit !== null ? Effect.succeed(Number(exit[1])) : Effect.as(context.write("stdout", `${line}\n`), undefined)
  }
}

/**
 * `l02-agent`: a minimal agent speaking the runtime's line protocol: for each JSON line
 * `{"type":"input","id":...,"input":...}` it answers `{"type":"output","id","data":input}` then
 * `{"type":"done","id"}`; other lines behave as in `l02-echo`.
 */
const agentProgram: MemoryLineProgram = {
  onLine: (line, context) => {
    let message: { type?: unknown; id?: unknown; input?: unknown } | undefined
    try {
      message = JSON.parse(line) as typeof message
    } catch {
      message = undefined
    }
    if (message?.type !== "input") return echoProgram.onLine(line, context)
    return Effect.as(
      context.write("stdout", `${JSON.stringify({ type: "output", id: message.id, data: message.input })}\n${JSON.stringify({ type: "done", id: message.id })}\n`),
      undefined
    )
  }
}

const isLineProgram = (entry: MemoryProgramEntry): entry is MemoryLineProgram => typeof entry !== "function"

/** A line program run as an ordinary program (for exec): lines until end of input or an exit code. */
const runLines = (program: MemoryLineProgram): MemoryProgram => (context) =>
  Effect.gen(function* () {
    for (;;) {
      const line = yield* context.readLine
      if (line === undefined) return 0
      const code = yield* program.onLine(line, context)
      if (code !== undefined) return code
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

/**
 * `l02-mcp`: a stdio MCP server (newline-delimited JSON-RPC) with two tools: `echo {text}` and
 * `read_workspace {path}`, which reads the sandbox's own workspace, so a test sees where it runs.
 */
const mcpProgram: MemoryProgram = (context) =>
  Effect.gen(function* () {
    const reply = (id: unknown, result: unknown) => context.write("stdout", `${JSON.stringify({ jsonrpc: "2.0", id, result })}\n`)
    for (;;) {
      const line = yield* context.readLine
      if (line === undefined) return 0
      let message: { id?: unknown; method?: string; params?: { name?: string; arguments?: Record<string, unknown>; protocolVersion?: string } }
      try {
        message = JSON.parse(line)
      } catch {
        yield* context.write("stderr", `l02-mcp: not JSON: ${line.slice(0, 100)}\n`)
        continue
      }
      if (message.id === undefined) continue
      if (message.method === "initialize") {
        yield* reply(message.id, { protocolVersion: message.params?.protocolVersion ?? "2025-06-18", capabilities: { tools: {} }, serverInfo: { name: "l02-mcp", version: "1" } })
      } else if (message.method === "tools/list") {
        yield* reply(message.id, {
          tools: [
            { name: "echo", description: "Echoes text", inputSchema: { type: "object", properties: { text: { type: "string" } }, required: ["text"] } },
            { name: "read_workspace", description: "Reads a workspace file", inputSchema: { type: "object", properties: { path: { type: "string" } }, required: ["path"] } }
          ]
        })
      } else if (message.method === "tools/call") {
        const args = message.params?.arguments ?? {}
        const text = message.params?.name === "echo"
          ? String(args.text)
          : new TextDecoder().decode(context.workspace.get(String(args.path)) ?? new Uint8Array())
        yield* reply(message.id, { content: [{ type: "text", text }] })
      } else {
        yield* context.write("stdout", `${JSON.stringify({ jsonrpc: "2.0", id: message.id, error: { code: -32601, message: "method not found" } })}\n`)
      }
    }
  })

const builtinPrograms: Readonly<Record<string, MemoryProgramEntry>> = {
  "l02-echo": echoProgram,
  "l02-agent": agentProgram,
  "l02-mcp": mcpProgram,
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
  /** Delivers one stdin line to the main program. */
  readonly send: (line: string) => Effect.Effect<void>
  /**
   * What attached readers receive; made by the first attach. Before that nobody reads the output
   * and it is dropped, as a pub/sub with no subscriber would drop it.
   */
  output: PubSub.PubSub<OutputMessage> | undefined
  readonly exited: Deferred.Deferred<number>
  /** The program's fiber; for a line program, the fiber handling lines while there are any. */
  fiber: Fiber.Fiber<unknown> | undefined
  /** Delivers SIGTERM. */
  readonly signal: Effect.Effect<void>
  /** Records the main program's exit once: status, output end, `exited` event unless stopping. */
  settle: (code: number) => Effect.Effect<void>
  /** Set when the runtime asked for the stop, so the exit is not reported as an event. */
  stopping: boolean
}

interface MemorySandbox {
  readonly sandboxId: string
  readonly spec: SandboxSpec
  readonly labels: Readonly<Record<string, string>>
  /** Made on first use: most sandboxes of a large fleet never touch their workspace. */
  workspace: Map<string, Uint8Array> | undefined
  /** Open while the sandbox runs; closed while paused, so its programs make no progress. */
  readonly gate: Latch.Latch
  status: SandboxStatus
  exitCode: number | undefined
  run: Run | undefined
  execs: number
}

const workspaceOf = (sandbox: MemorySandbox): Map<string, Uint8Array> => (sandbox.workspace ??= new Map())

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
    const programs: Record<string, MemoryProgramEntry> = { ...builtinPrograms, ...options.programs }
    const sandboxes = new Map<string, MemorySandbox>()
    /** The sandbox of each (runtime id, agent id), so provisioning is idempotent without a scan. */
    const byAgent = new Map<string, MemorySandbox>()
    const agentKey = (spec: SandboxSpec) => `${spec.runtimeId}\u0000${spec.agentId}`
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
      workspace: workspaceOf(sandbox),
      readLine: Effect.tap(readLine, () => Latch.await(sandbox.gate)),
      write: (stream, data) => Effect.andThen(Latch.await(sandbox.gate), write(stream, data)),
      terminated
    })

    /** Starts the main program; its end (by itself, by stop or by remove) settles the sandbox. */
    const launch = (sandbox: MemorySandbox) =>
      Effect.gen(function* () {
        const command = sandbox.spec.command ?? ["l02-echo"]
        const entry = programs[command[0]!]!
        const exited = yield* Deferred.make<number>()
        const pending: Record<"stdout" | "stderr", string> = { stdout: "", stderr: "" }
        const write = (stream: "stdout" | "stderr", data: string) =>
          Effect.suspend(() => {
            const lines = (pending[stream] + data).split("\n")
            pending[stream] = lines.pop()!
            const output = run.output
            return output === undefined ? Effect.void : Effect.forEach(lines, (line) => PubSub.publish(output, { stream, line }), { discard: true })
          })
        const flush = Effect.suspend(() => {
          const output = run.output
          const rest = (["stdout", "stderr"] as const).filter((stream) => pending[stream] !== "").map((stream) => ({ stream, line: pending[stream] }))
          pending.stdout = ""
          pending.stderr = ""
          return output === undefined ? Effect.void : Effect.forEach(rest, (line) => PubSub.publish(output, line), { discard: true })
        })
        const settle = (code: number) =>
          Effect.gen(function* () {
            if (!(yield* Deferred.succeed(exited, code))) return
            // Settle the status first: whoever sees the output end or the event may inspect at once.
            if (sandboxes.get(sandbox.sandboxId) === sandbox && sandbox.run === run) {
              sandbox.status = "exited"
              sandbox.exitCode = code
            }
            yield* flush
            if (run.output !== undefined) yield* PubSub.end(run.output, END)
            yield* onSettle
            if (sandboxes.get(sandbox.sandboxId) === sandbox && !run.stopping) yield* publish(sandbox, "exited", code)
          })
        let onSettle: Effect.Effect<void> = Effect.void
        let run: Run
        let start: Effect.Effect<void>
        if (isLineProgram(entry)) {
          // No fiber while idle: lines wait in a backlog; one fiber handles them, in order, while there are any.
          const backlog: Array<string> = []
          let draining = false
          let terminating = false
          let context: MemoryProgramContext | undefined
          const contextOnce = () =>
            (context ??= contextFor(sandbox, command.slice(1), {}, Effect.sync(() => backlog.shift()), write, Effect.never))
          const drain: Effect.Effect<void> = Effect.gen(function* () {
            while (backlog.length > 0 && !terminating) {
              yield* Latch.await(sandbox.gate)
              if (terminating) break
              const code = yield* entry.onLine(backlog.shift()!, contextOnce())
              if (code !== undefined) return yield* settle(code)
            }
            if (terminating) yield* settle(143)
          }).pipe(
            Effect.ensuring(
              Effect.sync(() => {
                draining = false
                run.fiber = undefined
              })
            )
          )
          run = {
            send: (line) =>
              Effect.suspend(() => {
                backlog.push(line)
                if (draining) return Effect.void
                draining = true
                return Effect.asVoid(
                  Effect.tap(Effect.forkIn(drain, scope, { startImmediately: true }), (fiber) =>
                    Effect.sync(() => {
                      if (draining) run.fiber = fiber
                    })
                  )
                )
              }),
            output: undefined,
            exited,
            fiber: undefined,
            // SIGTERM: a program between lines exits at once; one handling a line exits after it.
            signal: Effect.suspend(() => {
              terminating = true
              return draining ? Effect.void : settle(143)
            }),
            settle,
            stopping: false
          }
          start = Effect.void
        } else {
          const stdin = yield* Queue.unbounded<string>()
          const terminate = yield* Deferred.make<void>()
          onSettle = Queue.shutdown(stdin)
          run = {
            send: (line) => Queue.offer(stdin, line),
            output: undefined,
            exited,
            fiber: undefined,
            signal: Deferred.succeed(terminate, undefined),
            settle,
            stopping: false
          }
          const readLine = Effect.map(Effect.exit(Queue.take(stdin)), (exit) => (Exit.isSuccess(exit) ? exit.value : undefined))
          const context = contextFor(sandbox, command.slice(1), {}, readLine, write, Deferred.await(terminate))
          start = Effect.gen(function* () {
            run.fiber = yield* entry(context).pipe(
              Effect.onExit((exit) => settle(Exit.isSuccess(exit) ? exit.value : Exit.hasInterrupts(exit) ? 137 : 1)),
              Effect.forkIn(scope, { startImmediately: true })
            )
          })
        }
        sandbox.run = run
        sandbox.status = "running"
        sandbox.exitCode = undefined
        yield* Latch.open(sandbox.gate)
        yield* start
      })

    /** Kills the main program: SIGTERM, then after `graceMs` SIGKILL; resolves once it has exited. */
    const kill = (sandbox: MemorySandbox, graceMs: number) =>
      Effect.gen(function* () {
        const run = sandbox.run
        if (run === undefined || (yield* Deferred.isDone(run.exited))) return
        run.stopping = true
        // A paused program receives the signal once it can run again, as with SIGTERM on a frozen cgroup.
        yield* Latch.open(sandbox.gate)
        if (graceMs > 0) {
          yield* run.signal
          const exited = yield* Effect.timeoutOption(Deferred.await(run.exited), `${graceMs} millis`)
          if (exited._tag === "Some") return
        }
        if (run.fiber !== undefined) yield* Fiber.interrupt(run.fiber)
        // A fiber interrupted before it ever ran does not run its exit handler: settle here.
        yield* run.settle(137)
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
      capabilities: Effect.succeed({ name: "memory", runtimeClasses, networkPolicies, workspaceArchive: true, toolDialect: "memory" }),

      provision: (spec) =>
        Effect.gen(function* () {
          yield* validate(spec)
          const existing = byAgent.get(agentKey(spec))
          if (existing !== undefined) return infoOf(existing)
          counter += 1
          const sandbox: MemorySandbox = {
            sandboxId: `mem-${counter}-${spec.agentId.slice(0, 8)}`,
            spec,
            labels: sandboxLabels(spec),
            workspace: undefined,
            gate: yield* Latch.make(false),
            status: "created",
            exitCode: undefined,
            run: undefined,
            execs: 0
          }
          sandboxes.set(sandbox.sandboxId, sandbox)
          byAgent.set(agentKey(spec), sandbox)
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
          if (byAgent.get(agentKey(sandbox.spec)) === sandbox) byAgent.delete(agentKey(sandbox.spec))
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
            const entry = programs[name]
            if (entry === undefined) {
              yield* write("stderr", `${name}: command not found\n`)
              yield* Queue.offer(queue, { _tag: "exit", exitCode: 127, timedOut: false, truncated })
              return yield* Queue.end(queue)
            }
            const readLine = yield* stdinReader(request.stdin)
            sandbox.execs += 1
            const program = isLineProgram(entry) ? runLines(entry) : entry
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
          if (run.output === undefined) {
            const created = yield* PubSub.unbounded<OutputMessage>()
            run.output ??= created
          }
          const output = run.output
          const subscription = yield* PubSub.subscribe(output)
          // The program may have ended while the output was made: its end was not published to it.
          if (yield* Deferred.isDone(run.exited)) return yield* refuse(sandbox, "attach to")
          const attachment: Attachment = {
            write: (line) =>
              Effect.gen(function* () {
                if (sandbox.run !== run || (yield* Deferred.isDone(run.exited))) return yield* refuse(sandbox, "write to")
                yield* run.send(line)
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
          for (const data of sandbox.workspace?.values() ?? []) memoryBytes += data.length
          const live = sandbox.status === "running" || sandbox.status === "paused"
          return { cpuPercent: 0, memoryBytes, pids: live ? 1 + sandbox.execs : 0 }
        }),

      exportWorkspace: (sandboxId) =>
        Effect.map(find(sandboxId), (sandbox) =>
          writeTar([...(sandbox.workspace?.entries() ?? [])].sort(([a], [b]) => a.localeCompare(b)).map(([path, data]) => ({ path, type: "file" as const, data })))
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
          for (const entry of entries) if (entry.type === "file") workspaceOf(sandbox).set(entry.path, entry.data)
        })
    }
    return shape
  })
