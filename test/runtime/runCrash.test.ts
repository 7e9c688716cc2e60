// A supervisor killed with SIGKILL during a long step (process backend, the default embedded store):
// the next runtime on the data directory answers the run as interrupted (E2036), and attaching gives
// the events written before the kill, in order, then the coded interruption.
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterEach, describe, it } from "vitest"
import { createRuntime } from "../../src/runtime/createRuntime.ts"
import { checkInterrupted, killDuringRun, stopHost } from "./runCrashSupport.ts"

let dir: string | undefined
afterEach(async () => {
  stopHost()
  if (dir !== undefined) await rm(dir, { recursive: true, force: true })
})

describe("a run across a supervisor crash", () => {
  it("after SIGKILL during a long step, the next runtime ends the run interrupted (E2036) after the events written before the kill", async () => {
    dir = await mkdtemp(join(tmpdir(), "l02-runcrash-"))
    const killed = await killDuringRun(dir, "process", 8)
    const runtime = await createRuntime({ dataDir: dir, backend: "process", env: {}, config: { lifecycle: { health_check_interval_seconds: 0, graceful_shutdown_seconds: 1 } } })
    try {
      await checkInterrupted(runtime, killed)
      await runtime.terminate(killed.agentId, { force: true })
    } finally {
      await runtime.shutdown()
    }
  }, 120_000)
})
