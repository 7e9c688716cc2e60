// A process sandbox of its own on a shared host: its own uid from the range (claimed host-wide,
// released at remove), a workspace no other sandbox can read, processes no other sandbox can
// signal, a process limit that counts only its own processes (1,000 unrelated processes of uid
// 65534 on the host change nothing), and a fork refused at that limit reported as E2050.
import { type ChildProcess, spawn } from "node:child_process"
import { randomUUID } from "node:crypto"
import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Effect, Fiber, Option, type Scope, Stream } from "effect"
import { afterAll, describe, expect, it } from "vitest"
import * as ProcessBackend from "../../../src/backends/process/ProcessBackend.ts"
import { makeUidClaims } from "../../../src/backends/process/internal/uidClaims.ts"
import { SandboxBackend, type SandboxSpec } from "../../../src/services/SandboxBackend.ts"
import { shellPrograms, testUidRange, trustedSpec } from "./support.ts"

const root = mkdtempSync(join(tmpdir(), "l02-process-isolation-"))
chmodSync(root, 0o711)
const dataDir = join(root, "data")
const claimsDir = ProcessBackend.defaultUidClaimsDir
const range = testUidRange()
afterAll(() => rmSync(root, { recursive: true, force: true }))

const run = <A, E>(body: (backend: SandboxBackend["Service"]) => Effect.Effect<A, E, Scope.Scope>, options: Partial<ProcessBackend.ProcessBackendOptions> = {}) =>
  Effect.runPromise(
    Effect.gen(function* () {
      return yield* body(yield* SandboxBackend)
    }).pipe(Effect.scoped, Effect.provide(ProcessBackend.layer({ dataDir, pollIntervalMs: 100, uidRange: range, ...options })))
  )

const spec = (overrides: Partial<SandboxSpec> = {}, pids = 64) => {
  const base = trustedSpec({ agentId: randomUUID(), command: shellPrograms.echoLoop, ...overrides })
  return { ...base, sandbox: { ...base.sandbox, resources: { ...base.sandbox.resources, pids } } }
}

const started = (backend: SandboxBackend["Service"], s: SandboxSpec) =>
  Effect.acquireRelease(
    Effect.flatMap(backend.provision(s), (info) => backend.start(info.sandboxId)),
    (info) => Effect.ignore(backend.remove(info.sandboxId))
  )

const recordOf = (sandboxId: string, dir = dataDir) =>
  JSON.parse(readFileSync(join(dir, "sandboxes", sandboxId, "record.json"), "utf8")) as { pid: number; uid?: number; gid?: number }

const sh = (backend: SandboxBackend["Service"], sandboxId: string, script: string) =>
  Effect.map(Stream.runCollect(backend.exec(sandboxId, { command: ["sh", "-c", script], timeoutMs: 10_000, maxOutputBytes: 100_000 })), (chunks) => {
    const all = [...chunks]
    const text = (tag: string) => all.map((c) => (c._tag === tag ? (c as { data: string }).data : "")).join("")
    const exit = all.find((c) => c._tag === "exit") as { exitCode: number } | undefined
    return { stdout: text("stdout"), stderr: text("stderr"), exitCode: exit?.exitCode }
  })

/** A removed sandbox's uid goes back once nothing of it is left (in the background, within 5 s). */
const claimGone = (uid: number) =>
  Effect.gen(function* () {
    const deadline = Date.now() + 5000
    while (existsSync(join(claimsDir, String(uid))) && Date.now() < deadline) yield* Effect.sleep("10 millis")
    expect(existsSync(join(claimsDir, String(uid))), `claim of uid ${uid}`).toBe(false)
  })

const uidOfProcess = (pid: number) => Number(/^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1])

describe.runIf(process.getuid?.() === 0)("process sandboxes with a uid of their own", () => {
  it("runs each sandbox as its own uid from the range, keeps its workspace and processes from the others, and gives the uid back at remove", { timeout: 30_000 }, () =>
    run((backend) =>
      Effect.gen(function* () {
        const a = yield* started(backend, spec())
        const b = yield* started(backend, spec())
        const ra = recordOf(a.sandboxId)
        const rb = recordOf(b.sandboxId)
        for (const r of [ra, rb]) {
          expect(r.uid).toBeGreaterThanOrEqual(range.first)
          expect(r.uid).toBeLessThanOrEqual(range.last)
          expect(r.gid).toBe(r.uid)
          expect(uidOfProcess(r.pid)).toBe(r.uid)
        }
        expect(ra.uid).not.toBe(rb.uid)
        expect(readFileSync(join(claimsDir, String(ra.uid)), "utf8").trim()).toBe(join(dataDir, "sandboxes", a.sandboxId, "record.json"))
        expect(a.notes?.join(" ")).toContain(`uid ${ra.uid} of its own`)
        // The workspace: 0700 and its own.
        const wa = (yield* sh(backend, a.sandboxId, 'printf secret > mine.txt; printf "%s" "$L02_WORKSPACE"')).stdout
        const st = statSync(wa)
        expect([st.mode & 0o777, st.uid]).toEqual([0o700, ra.uid])
        // B can read neither A's workspace nor its output and record, nor signal A's processes.
        const peek = yield* sh(backend, b.sandboxId, `cat ${wa}/mine.txt; ls ${join(dataDir, "sandboxes", a.sandboxId)}; ls ${join(dataDir, "workspaces")}`)
        expect(peek.stdout).toBe("")
        expect(peek.stderr).toMatch(/Permission denied/)
        const kill = yield* sh(backend, b.sandboxId, `kill -0 ${ra.pid}`)
        expect(kill.exitCode).not.toBe(0)
        expect(kill.stderr).toMatch(/not permitted/i)
        // A itself reads its own file.
        expect((yield* sh(backend, a.sandboxId, "cat mine.txt")).stdout).toBe("secret")
        yield* backend.remove(a.sandboxId)
        yield* claimGone(ra.uid!)
        expect(existsSync(join(claimsDir, String(rb.uid)))).toBe(true)
      })
    ))

  it("leaves no process of a sandbox's uid behind at stop and remove, not even one that left its process group, before the uid is given back", { timeout: 30_000 }, () =>
    run((backend) =>
      Effect.gen(function* () {
        const box = yield* started(backend, spec())
        const { uid } = recordOf(box.sandboxId)
        // A hostile program leaves its group (setsid) so that a group kill misses it.
        const escaped = yield* sh(backend, box.sandboxId, "setsid sleep 300 < /dev/null > /dev/null 2>&1 & echo $!")
        const pid = Number(escaped.stdout.trim())
        expect(uidOfProcess(pid)).toBe(uid)
        yield* backend.stop(box.sandboxId, { graceMs: 200 })
        expect(existsSync(`/proc/${pid}`)).toBe(false)
        // Restarted, an orphan of a double fork in a session of its own, running a copy of sleep:
        // remove kills it (also as the uid itself) before the claim goes.
        yield* backend.start(box.sandboxId)
        const hidden = Number((yield* sh(backend, box.sandboxId, "cp /bin/sleep ./hide && (setsid ./hide 300 < /dev/null > /dev/null 2>&1 & echo $!)")).stdout.trim())
        expect(uidOfProcess(hidden)).toBe(uid)
        yield* backend.remove(box.sandboxId)
        yield* claimGone(uid!)
        expect(existsSync(`/proc/${hidden}`)).toBe(false)
      })
    ))

  it("gives a kept workspace to the new sandbox's uid, all of it, without following a symbolic link out of it", { timeout: 20_000 }, () =>
    run((backend) =>
      Effect.gen(function* () {
        const s = spec()
        // A workspace left by an earlier sandbox of the agent, holding a link to a root-owned host file.
        const kept = join(dataDir, "workspaces", s.agentId)
        const outside = join(root, `host-file-${s.agentId}`)
        writeFileSync(outside, "host")
        mkdirSync(join(kept, "sub"), { recursive: true })
        writeFileSync(join(kept, "sub", "notes.txt"), "mine")
        symlinkSync(outside, join(kept, "sub", "escape"))
        const box = yield* started(backend, s)
        const { uid } = recordOf(box.sandboxId)
        for (const path of [kept, join(kept, "sub"), join(kept, "sub", "notes.txt")]) expect(statSync(path).uid, path).toBe(uid)
        expect(lstatSync(join(kept, "sub", "escape")).uid).toBe(uid)
        expect(statSync(outside).uid).toBe(0)
      })
    ))

  it("takes over a claim whose sandbox is gone, never a young one or a live one's", { timeout: 20_000 }, () => {
    const dir = mkdtempSync(join(root, "claims-"))
    const owners = new Map<string, number>()
    const owns = (owner: string, uid: number) => owners.get(owner) === uid
    const claims = makeUidClaims({ first: range.first, last: range.first + 1 }, dir, owns)
    const first = claims.claim("/gone/record.json")
    const second = claims.claim("/live/record.json")
    owners.set("/live/record.json", second)
    expect(new Set([first, second]).size).toBe(2)
    // Both taken: the one whose owner is gone is still young, so the range is full.
    expect(() => claims.claim("/new/record.json")).toThrow(/every uid/)
    const old = new Date(Date.now() - 60_000)
    for (const uid of [first, second]) utimesSync(join(dir, String(uid)), old, old)
    expect(claims.claim("/new/record.json")).toBe(first)
    expect(claims.holds(first, "/new/record.json")).toBe(true)
    expect(claims.holds(second, "/live/record.json")).toBe(true)
    claims.release(second, "/someone-else")
    expect(claims.holds(second, "/live/record.json")).toBe(true)
    claims.release(second, "/live/record.json")
    expect(readdirSync(dir).filter((n) => /^\d+$/.test(n)).sort()).toEqual([String(first)])
  })

  it("counts only a sandbox's own processes: 1,000 processes of uid 65534 on the host leave its forks alone, while sandboxes sharing 65534 are refused forks", { timeout: 120_000 }, async () => {
    // The busy host: 1,000 sleeping processes of uid 65534, set up here and removed at the end.
    const crowd: Array<ChildProcess> = []
    try {
      for (let i = 0; i < 1000; i++) {
        const child = spawn("sleep", ["300"], { uid: 65534, gid: 65534, stdio: "ignore", detached: true })
        child.on("error", () => {})
        crowd.push(child)
      }
      const deadline = Date.now() + 20_000
      const crowdAlive = () => crowd.filter((c) => c.pid !== undefined && existsSync(`/proc/${c.pid}`)).length
      while (crowdAlive() < 1000 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50))
      expect(crowdAlive()).toBe(1000)
      await run((backend) =>
        Effect.gen(function* () {
          const boxes = yield* Effect.forEach(Array.from({ length: 5 }), () => started(backend, spec({}, 64)), { concurrency: 5 })
          for (const box of boxes) {
            const forks = yield* sh(backend, box.sandboxId, "for i in 1 2 3 4 5 6 7 8; do sleep 0.2 & done; wait; echo forked")
            expect(forks).toMatchObject({ stdout: "forked\n", exitCode: 0 })
          }
        })
      )
      // The same limit over the shared uid 65534 (no range): the crowd has used it up.
      const shared = await run(
        (backend) =>
          Effect.gen(function* () {
            const forking = spec({ command: ["sh", "-c", "sleep 1 & sleep 1 & wait"] }, 64)
            const events = yield* backend.events.pipe(Stream.filter((e) => e.agentId === forking.agentId), Stream.runHead, Effect.forkChild)
            yield* Effect.sleep("50 millis")
            const box = yield* started(backend, forking)
            const event = yield* Fiber.join(events).pipe(Effect.timeoutOption("10 seconds"))
            return { event: Option.flatten(event), info: yield* backend.inspect(box.sandboxId) }
          }),
        { uidRange: undefined, dataDir: join(root, "shared") }
      )
      // Its program could not even be started by the wrapper shell: it ended, and says why.
      expect(Option.getOrUndefined(shared.event)).toMatchObject({ type: "exited", forkRefused: true })
      expect(shared.info).toMatchObject({ status: "exited", forkRefused: true })
    } finally {
      for (const child of crowd) child.kill("SIGKILL")
    }
  })

  it("reports a main program refused a fork at its own limit as exited with forkRefused, and the limit is the sandbox's alone", { timeout: 20_000 }, () =>
    run((backend) =>
      Effect.gen(function* () {
        const events = yield* backend.events.pipe(Stream.runHead, Effect.forkChild)
        yield* Effect.sleep("50 millis")
        // Wrapper shell, the program's shell and two sleeps: the third sleep is one process too many.
        const box = yield* started(backend, spec({ command: ["sh", "-c", "sleep 5 & sleep 5 & sleep 5 & wait"] }, 4))
        const event = Option.flatten(yield* Fiber.join(events).pipe(Effect.timeoutOption("10 seconds")))
        expect(Option.getOrUndefined(event)).toMatchObject({ sandboxId: box.sandboxId, type: "exited", forkRefused: true })
        expect(yield* backend.inspect(box.sandboxId)).toMatchObject({ status: "exited", forkRefused: true })
        // An exec refused a fork at the limit says so on its exit: its shell and four sleeps are five
        // processes of 4 whatever the main program counts.
        const quiet = yield* started(backend, spec({}, 4))
        const exit = yield* backend.exec(quiet.sandboxId, { command: ["sh", "-c", "sleep 1 & sleep 1 & sleep 1 & sleep 1 & wait"], timeoutMs: 10_000, maxOutputBytes: 10_000 }).pipe(
          Stream.runCollect,
          Effect.map((chunks) => [...chunks].find((c) => c._tag === "exit"))
        )
        expect(exit).toMatchObject({ _tag: "exit", forkRefused: true })
        expect((exit as { exitCode: number }).exitCode).not.toBe(0)
      })
    ))
})
