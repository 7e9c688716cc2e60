// A supervisor on Docker killed with SIGKILL during a long step: the next runtime answers the run as
// interrupted (E2036) with the events written before the kill. Gated by L02_TEST_DOCKER.
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterEach, describe, it } from "vitest"
import { createRuntime } from "../../src/runtime/createRuntime.ts"
import { dockerEnabled } from "../backends/docker/dockerTestSupport.ts"
import { checkInterrupted, killDuringRun, stopHost } from "./runCrashSupport.ts"

let dir: string | undefined
afterEach(async () => {
  stopHost()
  if (dir !== undefined) await rm(dir, { recursive: true, force: true })
})

describe.skipIf(!dockerEnabled)("a run across a supervisor crash, on Docker", () => {
  it("after SIGKILL during a long step, the next runtime ends the run interrupted (E2036) after the events written before the kill", async () => {
    dir = await mkdtemp(join(tmpdir(), "l02-drunscrash-"))
    const killed = await killDuringRun(dir, "docker", 8)
    const runtime = await createRuntime({ dataDir: dir, backend: "docker", env: {}, config: { lifecycle: { health_check_interval_seconds: 0, graceful_shutdown_seconds: 1 } } })
    try {
      await checkInterrupted(runtime, killed)
      await runtime.terminate(killed.agentId, { force: true })
    } finally {
      await runtime.shutdown()
    }
  }, 150_000)
})
