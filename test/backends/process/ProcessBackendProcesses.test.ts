// Process backend behaviour only real processes show: SIGSTOP/SIGCONT, group kill, the SIGKILL
// after the grace period, re-adoption after the layer's scope closed, privilege drop, memory limit.
import { spawn } from "node:child_process"
import { randomUUID } from "node:crypto"
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Context, Effect, Exit, Fiber, Layer, Option, Scope, Stream } from "effect"
import { afterAll, afterEach, describe, expect, it } from "vitest"
import * as ProcessBackend from "../../../src/backends/process/ProcessBackend.ts"
import { OwnershipLabels } from "../../../src/domain/Ids.ts"
import { SandboxBackend, type SandboxSpec } from "../../../src/services/SandboxBackend.ts"
import { shellPrograms, trustedSpec } from "./support.ts"

const dataDir = mkdtempSync(join(tmpdir(), "l02-process-"))
const cleanups: Array<() => Promise<unknown>> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) await cleanup()
})
afterAll(() => rmSync(dataDir, { recursive: true, force: true }))

const layer = ProcessBackend.layer({ dataDir, pollIntervalMs: 100 })

const run = <A, E>(body: (backend: SandboxBackend["Service"]) => Effect.Effect<A, E, Scope.Scope>) =>
  Effect.runPromise(
    Effect.gen(function* () {
      return yield* body(yield* SandboxBackend)
    }).pipe(Effect.scoped, Effect.provide(layer))
  )

const spec = (overrides: Partial<SandboxSpec> = {}) => trustedSpec({ agentId: randomUUID(), command: shellPrograms.echoLoop, ...overrides })

const started = (backend: SandboxBackend["Service"], s: SandboxSpec) =>
  Effect.acquireRelease(
    Effect.flatMap(backend.provision(s), (info) => backend.start(info.sandboxId)),
    (info) => Effect.ignore(backend.remove(info.sandboxId))
  )

/** The processes of a group, from /proc: pid -> state letter. */
const groupStates = (pgid: number): Map<number, string> => {
  const states = new Map<number, string>()
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue
    try {
      const text = readFileSync(`/proc/${name}/stat`, "utf8")
      const fields = text.slice(text.lastIndexOf(")") + 2).split(" ")
      if (Number(fields[2]) === pgid && fields[0] !== "Z") states.set(Number(name), fields[0]!)
    } catch {
      continue
    }
  }
  return states
}

const recordOf = (sandboxId: string) =>
  JSON.parse(readFileSync(join(dataDir, "sandboxes", sandboxId, "record.json"), "utf8")) as { pid: number; uid?: number }

const waitFor = (check: () => boolean, ms = 5000) =>
  Effect.gen(function* () {
    const deadline = Date.now() + ms
    while (!check()) {
      if (Date.now() > deadline) return false
      yield* Effect.sleep("20 millis")
    }
    return true
  })

// A main program with a child in its group: the background sleep must be stopped and killed too.
const withChild = ["sh", "-c", 'sleep 300 & while IFS= read -r line; do printf "%s\\n" "$line"; done']

describe("process backend processes", () => {
  it("pause stops every process of the group (state T) and unpause resumes them", { timeout: 20_000 }, () =>
    run((backend) =>
      Effect.gen(function* () {
        const sandbox = yield* started(backend, spec({ command: withChild }))
        const { pid } = recordOf(sandbox.sandboxId)
        expect(yield* waitFor(() => groupStates(pid).size >= 2)).toBe(true)
        yield* backend.pause(sandbox.sandboxId)
        expect(yield* waitFor(() => [...groupStates(pid).values()].every((s) => s === "T"))).toBe(true)
        expect(groupStates(pid).size).toBeGreaterThanOrEqual(2)
        yield* backend.unpause(sandbox.sandboxId)
        expect(yield* waitFor(() => [...groupStates(pid).values()].every((s) => s !== "T"))).toBe(true)
      })
    ))

  it("stop leaves no process of the group behind, including the program's own children", { timeout: 20_000 }, () =>
    run((backend) =>
      Effect.gen(function* () {
        const sandbox = yield* started(backend, spec({ command: withChild }))
        const { pid } = recordOf(sandbox.sandboxId)
        expect(yield* waitFor(() => groupStates(pid).size >= 2)).toBe(true)
        yield* backend.stop(sandbox.sandboxId, { graceMs: 2000 })
        expect(groupStates(pid).size).toBe(0)
        expect(yield* backend.inspect(sandbox.sandboxId)).toMatchObject({ status: "exited" })
      })
    ))

  it("a program that handles SIGTERM exits at once with 143; one that ignores it is killed after the grace period with 137", { timeout: 20_000 }, () =>
    run((backend) =>
      Effect.gen(function* () {
        const polite = yield* started(backend, spec())
        const t0 = Date.now()
        yield* backend.stop(polite.sandboxId, { graceMs: 5000 })
        expect(Date.now() - t0).toBeLessThan(2000)
        expect(yield* backend.inspect(polite.sandboxId)).toMatchObject({ status: "exited", exitCode: 143 })

        const stubborn = yield* started(backend, spec({ command: ["sh", "-c", 'trap "" TERM; while :; do sleep 0.05; done'] }))
        const { pid } = recordOf(stubborn.sandboxId)
        // Only once its sleep runs has the program installed its trap.
        expect(yield* waitFor(() => [...groupStates(pid).keys()].some((p) => readFileSync(`/proc/${p}/cmdline`, "utf8").startsWith("sleep")))).toBe(true)
        const t1 = Date.now()
        yield* backend.stop(stubborn.sandboxId, { graceMs: 600 })
        const took = Date.now() - t1
        expect(took).toBeGreaterThanOrEqual(600)
        expect(took).toBeLessThan(5000)
        expect(yield* backend.inspect(stubborn.sandboxId)).toMatchObject({ status: "exited", exitCode: 137 })
        expect(groupStates(pid).size).toBe(0)
      })
    ))

  it("a fresh layer on the same data directory re-adopts a sandbox whose first layer closed without stopping it", { timeout: 30_000 }, async () => {
    const s = spec()
    const firstScope = Effect.runSync(Scope.make())
    const first = await Effect.runPromise(Layer.buildWithScope(layer, firstScope))
    const backendA = Context.get(first, SandboxBackend)
    const info = await Effect.runPromise(Effect.flatMap(backendA.provision(s), (i) => backendA.start(i.sandboxId)))
    const { pid } = recordOf(info.sandboxId)
    await Effect.runPromise(Scope.close(firstScope, Exit.void))
    cleanups.push(() => run((backend) => Effect.ignore(backend.remove(info.sandboxId))))
    expect(groupStates(pid).has(pid), "closing the layer leaves the sandbox running").toBe(true)

    await run((backend) =>
      Effect.gen(function* () {
        yield* Effect.addFinalizer(() => Effect.ignore(backend.remove(info.sandboxId)))
        expect(yield* backend.inspect(info.sandboxId)).toMatchObject({ status: "running", agentId: s.agentId })
        expect((yield* backend.list({ [OwnershipLabels.agentId]: s.agentId })).map((i) => i.sandboxId)).toEqual([info.sandboxId])
        expect((yield* backend.provision(s)).sandboxId, "provision stays idempotent across instances").toBe(info.sandboxId)
        const attachment = yield* backend.attach(info.sandboxId)
        yield* attachment.write("after the restart")
        const line = yield* Stream.runHead(attachment.output).pipe(Effect.timeoutOption("5 seconds"))
        expect(Option.flatten(line)).toEqual(Option.some({ stream: "stdout", line: "after the restart" }))
        // The adopted process is no child of this layer: its exit is found by polling, its code read from the wrapper's file.
        const exited = yield* backend.events.pipe(Stream.filter((e) => e.sandboxId === info.sandboxId), Stream.runHead, Effect.forkChild)
        yield* Effect.sleep("100 millis")
        yield* attachment.write("exit 5")
        const event = yield* Fiber.join(exited).pipe(Effect.timeoutOption("5 seconds"))
        expect(Option.flatten(event).pipe(Option.map((e) => [e.type, e.exitCode]))).toEqual(Option.some(["exited", 5]))
        expect(yield* backend.inspect(info.sandboxId)).toMatchObject({ status: "exited", exitCode: 5 })
        expect(groupStates(pid).size).toBe(0)
      })
    )
  })

  it("a sandbox survives the SIGKILL of the host that started it and is re-adopted", { timeout: 30_000 }, async () => {
    const agentId = randomUUID()
    const host = spawn(process.execPath, [join(import.meta.dirname, "fixtures/hostThatDies.ts"), dataDir, agentId], { stdio: ["ignore", "pipe", "inherit"] })
    cleanups.push(async () => host.kill("SIGKILL"))
    const sandboxId = await new Promise<string>((resolve, reject) => {
      let out = ""
      host.stdout.on("data", (d: Buffer) => {
        out += d.toString()
        if (out.includes("\n")) resolve(out.trim())
      })
      host.on("exit", (code) => reject(new Error(`the host exited early with ${code}`)))
    })
    const hostGone = new Promise((resolve) => host.on("exit", resolve))
    host.kill("SIGKILL")
    await hostGone
    const { pid } = recordOf(sandboxId)
    // Whatever fails below, the sandbox must not outlive the test.
    cleanups.push(() => run((backend) => Effect.ignore(backend.remove(sandboxId))))
    expect(groupStates(pid).has(pid), "the sandbox outlives its host").toBe(true)
    await run((backend) =>
      Effect.gen(function* () {
        expect(yield* backend.inspect(sandboxId)).toMatchObject({ status: "running", agentId })
        const attachment = yield* backend.attach(sandboxId)
        yield* attachment.write("still here")
        const line = yield* Stream.runHead(attachment.output).pipe(Effect.timeoutOption("5 seconds"))
        expect(Option.flatten(line)).toEqual(Option.some({ stream: "stdout", line: "still here" }))
        yield* backend.stop(sandboxId, { graceMs: 2000 })
        expect(groupStates(pid).size).toBe(0)
      })
    )
  })

  it("a group above its memory limit is killed and reported as oom", { timeout: 20_000 }, () =>
    run((backend) =>
      Effect.gen(function* () {
        const base = spec()
        const tiny = { ...base, sandbox: { ...base.sandbox, resources: { ...base.sandbox.resources, memory: "64Ki", memoryBytes: 64 * 1024 } } }
        const events = yield* backend.events.pipe(Stream.runHead, Effect.forkChild)
        yield* Effect.sleep("50 millis")
        const sandbox = yield* started(backend, tiny)
        const event = yield* Fiber.join(events).pipe(Effect.timeoutOption("5 seconds"))
        expect(Option.flatten(event).pipe(Option.map((e) => [e.sandboxId, e.type]))).toEqual(Option.some([sandbox.sandboxId, "oom"]))
        expect(yield* backend.inspect(sandbox.sandboxId)).toMatchObject({ status: "exited", oomKilled: true, exitCode: 137 })
      })
    ))

  it.runIf(process.getuid?.() === 0)("drops a root host to the security context's user (65534) for the program and execs", { timeout: 20_000 }, () =>
    run((backend) =>
      Effect.gen(function* () {
        const sandbox = yield* started(backend, spec({ command: withChild }))
        const { pid, uid } = recordOf(sandbox.sandboxId)
        expect(uid).toBe(65534)
        expect(yield* waitFor(() => groupStates(pid).size >= 2)).toBe(true)
        for (const member of groupStates(pid).keys()) {
          expect(/^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${member}/status`, "utf8"))![1]).toBe("65534")
        }
        const id = [...(yield* Stream.runCollect(backend.exec(sandbox.sandboxId, { command: ["id", "-u"], timeoutMs: 5000, maxOutputBytes: 100 })))]
        expect(id[0]).toEqual({ _tag: "stdout", data: "65534\n" })
        const sneaky = [...(yield* Stream.runCollect(backend.exec(sandbox.sandboxId, { command: ["sh", "-c", "cat /proc/self/status"], timeoutMs: 5000, maxOutputBytes: 100_000 })))]
        const status = sneaky.map((c) => (c._tag === "stdout" ? c.data : "")).join("")
        expect(status).toMatch(/^NoNewPrivs:\s+1/m)
        expect(status).toMatch(/^CapEff:\s+0+$/m)
      })
    ))

  it("refuses what it cannot host, naming the backend that can", { timeout: 20_000 }, () =>
    run((backend) =>
      Effect.gen(function* () {
        const base = spec()
        const standard = yield* Effect.flip(backend.provision({ ...base, sandbox: { ...base.sandbox, trustLevel: "STANDARD", runtimeClass: "gvisor" } }))
        expect(standard).toMatchObject({ code: "E2041", runtimeClass: "gvisor" })
        expect(standard.message).toContain("docker backend with runsc")
        const kata = yield* Effect.flip(backend.provision({ ...base, sandbox: { ...base.sandbox, trustLevel: "UNTRUSTED", runtimeClass: "kata" } }))
        expect(kata.message).toContain("kubernetes with RuntimeClass kata")
        const restricted = yield* Effect.flip(backend.provision({ ...base, sandbox: { ...base.sandbox, networkPolicy: "restricted" } }))
        expect(restricted.code).toBe("E2043")
        const noCommand = yield* Effect.flip(backend.provision({ ...base, command: undefined }))
        expect(noCommand).toMatchObject({ code: "E2040", key: "command" })
        expect(yield* backend.list({ [OwnershipLabels.agentId]: base.agentId })).toEqual([])
      })
    ))
})

describe.runIf(process.getuid?.() === 0)("a root host dropping to the sandbox user", () => {
  it("refuses a data directory or a program the sandbox user cannot reach, and creates nothing", { timeout: 20_000 }, async () => {
    const hidden = mkdtempSync(join(tmpdir(), "l02-hidden-")) // mode 0700, owned by root
    try {
      const hiddenData = join(hidden, "data")
      const hiddenLayer = ProcessBackend.layer({ dataDir: hiddenData, pollIntervalMs: 100 })
      const refused = await Effect.runPromise(
        Effect.gen(function* () {
          return yield* Effect.flip((yield* SandboxBackend).provision(spec()))
        }).pipe(Effect.scoped, Effect.provide(hiddenLayer))
      )
      expect(refused).toMatchObject({ code: "E2040", key: "runtime.data_dir" })
      expect(refused.message).toContain(`${hidden} (mode 0700, owner 0) does not let uid 65534 search it`)
      expect(readdirSync(join(hiddenData, "sandboxes"))).toEqual([])

      const program = join(hidden, "agent.mjs")
      writeFileSync(program, "process.stdin.pipe(process.stdout)\n", { mode: 0o644 })
      await run((backend) =>
        Effect.gen(function* () {
          const s = spec({ command: [process.execPath, program] })
          const error = yield* Effect.flip(backend.provision(s))
          expect(error).toMatchObject({ code: "E2040", key: "command" })
          expect(error.message).toContain(`cannot reach ${program}`)
          expect(yield* backend.list({ [OwnershipLabels.agentId]: s.agentId })).toEqual([])
        })
      )
      chmodSync(hidden, 0o711)
      await run((backend) =>
        Effect.gen(function* () {
          const info = yield* started(backend, spec({ command: [process.execPath, program] }))
          expect(info.status).toBe("running")
        })
      )
    } finally {
      rmSync(hidden, { recursive: true, force: true })
    }
  })
})
