// The SandboxBackend contract: the semantics every backend (memory, process, Docker, Kubernetes)
// must honour, as one suite each backend's test file runs with its own layer and programs.
import { randomUUID } from "node:crypto"
import { type Cause, Effect, Fiber, type Layer, Option, Queue, type Scope, Stream } from "effect"
import { describe, expect, it } from "vitest"
import { OwnershipLabels } from "../../src/domain/Ids.ts"
import { SandboxBackend, type ExecChunk, type ExecRequest, type SandboxSpec } from "../../src/services/SandboxBackend.ts"

/** Commands the contract runs; each backend spells them in its own way (in-process program, `sh -c`). */
export interface ContractPrograms {
  /** main program: echoes stdin lines to stdout; the line "exit N" makes it exit with N */
  readonly echoLoop: ReadonlyArray<string>
  readonly printAndExit: (out: string, err: string, code: number) => ReadonlyArray<string>
  readonly sleep: (seconds: number) => ReadonlyArray<string>
  readonly flood: (bytes: number) => ReadonlyArray<string>
  /** paths are relative to the sandbox workspace (env L02_WORKSPACE in every backend) */
  readonly writeFile: (relPath: string, content: string) => ReadonlyArray<string>
  readonly readFile: (relPath: string) => ReadonlyArray<string>
}

/** How to run the contract against one backend. */
export interface ContractOptions {
  readonly layer: Layer.Layer<SandboxBackend, unknown>
  readonly programs: ContractPrograms
  /** builds a spec for a fresh agent; backends fill image, trust level, runtime class */
  readonly makeSpec: (overrides: Partial<SandboxSpec> & { agentId: string }) => SandboxSpec
  /** a runtime class this backend does NOT have, to check fail-closed provisioning */
  readonly unavailableRuntimeClass: string
  readonly timeoutMs?: number
  /**
   * False for a backend that cannot pause (Kubernetes): the contract then checks that pause and
   * unpause are refused with E2046 and leave the sandbox running. Default true.
   */
  readonly pauseSupported?: boolean
  /**
   * Set for a backend whose stats need something the environment lacks (a cluster without
   * metrics-server): the contract then checks that stats is refused with E2046 and a message that
   * contains this text. Default: stats must answer.
   */
  readonly statsUnavailableMentions?: string
}

interface ExecResult {
  readonly stdout: string
  readonly stderr: string
  readonly exit: Extract<ExecChunk, { _tag: "exit" }>
  readonly chunks: ReadonlyArray<ExecChunk>
}

const collectExec = (stream: Stream.Stream<ExecChunk, unknown>) =>
  Effect.map(Stream.runCollect(stream), (collected): ExecResult => {
    const chunks = [...collected]
    const exits = chunks.filter((c) => c._tag === "exit")
    expect(exits, "an exec ends with exactly one exit chunk").toHaveLength(1)
    expect(chunks.at(-1)?._tag).toBe("exit")
    return {
      stdout: chunks.map((c) => (c._tag === "stdout" ? c.data : "")).join(""),
      stderr: chunks.map((c) => (c._tag === "stderr" ? c.data : "")).join(""),
      exit: exits[0] as Extract<ExecChunk, { _tag: "exit" }>,
      chunks
    }
  })

/** Registers the contract's `describe`/`it` blocks for one backend. */
export const sandboxBackendContract = (name: string, options: ContractOptions): void => {
  const timeout = options.timeoutMs ?? 20_000
  const { programs } = options
  const runtimeId = `contract-${randomUUID().slice(0, 8)}`

  /** Runs a test body with a fresh backend; everything the body acquired is released at the end, pass or fail. */
  const run = <A, E>(body: (backend: SandboxBackend["Service"]) => Effect.Effect<A, E, Scope.Scope>) =>
    Effect.runPromise(
      Effect.gen(function* () {
        const backend = yield* SandboxBackend
        return yield* body(backend)
      }).pipe(Effect.scoped, Effect.provide(options.layer))
    )

  const specFor = (overrides: Partial<SandboxSpec> = {}) =>
    options.makeSpec({ runtimeId, command: programs.echoLoop, ...overrides, agentId: overrides.agentId ?? randomUUID() })

  /** Provisions (and by default starts) a sandbox that is removed when the test's scope closes. */
  const acquire = (backend: SandboxBackend["Service"], spec: SandboxSpec, start = true) =>
    Effect.acquireRelease(
      Effect.flatMap(backend.provision(spec), (info) => (start ? backend.start(info.sandboxId) : Effect.succeed(info))),
      (info) =>
        backend.remove(info.sandboxId).pipe(
          // A failed release would leave a sandbox behind: say which and why, so a leak is traceable.
          Effect.tapError((error) => Effect.sync(() => console.error(`contract: removing ${info.sandboxId} failed`, error))),
          Effect.ignore
        )
    )

  const exec = (backend: SandboxBackend["Service"], sandboxId: string, command: ReadonlyArray<string>, request: Partial<ExecRequest> = {}) =>
    collectExec(backend.exec(sandboxId, { command, timeoutMs: 10_000, maxOutputBytes: 1 << 20, ...request }))

  describe(`SandboxBackend contract: ${name}`, () => {
    it("provision then start gives a running sandbox carrying the ownership labels", { timeout }, () =>
      run((backend) =>
        Effect.gen(function* () {
          const spec = specFor({ labels: { [OwnershipLabels.managedBy]: "l02", team: "contract" } })
          const created = yield* Effect.acquireRelease(backend.provision(spec), (info) => Effect.ignore(backend.remove(info.sandboxId)))
          expect(created.status).toBe("created")
          const started = yield* backend.start(created.sandboxId)
          expect(started.sandboxId).toBe(created.sandboxId)
          expect(started.status).toBe("running")
          const info = yield* backend.inspect(created.sandboxId)
          expect(info).toMatchObject({ agentId: spec.agentId, runtimeId, status: "running" })
          expect(info.labels).toMatchObject({
            team: "contract",
            [OwnershipLabels.managedBy]: "l02",
            [OwnershipLabels.agentId]: spec.agentId,
            [OwnershipLabels.runtimeId]: runtimeId,
            [OwnershipLabels.sessionId]: spec.sessionId
          })
        })
      ))

    it("provision is idempotent by agent id", { timeout }, () =>
      run((backend) =>
        Effect.gen(function* () {
          const spec = specFor()
          const first = yield* acquire(backend, spec, false)
          const second = yield* acquire(backend, spec, false)
          expect(second.sandboxId).toBe(first.sandboxId)
          const found = yield* backend.list({ [OwnershipLabels.agentId]: spec.agentId })
          expect(found.map((s) => s.sandboxId)).toEqual([first.sandboxId])
        })
      ))

    it("list selects by labels and does not cross runtime ids", { timeout }, () =>
      run((backend) =>
        Effect.gen(function* () {
          const team = randomUUID().slice(0, 8)
          const otherRuntime = `${runtimeId}-other`
          const a = yield* acquire(backend, specFor({ labels: { team } }), false)
          const b = yield* acquire(backend, specFor({ labels: { team } }), false)
          const c = yield* acquire(backend, specFor({ labels: { team }, runtimeId: otherRuntime }), false)
          yield* acquire(backend, specFor({ labels: { team: `${team}-x` } }), false)
          const mine = yield* backend.list({ team, [OwnershipLabels.runtimeId]: runtimeId })
          expect(mine.map((s) => s.sandboxId).sort()).toEqual([a.sandboxId, b.sandboxId].sort())
          const theirs = yield* backend.list({ team, [OwnershipLabels.runtimeId]: otherRuntime })
          expect(theirs.map((s) => s.sandboxId)).toEqual([c.sandboxId])
          expect(theirs[0]!.runtimeId).toBe(otherRuntime)
        })
      ))

    it("exec streams stdout and stderr and reports the exit code", { timeout }, () =>
      run((backend) =>
        Effect.gen(function* () {
          const sandbox = yield* acquire(backend, specFor())
          const result = yield* exec(backend, sandbox.sandboxId, programs.printAndExit("to-stdout", "to-stderr", 3))
          expect(result.stdout).toBe("to-stdout")
          expect(result.stderr).toBe("to-stderr")
          expect(result.exit).toEqual({ _tag: "exit", exitCode: 3, timedOut: false, truncated: false })
          const ok = yield* exec(backend, sandbox.sandboxId, programs.printAndExit("", "", 0))
          expect(ok.exit.exitCode).toBe(0)
        })
      ))

    it("exec with a streamed stdin gets each piece as it comes and ends when the stream ends (a stdio MCP server's channel)", { timeout }, () =>
      run((backend) =>
        Effect.gen(function* () {
          const sandbox = yield* acquire(backend, specFor())
          const input = yield* Queue.unbounded<string, Cause.Done>()
          const output = yield* Queue.unbounded<ExecChunk>()
          const fiber = yield* Effect.forkScoped(
            Stream.runForEach(
              backend.exec(sandbox.sandboxId, { command: programs.echoLoop, stdin: Stream.fromQueue(input), timeoutMs: 15_000, maxOutputBytes: 1 << 20 }),
              (chunk) => Queue.offer(output, chunk)
            )
          )
          let seen = ""
          const until = (text: string) =>
            Effect.gen(function* () {
              while (!seen.includes(text)) {
                const chunk = yield* Queue.take(output)
                if (chunk._tag === "stdout") seen += chunk.data
                if (chunk._tag === "exit") return chunk
              }
              return undefined
            })
          // The first line is answered while the input is still open: it is not buffered until the end.
          yield* Queue.offer(input, "first\n")
          expect(yield* until("first\n")).toBeUndefined()
          yield* Queue.offer(input, "second\n")
          expect(yield* until("second\n")).toBeUndefined()
          yield* Queue.end(input)
          let exit: ExecChunk | undefined
          while (exit?._tag !== "exit") exit = yield* Queue.take(output)
          expect(exit).toMatchObject({ exitCode: 0, timedOut: false })
          expect(seen).toBe("first\nsecond\n")
          yield* Fiber.join(fiber)
        })
      ))

    it("exec with a string stdin reads all of it and then its end; a command that reads no input ends at once, even with an open stream", { timeout }, () =>
      run((backend) =>
        Effect.gen(function* () {
          const sandbox = yield* acquire(backend, specFor())
          const text = "héllo wörld\nsecond line\n"
          const echoed = yield* exec(backend, sandbox.sandboxId, programs.echoLoop, { stdin: text })
          expect(echoed.stdout).toBe(text)
          expect(echoed.exit).toMatchObject({ exitCode: 0, timedOut: false })
          const ignored = yield* exec(backend, sandbox.sandboxId, programs.printAndExit("done", "", 4), { stdin: "x".repeat(100_000) })
          expect(ignored.stdout).toBe("done")
          expect(ignored.exit).toMatchObject({ exitCode: 4, timedOut: false })
          const open = yield* exec(backend, sandbox.sandboxId, programs.printAndExit("early", "", 0), { stdin: Stream.never, timeoutMs: 15_000 })
          expect(open.stdout).toBe("early")
          expect(open.exit).toMatchObject({ exitCode: 0, timedOut: false })
        })
      ))

    it("exec past its timeout is killed and reports timedOut", { timeout }, () =>
      run((backend) =>
        Effect.gen(function* () {
          const sandbox = yield* acquire(backend, specFor())
          const started = Date.now()
          const result = yield* exec(backend, sandbox.sandboxId, programs.sleep(30), { timeoutMs: 300 })
          expect(result.exit.timedOut).toBe(true)
          expect(result.exit.exitCode).not.toBe(0)
          expect(Date.now() - started).toBeLessThan(10_000)
        })
      ))

    it("exec output beyond the cap is dropped and reported as truncated", { timeout }, () =>
      run((backend) =>
        Effect.gen(function* () {
          const sandbox = yield* acquire(backend, specFor())
          const result = yield* exec(backend, sandbox.sandboxId, programs.flood(200_000), { maxOutputBytes: 1000 })
          expect(result.exit.truncated).toBe(true)
          const bytes = Buffer.byteLength(result.stdout) + Buffer.byteLength(result.stderr)
          expect(bytes).toBeLessThanOrEqual(1000)
          expect(bytes).toBeGreaterThan(0)
          const small = yield* exec(backend, sandbox.sandboxId, programs.flood(500), { maxOutputBytes: 1000 })
          expect(small.exit.truncated).toBe(false)
          expect(small.stdout.length).toBe(500)
        })
      ))

    it("attach writes a line to the main program and reads its output back", { timeout }, () =>
      run((backend) =>
        Effect.gen(function* () {
          const sandbox = yield* acquire(backend, specFor())
          const attachment = yield* backend.attach(sandbox.sandboxId)
          const line = `hello ${randomUUID()}`
          yield* attachment.write(line)
          const first = yield* Stream.runHead(attachment.output).pipe(Effect.timeoutOption("10 seconds"))
          expect(Option.flatten(first)).toEqual(Option.some({ stream: "stdout", line }))
        })
      ))

    it("attach writes a line far larger than a pipe's buffer whole, and the next line after it", { timeout }, () =>
      run((backend) =>
        Effect.gen(function* () {
          const sandbox = yield* acquire(backend, specFor())
          const attachment = yield* backend.attach(sandbox.sandboxId)
          // 200 KB: three times the 64 KiB a Linux pipe takes at once.
          const big = `big-${"x".repeat(200_000)}-end`
          yield* attachment.write(big)
          yield* attachment.write("after")
          const lines = yield* Stream.take(attachment.output, 2).pipe(Stream.runCollect, Effect.timeoutOption("30 seconds"))
          const got = Option.getOrElse(lines, () => [])
          expect([...got].map((l) => l.line.length)).toEqual([big.length, 5])
          expect([...got][0]?.line).toBe(big)
          expect([...got][1]?.line).toBe("after")
        })
      ))

    it("a main program that exits produces an exited event with its code, and inspect shows exited", { timeout }, () =>
      run((backend) =>
        Effect.gen(function* () {
          const sandbox = yield* acquire(backend, specFor())
          const exited = yield* backend.events.pipe(
            Stream.filter((e) => e.sandboxId === sandbox.sandboxId && e.type === "exited"),
            Stream.runHead,
            Effect.forkChild
          )
          // Let the subscription reach the backend before the exit happens.
          yield* Effect.sleep("200 millis")
          const attachment = yield* backend.attach(sandbox.sandboxId)
          yield* attachment.write("exit 7")
          const event = yield* Fiber.join(exited).pipe(Effect.timeoutOption("10 seconds"))
          expect(Option.flatten(event).pipe(Option.map((e) => ({ type: e.type, exitCode: e.exitCode, agentId: e.agentId })))).toEqual(
            Option.some({ type: "exited", exitCode: 7, agentId: sandbox.agentId })
          )
          const info = yield* backend.inspect(sandbox.sandboxId)
          expect(info).toMatchObject({ status: "exited", exitCode: 7 })
        })
      ))

    if (options.pauseSupported === false) {
      it("pause and unpause are refused with E2046 and the sandbox keeps running", { timeout }, () =>
        run((backend) =>
          Effect.gen(function* () {
            const sandbox = yield* acquire(backend, specFor())
            const attachment = yield* backend.attach(sandbox.sandboxId)
            const paused = yield* Effect.flip(backend.pause(sandbox.sandboxId))
            expect(paused).toMatchObject({ _tag: "SandboxOperationFailed", code: "E2046" })
            const unpaused = yield* Effect.flip(backend.unpause(sandbox.sandboxId))
            expect(unpaused).toMatchObject({ _tag: "SandboxOperationFailed", code: "E2046" })
            expect((yield* backend.inspect(sandbox.sandboxId)).status).toBe("running")
            yield* attachment.write("still-running")
            const answer = yield* Stream.runHead(attachment.output).pipe(Effect.timeoutOption("10 seconds"))
            expect(Option.flatten(answer)).toEqual(Option.some({ stream: "stdout", line: "still-running" }))
          })
        ))
    }

    it.skipIf(options.pauseSupported === false)("pause stops the main program from running and unpause lets it run again", { timeout }, () =>
      run((backend) =>
        Effect.gen(function* () {
          const sandbox = yield* acquire(backend, specFor())
          const attachment = yield* backend.attach(sandbox.sandboxId)
          yield* backend.pause(sandbox.sandboxId)
          expect((yield* backend.inspect(sandbox.sandboxId)).status).toBe("paused")
          yield* attachment.write("while-paused")
          const reader = yield* Stream.runHead(attachment.output).pipe(Effect.forkChild)
          yield* Effect.sleep("400 millis")
          expect(reader.pollUnsafe(), "a paused program must not answer").toBeUndefined()
          yield* backend.unpause(sandbox.sandboxId)
          expect((yield* backend.inspect(sandbox.sandboxId)).status).toBe("running")
          const answer = yield* Fiber.join(reader).pipe(Effect.timeoutOption("10 seconds"))
          expect(Option.flatten(answer)).toEqual(Option.some({ stream: "stdout", line: "while-paused" }))
        })
      ))

    it.skipIf(options.pauseSupported === false)("pause and unpause are idempotent: a runtime recovering from a crash may repeat either", { timeout }, () =>
      run((backend) =>
        Effect.gen(function* () {
          const sandbox = yield* acquire(backend, specFor())
          yield* backend.unpause(sandbox.sandboxId)
          expect((yield* backend.inspect(sandbox.sandboxId)).status).toBe("running")
          yield* backend.pause(sandbox.sandboxId)
          yield* backend.pause(sandbox.sandboxId)
          expect((yield* backend.inspect(sandbox.sandboxId)).status).toBe("paused")
          yield* backend.unpause(sandbox.sandboxId)
          yield* backend.unpause(sandbox.sandboxId)
          expect((yield* backend.inspect(sandbox.sandboxId)).status).toBe("running")
        })
      ))

    it("stop ends the sandbox, remove deletes it, inspect then fails with E2045", { timeout }, () =>
      run((backend) =>
        Effect.gen(function* () {
          const spec = specFor()
          const sandbox = yield* acquire(backend, spec)
          yield* backend.stop(sandbox.sandboxId, { graceMs: 2000 })
          const stopped = yield* backend.inspect(sandbox.sandboxId)
          expect(stopped.status).toBe("exited")
          yield* backend.remove(sandbox.sandboxId)
          const error = yield* Effect.flip(backend.inspect(sandbox.sandboxId))
          expect(error).toMatchObject({ _tag: "SandboxNotFound", code: "E2045" })
          expect(yield* backend.list({ [OwnershipLabels.agentId]: spec.agentId })).toEqual([])
        })
      ))

    it("concurrent removes of one running sandbox all succeed and leave nothing behind", { timeout }, () =>
      run((backend) =>
        Effect.gen(function* () {
          const spec = specFor()
          const sandbox = yield* acquire(backend, spec)
          yield* Effect.all([1, 2, 3].map(() => backend.remove(sandbox.sandboxId)), { concurrency: "unbounded" })
          expect((yield* Effect.flip(backend.inspect(sandbox.sandboxId))).code).toBe("E2045")
          expect(yield* backend.list({ [OwnershipLabels.agentId]: spec.agentId })).toEqual([])
        })
      ))

    it("remove is idempotent: twice, and for an id it never had", { timeout }, () =>
      run((backend) =>
        Effect.gen(function* () {
          const sandbox = yield* acquire(backend, specFor())
          yield* backend.remove(sandbox.sandboxId)
          yield* backend.remove(sandbox.sandboxId)
          yield* backend.remove(`never-${randomUUID()}`)
          const error = yield* Effect.flip(backend.inspect(sandbox.sandboxId))
          expect(error.code).toBe("E2045")
        })
      ))

    it("stats of a running sandbox are numbers", { timeout }, () =>
      run((backend) =>
        Effect.gen(function* () {
          const sandbox = yield* acquire(backend, specFor())
          if (options.statsUnavailableMentions !== undefined) {
            const refused = yield* Effect.flip(backend.stats(sandbox.sandboxId))
            expect(refused).toMatchObject({ code: "E2046" })
            expect(refused.message).toContain(options.statsUnavailableMentions)
            return
          }
          const stats = yield* backend.stats(sandbox.sandboxId)
          expect(Number.isFinite(stats.cpuPercent) && stats.cpuPercent >= 0).toBe(true)
          expect(Number.isFinite(stats.memoryBytes) && stats.memoryBytes >= 0).toBe(true)
          if (stats.pids !== undefined) expect(stats.pids).toBeGreaterThanOrEqual(1)
        })
      ))

    it("a workspace exported from one sandbox and imported into another keeps its files", { timeout }, () =>
      run((backend) =>
        Effect.gen(function* () {
          const capabilities = yield* backend.capabilities
          if (!capabilities.workspaceArchive) return
          const source = yield* acquire(backend, specFor())
          const content = `remember ${randomUUID()}`
          const written = yield* exec(backend, source.sandboxId, programs.writeFile("notes/memo.txt", content))
          expect(written.exit.exitCode).toBe(0)
          const archive = yield* backend.exportWorkspace(source.sandboxId)
          expect(archive.length).toBeGreaterThan(0)
          // As on resume from a checkpoint: import into a provisioned sandbox, then start it.
          const target = yield* acquire(backend, specFor(), false)
          yield* backend.importWorkspace(target.sandboxId, archive)
          yield* backend.start(target.sandboxId)
          const read = yield* exec(backend, target.sandboxId, programs.readFile("notes/memo.txt"))
          expect(read).toMatchObject({ stdout: content, exit: { exitCode: 0 } })
          const missing = yield* exec(backend, target.sandboxId, programs.readFile("notes/absent.txt"))
          expect(missing.exit.exitCode).not.toBe(0)
        })
      ))

    it("an unavailable runtime class fails closed with E2041 and leaves nothing behind", { timeout }, () =>
      run((backend) =>
        Effect.gen(function* () {
          const base = specFor()
          const spec = { ...base, sandbox: { ...base.sandbox, runtimeClass: options.unavailableRuntimeClass } }
          const error = yield* Effect.flip(
            Effect.acquireRelease(backend.provision(spec), (info) => Effect.ignore(backend.remove(info.sandboxId)))
          )
          expect(error).toMatchObject({ _tag: "RuntimeClassUnavailable", code: "E2041" })
          expect(error.message).toContain(options.unavailableRuntimeClass)
          expect(yield* backend.list({ [OwnershipLabels.agentId]: spec.agentId })).toEqual([])
        })
      ))
  })
}
