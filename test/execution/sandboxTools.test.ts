// The built-in sandbox tools with real commands on the process backend: files, listing, shell
// exit codes, timeouts, output caps, and paths confined to the workspace (`..`, absolute paths
// elsewhere, symbolic links pointing out).
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Effect, Fiber, Layer } from "effect"
import { afterAll, describe, expect, it } from "@effect/vitest"
import * as ProcessBackend from "../../src/backends/process/ProcessBackend.ts"
import { run } from "../../src/execution/AgentLoop.ts"
import * as ScriptedModel from "../../src/execution/providers/ScriptedModel.ts"
import { layerMemory as budgetMemory } from "../../src/execution/TokenBudget.ts"
import { confinePath, makeSandboxTools } from "../../src/execution/tools/SandboxTools.ts"
import { makeToolkit } from "../../src/execution/tools/Toolkit.ts"
import { ModelGateway } from "../../src/services/ModelGateway.ts"
import { testUidRange } from "../backends/process/support.ts"
import { collect, startedSandbox } from "./support.ts"

const dataDir = mkdtempSync(join(tmpdir(), "l02-exec-tools-"))
// A directory of busybox applets: the same tools run with only busybox on PATH, as in the Docker
// agent image, when busybox is installed.
const busybox = ["/usr/bin/busybox", "/bin/busybox"].find((path) => existsSync(path))
const busyboxBin = join(dataDir, "busybox-bin")
if (busybox !== undefined) {
  mkdirSync(busyboxBin, { recursive: true, mode: 0o755 })
  chmodSync(dataDir, 0o755)
  for (const applet of ["sh", "cat", "mkdir", "dirname", "basename", "readlink", "find", "sort", "head", "tr", "ln", "echo", "sleep", "pwd"]) {
    symlinkSync(busybox, join(busyboxBin, applet))
  }
}
afterAll(() => rmSync(dataDir, { recursive: true, force: true }))
// Each sandbox as a uid of its own (the default configuration's range), as on a busy host.
const layer = ProcessBackend.layer({ dataDir, pollIntervalMs: 100, uidRange: testUidRange() })

let n = 0
const toolkit = (flavour: "host" | "busybox", options: { maxOutputBytes?: number } = {}) =>
  Effect.gen(function*() {
    const { backend, sandboxId } = yield* startedSandbox(`exec-tools-${process.pid}-${n++}`, ["sleep", "600"])
    const env = flavour === "busybox" ? { PATH: busyboxBin } : undefined
    const kit = makeToolkit(makeSandboxTools(backend, { sandboxId, timeoutMs: 10_000, env, ...options }))
    let id = 0
    return (name: string, input: unknown) => kit.call({ id: `c${id++}`, name, arguments: JSON.stringify(input) })
  })

const running = (marker: string) =>
  readdirSync("/proc").filter((pid) => /^\d+$/.test(pid)).some((pid) => {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, "utf8").replaceAll("\u0000", " ").includes(marker)
    } catch {
      return false
    }
  })

describe("confinePath", () => {
  it.effect("keeps relative paths and /workspace paths, rejects .. and absolute paths elsewhere", () =>
    Effect.gen(function*() {
      expect(yield* confinePath("t", "a/./b.txt")).toBe("a/b.txt")
      expect(yield* confinePath("t", "/workspace/a/b.txt")).toBe("a/b.txt")
      expect(yield* confinePath("t", "/workspace")).toBe(".")
      for (const bad of ["../x", "a/../../x", "/etc/passwd", "/workspacex/y", "a/\u0000"]) {
        const error = yield* Effect.flip(confinePath("t", bad))
        expect(error.code, bad).toBe("E2087")
      }
    }))
})

for (const flavour of ["host", "busybox"] as const) describe.skipIf(flavour === "busybox" && busybox === undefined)(`sandbox tools on the process backend (${flavour} utilities)`, () => {
  it.live("write_file creates directories, read_file reads back, list_files lists", () =>
    Effect.gen(function*() {
      const call = yield* toolkit(flavour)
      if (flavour === "busybox") {
        // The shell and the utilities really are busybox's.
        const probe = yield* call("shell", { command: "readlink -f /proc/$$/exe; command -v find" })
        expect(probe.output.content).toContain(`--- stdout ---\n${busybox}\n`)
        expect(probe.output.content).not.toContain("/usr/bin/find")
      }
      expect((yield* call("write_file", { path: "src/deep/hello.txt", content: "héllo\n" })).output).toEqual({
        content: "wrote 7 bytes to /workspace/src/deep/hello.txt"
      })
      expect((yield* call("read_file", { path: "/workspace/src/deep/hello.txt" })).output).toEqual({ content: "héllo\n" })
      expect((yield* call("list_files", { path: "src", depth: 3 })).output.content).toBe("deep/\ndeep/hello.txt\n")
      const missing = yield* call("read_file", { path: "nope.txt" })
      expect(missing.output.isError).toBe(true)
      expect(missing.output.content).toMatch(/no such file/)
    }).pipe(Effect.scoped, Effect.provide(layer)))

  it.live("shell reports exit code, stdout and stderr; a timeout is E2086; output beyond the cap is truncated", () =>
    Effect.gen(function*() {
      const call = yield* toolkit(flavour, { maxOutputBytes: 1024 })
      const failed = yield* call("shell", { command: "echo out; echo err >&2; exit 3" })
      expect(failed.output).toEqual({ content: "exit code 3\n--- stdout ---\nout\n\n--- stderr ---\nerr\n", isError: true })
      const started = Date.now()
      const slow = yield* call("shell", { command: "sleep 5", timeoutSeconds: 0.3 })
      expect(slow.error?.code).toBe("E2086")
      expect(Date.now() - started).toBeLessThan(3000)
      const flood = yield* call("shell", { command: "head -c 100000 /dev/zero | tr '\\0' x" })
      expect(flood.output.content).toMatch(/\[output truncated at 1024 bytes\]$/)
      expect(flood.output.content.length).toBeLessThan(1200)
    }).pipe(Effect.scoped, Effect.provide(layer)))

  it.live("a symbolic link pointing out of the workspace is refused for reading, writing and listing", () =>
    Effect.gen(function*() {
      const call = yield* toolkit(flavour)
      yield* call("shell", { command: "ln -s /etc escape && mkdir inside && echo ok > inside/f && ln -s inside alias" })
      for (const [name, input] of [
        ["read_file", { path: "escape/passwd" }],
        ["write_file", { path: "escape/l02-should-not-exist", content: "x" }],
        ["list_files", { path: "escape" }],
        ["read_file", { path: "../../etc/passwd" }]
      ] as const) {
        const outcome = yield* call(name, input)
        expect(outcome.error?.code, `${name} ${JSON.stringify(input)}`).toBe("E2087")
      }
      // A link that stays inside is fine.
      expect((yield* call("read_file", { path: "alias/f" })).output).toEqual({ content: "ok\n" })
    }).pipe(Effect.scoped, Effect.provide(layer)))
})

describe("cancelling the loop on the process backend", () => {
  it.live("interrupting a run kills the shell command it is running", () =>
    Effect.gen(function*() {
      const { backend, sandboxId } = yield* startedSandbox(`exec-cancel-${process.pid}`, ["sleep", "600"])
      const seconds = `${30 + Math.floor(Math.random() * 1000) / 1000}`
      const scripted = ScriptedModel.make([{ toolCalls: [{ name: "shell", arguments: { command: `sleep ${seconds}` } }] }, { text: "never" }])
      const fiber = yield* Effect.forkChild(
        collect(run("go", { tools: makeToolkit(makeSandboxTools(backend, { sandboxId })), model: { name: "scripted" }, maxSteps: 2 })).pipe(
          Effect.provide(Layer.mergeAll(Layer.succeed(ModelGateway, scripted.gateway), budgetMemory))
        )
      )
      let seen = false
      for (let i = 0; i < 50 && !seen; i++) {
        yield* Effect.sleep("100 millis")
        seen = running(`sleep ${seconds}`)
      }
      expect(seen).toBe(true)
      yield* Fiber.interrupt(fiber)
      let gone = false
      for (let i = 0; i < 30 && !gone; i++) {
        yield* Effect.sleep("100 millis")
        gone = !running(`sleep ${seconds}`)
      }
      expect(gone).toBe(true)
    }).pipe(Effect.scoped, Effect.provide(layer)))
})
