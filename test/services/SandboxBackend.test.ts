// The in-memory sandbox backend: the SandboxBackend contract, plus what only it offers
// (configurable runtime classes, delays driven by the TestClock, extra programs).
import { execFileSync } from "node:child_process"
import { randomUUID } from "node:crypto"
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import fc from "fast-check"
import { Effect, Fiber, Stream } from "effect"
import { TestClock } from "effect/testing"
import { afterAll, describe, expect, it } from "@effect/vitest"
import { trustProfiles } from "../../src/domain/SandboxConfiguration.ts"
import { OwnershipLabels } from "../../src/domain/Ids.ts"
import { layerMemory, SandboxBackend, type SandboxSpec } from "../../src/services/SandboxBackend.ts"
import { readTar, writeTar } from "../../src/services/WorkspaceArchive.ts"
import { sandboxBackendContract } from "./SandboxBackendContract.ts"

const makeSpec = (overrides: Partial<SandboxSpec> & { agentId: string }): SandboxSpec => ({
  sessionId: randomUUID(),
  runtimeId: "rt-memory",
  name: "contract",
  env: {},
  labels: {},
  sandbox: {
    trustLevel: "TRUSTED",
    runtimeClass: "runc",
    networkPolicy: "allow_egress",
    securityContext: trustProfiles.TRUSTED.security,
    resources: { cpu: "1", cpuMillis: 1000, memory: "512Mi", memoryBytes: 512 * 1024 * 1024, tokensPerHour: 100_000, pids: 64 }
  },
  ...overrides
})

sandboxBackendContract("memory", {
  layer: layerMemory(),
  makeSpec,
  unavailableRuntimeClass: "runsc",
  programs: {
    echoLoop: ["l02-echo"],
    printAndExit: (out, err, code) => ["l02-print", out, err, String(code)],
    sleep: (seconds) => ["l02-sleep", String(seconds)],
    flood: (bytes) => ["l02-flood", String(bytes)],
    writeFile: (path, content) => ["l02-write", path, content],
    readFile: (path) => ["l02-read", path]
  }
})

const withBackend = <A, E>(body: (backend: SandboxBackend["Service"]) => Effect.Effect<A, E>, options: Parameters<typeof layerMemory>[0] = {}) =>
  Effect.gen(function* () {
    const backend = yield* SandboxBackend
    return yield* body(backend)
  }).pipe(Effect.provide(layerMemory(options)))

const spec = (overrides: Partial<SandboxSpec> = {}) => makeSpec({ agentId: randomUUID(), ...overrides })

describe("memory backend", () => {
  it.effect("a sandbox exists from the start of a slow provision, so an interrupted provision leaves it to be reaped by label", () =>
    withBackend(
      (backend) =>
        Effect.gen(function* () {
          const s = spec()
          const provisioning = yield* Effect.forkChild(backend.provision(s), { startImmediately: true })
          yield* TestClock.adjust("29 millis")
          expect(provisioning.pollUnsafe()).toBeUndefined()
          const during = yield* backend.list({ [OwnershipLabels.agentId]: s.agentId })
          expect(during.map((i) => i.status)).toEqual(["created"])
          yield* Fiber.interrupt(provisioning)
          const left = yield* backend.list({ [OwnershipLabels.agentId]: s.agentId })
          expect(left).toHaveLength(1)
          yield* backend.remove(left[0]!.sandboxId)
          expect(yield* backend.list({})).toEqual([])
        }),
      { provisionDelayMs: 30 }
    ))

  it.effect("a sandbox removed while it is starting is not started, and start fails with E2045", () =>
    withBackend(
      (backend) =>
        Effect.gen(function* () {
          const created = yield* backend.provision(spec())
          const starting = yield* Effect.forkChild(Effect.flip(backend.start(created.sandboxId)), { startImmediately: true })
          yield* TestClock.adjust("10 millis")
          yield* backend.remove(created.sandboxId)
          yield* TestClock.adjust("20 millis")
          const error = yield* Fiber.join(starting)
          expect(error.code).toBe("E2045")
          expect(yield* backend.list({})).toEqual([])
        }),
      { startDelayMs: 30 }
    ))

  it.effect("stop lets a program that handles SIGTERM exit (143) and kills one that ignores it after the grace period (137), without exited events", () =>
    withBackend(
      (backend) =>
        Effect.gen(function* () {
          const seen: Array<string> = []
          yield* Effect.forkChild(Stream.runForEach(backend.events, (e) => Effect.sync(() => seen.push(e.type))), { startImmediately: true })
          const polite = yield* backend.provision(spec())
          yield* backend.start(polite.sandboxId)
          yield* backend.stop(polite.sandboxId, { graceMs: 5000 })
          expect(yield* backend.inspect(polite.sandboxId)).toMatchObject({ status: "exited", exitCode: 143 })

          const stubborn = yield* backend.provision(spec({ command: ["stubborn"] }))
          yield* backend.start(stubborn.sandboxId)
          const stopping = yield* Effect.forkChild(backend.stop(stubborn.sandboxId, { graceMs: 5000 }), { startImmediately: true })
          yield* TestClock.adjust("4999 millis")
          expect(stopping.pollUnsafe()).toBeUndefined()
          expect((yield* backend.inspect(stubborn.sandboxId)).status).toBe("running")
          yield* TestClock.adjust("1 millis")
          yield* Fiber.join(stopping)
          expect(yield* backend.inspect(stubborn.sandboxId)).toMatchObject({ status: "exited", exitCode: 137 })
          expect(seen, "stops the runtime asked for are not reported as exits").toEqual([])
        }),
      { programs: { stubborn: () => Effect.never } }
    ))

  it.effect("refuses network policies and programs it is not configured with (E2043, E2040), leaving nothing", () =>
    withBackend(
      (backend) =>
        Effect.gen(function* () {
          const base = spec()
          const isolated = yield* Effect.flip(backend.provision({ ...base, sandbox: { ...base.sandbox, networkPolicy: "isolated" } }))
          expect(isolated).toMatchObject({ _tag: "NetworkPolicyUnsupported", code: "E2043" })
          const unknown = yield* Effect.flip(backend.provision(spec({ command: ["no-such-program"] })))
          expect(unknown).toMatchObject({ _tag: "SandboxConfigInvalid", code: "E2040", key: "command" })
          expect(unknown.message).toContain("l02-echo")
          expect(yield* backend.list({})).toEqual([])
          expect((yield* backend.capabilities).networkPolicies).toEqual(["allow_egress"])
        }),
      { networkPolicies: ["allow_egress"] }
    ))

  it.effect("exec of an unknown program exits 127 with a message, as a shell would", () =>
    withBackend((backend) =>
      Effect.gen(function* () {
        const created = yield* backend.provision(spec())
        yield* backend.start(created.sandboxId)
        const chunks = [...(yield* Stream.runCollect(backend.exec(created.sandboxId, { command: ["nope"], timeoutMs: 1000, maxOutputBytes: 1000 })))]
        expect(chunks).toEqual([
          { _tag: "stderr", data: "nope: command not found\n" },
          { _tag: "exit", exitCode: 127, timedOut: false, truncated: false }
        ])
        yield* backend.pause(created.sandboxId)
        const refused = yield* Effect.flip(Stream.runCollect(backend.exec(created.sandboxId, { command: ["l02-print", "x"], timeoutMs: 1000, maxOutputBytes: 1000 })))
        expect(refused).toMatchObject({ code: "E2046" })
        expect(refused.message).toContain("paused")
      })
    ))

  it.effect("a line program handles lines in order, one at a time, holds them while paused, and exits 143 after the line it was handling on SIGTERM", () =>
    withBackend(
      (backend) =>
        Effect.scoped(
          Effect.gen(function* () {
            const created = yield* backend.provision(spec({ command: ["slow-upper"] }))
            yield* backend.start(created.sandboxId)
            const attachment = yield* backend.attach(created.sandboxId)
            const reading = yield* Effect.forkChild(Stream.runCollect(attachment.output), { startImmediately: true })
            for (const line of ["a", "b", "c"]) yield* attachment.write(line)
            yield* TestClock.adjust("100 millis")
            yield* backend.pause(created.sandboxId)
            yield* TestClock.adjust("1000 millis")
            // "a" was done; "b" had begun and its output waits for the gate; "c" is not handled while paused
            yield* backend.unpause(created.sandboxId)
            yield* TestClock.adjust("50 millis")
            const stopping = yield* Effect.forkChild(backend.stop(created.sandboxId, { graceMs: 5000 }), { startImmediately: true })
            yield* TestClock.adjust("100 millis")
            yield* Fiber.join(stopping)
            const lines = [...(yield* Fiber.join(reading))].map((o) => o.line)
            expect(lines).toEqual(["A", "B", "C"])
            expect(yield* backend.inspect(created.sandboxId)).toMatchObject({ status: "exited", exitCode: 143 })
          })
        ),
      {
        programs: {
          "slow-upper": { onLine: (line, context) => Effect.andThen(Effect.sleep("100 millis"), context.write("stdout", `${line.toUpperCase()}\n`)).pipe(Effect.as(undefined)) }
        }
      }
    ))

  it.effect("a line program killed without grace exits 137 mid-line, and its exit code ends it when it returns one", () =>
    withBackend(
      (backend) =>
        Effect.gen(function* () {
          const killed = yield* backend.provision(spec({ command: ["stuck"] }))
          yield* backend.start(killed.sandboxId)
          yield* Effect.scoped(Effect.flatMap(backend.attach(killed.sandboxId), (a) => a.write("anything")))
          yield* backend.stop(killed.sandboxId, { graceMs: 0 })
          expect(yield* backend.inspect(killed.sandboxId)).toMatchObject({ status: "exited", exitCode: 137 })

          const quitting = yield* backend.provision(spec({ command: ["l02-echo"] }))
          yield* backend.start(quitting.sandboxId)
          const seen: Array<number | undefined> = []
          yield* Effect.forkChild(Stream.runForEach(backend.events, (e) => Effect.sync(() => seen.push(e.exitCode))), { startImmediately: true })
          yield* Effect.scoped(Effect.flatMap(backend.attach(quitting.sandboxId), (a) => a.write("exit 7")))
          yield* TestClock.adjust("1 millis")
          expect(yield* backend.inspect(quitting.sandboxId)).toMatchObject({ status: "exited", exitCode: 7 })
          expect(seen, "an exit of its own is reported as an event").toEqual([7])
        }),
      { programs: { stuck: { onLine: () => Effect.never } } }
    ))

  it("provisions 20,000 sandboxes idempotently by agent id, and removing one frees its agent id", async () => {
    await Effect.runPromise(
      withBackend((backend) =>
        Effect.gen(function* () {
          const specs = Array.from({ length: 20_000 }, () => spec())
          const first = yield* Effect.forEach(specs, (s) => backend.provision(s))
          const again = yield* Effect.forEach(specs, (s) => backend.provision(s))
          expect(again.map((i) => i.sandboxId)).toEqual(first.map((i) => i.sandboxId))
          yield* backend.remove(first[0]!.sandboxId)
          const fresh = yield* backend.provision(specs[0]!)
          expect(fresh.sandboxId).not.toBe(first[0]!.sandboxId)
        })
      )
    )
  })

  it.effect("l02-agent answers each input line with an output line and a done line", () =>
    withBackend((backend) =>
      Effect.scoped(
        Effect.gen(function* () {
          const created = yield* backend.provision(spec({ command: ["l02-agent"] }))
          yield* backend.start(created.sandboxId)
          const attachment = yield* backend.attach(created.sandboxId)
          yield* attachment.write(JSON.stringify({ type: "input", id: "e1", input: { q: 1 } }))
          const lines = [...(yield* Stream.runCollect(Stream.take(attachment.output, 2)))].map((o) => JSON.parse(o.line) as unknown)
          expect(lines).toEqual([
            { type: "output", id: "e1", data: { q: 1 } },
            { type: "done", id: "e1" }
          ])
        })
      )
    ))
})

describe("workspace archive", () => {
  const run = <A, E>(body: (backend: SandboxBackend["Service"], sandboxId: string) => Effect.Effect<A, E>) =>
    Effect.runPromise(
      withBackend((backend) =>
        Effect.gen(function* () {
          const created = yield* backend.provision(spec())
          yield* backend.start(created.sandboxId)
          return yield* body(backend, created.sandboxId)
        })
      )
    )
  const dir = mkdtempSync(join(tmpdir(), "l02-tar-"))
  afterAll(() => rmSync(dir, { recursive: true, force: true }))

  it("exports a tar that GNU tar lists and extracts, long names included", async () => {
    const long = `${"deep/".repeat(60)}file.txt`
    const archive = await run((backend, id) =>
      Effect.gen(function* () {
        for (const [path, content] of [["a.txt", "alpha"], [long, "beta"]]) {
          yield* Stream.runDrain(backend.exec(id, { command: ["l02-write", path!, content!], timeoutMs: 1000, maxOutputBytes: 100 }))
        }
        return yield* backend.exportWorkspace(id)
      })
    )
    const file = join(dir, "export.tar")
    writeFileSync(file, archive)
    expect(execFileSync("tar", ["-tf", file], { encoding: "utf8" }).trim().split("\n").sort()).toEqual([long, "a.txt"].sort())
    expect(execFileSync("tar", ["-xOf", file, long], { encoding: "utf8" })).toBe("beta")
  })

  it("imports a tar made by GNU tar, and refuses one whose paths escape the workspace", async () => {
    mkdirSync(join(dir, "src/sub"), { recursive: true })
    writeFileSync(join(dir, "src/sub/b.txt"), "from gnu tar")
    const good = execFileSync("tar", ["-cf", "-", "-C", join(dir, "src"), "."])
    const evil = execFileSync("tar", ["-cf", "-", "-P", "--transform", "s,^,../,", "-C", join(dir, "src"), "sub/b.txt"], {
      stdio: ["ignore", "pipe", "ignore"]
    })
    const [read, refused] = await run((backend, id) =>
      Effect.gen(function* () {
        yield* backend.importWorkspace(id, good)
        const chunks = yield* Stream.runCollect(backend.exec(id, { command: ["l02-read", "sub/b.txt"], timeoutMs: 1000, maxOutputBytes: 100 }))
        const error = yield* Effect.flip(backend.importWorkspace(id, evil))
        return [[...chunks], error] as const
      })
    )
    expect(read[0]).toEqual({ _tag: "stdout", data: "from gnu tar" })
    expect(refused).toMatchObject({ code: "E2046" })
    expect(refused.message).toContain("escapes the workspace")
  })

  it("round-trips arbitrary files through writeTar and readTar", () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.stringMatching(/^[a-z0-9._-]{1,40}(\/[a-z0-9._-]{1,40}){0,6}$/), fc.uint8Array({ maxLength: 2000 })), { maxLength: 8 }),
        (files) => {
          const unique = new Map(files.filter(([p]) => !p.split("/").some((s) => s === "." || s === "..")))
          const entries = [...unique].map(([path, data]) => ({ path, type: "file" as const, data }))
          const back = readTar(writeTar(entries))
          expect(back.map((e) => [e.path, [...e.data]])).toEqual(entries.map((e) => [e.path, [...e.data]]))
        }
      ),
      { numRuns: 100 }
    )
  })

  it("rejects a corrupt archive with a message", () => {
    const archive = writeTar([{ path: "x.txt", type: "file", data: new TextEncoder().encode("x") }])
    archive[10] = 0x41
    expect(() => readTar(archive)).toThrow(/bad checksum/)
    expect(() => readTar(writeTar([{ path: "x.txt", type: "file", data: new Uint8Array(5000) }]).subarray(0, 1024))).toThrow(/truncated/)
  })
})
