// The runtime while the Docker engine restarts: the event stream drops, the containers stop; once the
// engine is back the runtime resubscribes, notices the dead containers and restarts the agents per
// policy. Restarts the local dockerd, so it runs only with L02_TEST_DOCKER_RESTART=1 (CI sets it).
import { execFileSync } from "node:child_process"
import { describe, expect, it } from "vitest"
import { Layer } from "effect"
import * as DockerBackend from "../../src/backends/docker/DockerBackend.ts"
import { createRuntime } from "../../src/runtime/createRuntime.ts"
import { layerMemory as checkpointMemory } from "../../src/services/CheckpointStore.ts"
import { layerMemory as eventLogMemory } from "../../src/services/EventLog.ts"
import { layerMemory as stateMemory } from "../../src/services/StateStore.ts"
import { dockerEnabled, testDocker } from "../backends/docker/dockerTestSupport.ts"
import { eventually } from "./support.ts"

const enabled = dockerEnabled && process.env.L02_TEST_DOCKER_RESTART === "1"
const setup = new URL("../../.ci/setup-docker.sh", import.meta.url).pathname

const restartEngine = async () => {
  execFileSync("pkill", ["-TERM", "-x", "dockerd"])
  for (let i = 0; i < 100; i++) {
    try {
      execFileSync("pgrep", ["-x", "dockerd"])
      await new Promise((r) => setTimeout(r, 100))
    } catch {
      break
    }
  }
  execFileSync("bash", [setup], { stdio: "pipe" })
}

describe.skipIf(!enabled)("runtime across a Docker engine restart", () => {
  it("reconnects to the engine's events and restarts the agents whose containers died", async () => {
    const docker = testDocker()
    const runtime = await createRuntime({
      layer: Layer.mergeAll(DockerBackend.layer({ docker }), stateMemory, checkpointMemory, eventLogMemory),
      env: {},
      config: {
        store: { pglite: "memory" },
        runtime: { hibernate_idle_after_seconds: 0 },
        lifecycle: { health_check_interval_seconds: 2, restart_backoff_initial_ms: 200, restart_backoff_max_ms: 2000, max_restart_count: 30 }
      }
    })
    try {
      const { agentId, sandboxId } = await runtime.spawn({ name: "engine-restart", trustLevel: "TRUSTED", command: ["/bin/l02-agent"] })
      await restartEngine()
      // Restarts tried while the engine was still down fail and are tried again with backoff.
      await eventually(async () => {
        const s = await runtime.getState(agentId)
        expect(s.state).toBe("running")
        expect(s.restartCount).toBeGreaterThanOrEqual(1)
      }, 60_000)
      const { sandboxId: replaced, restartCount } = await runtime.getState(agentId)
      expect(replaced).not.toBe(sandboxId)
      // The event stream works again: a container killed now is noticed and replaced too.
      await docker.getContainer(replaced!).kill()
      await eventually(async () => expect(await runtime.getState(agentId)).toMatchObject({ state: "running", restartCount: restartCount + 1 }), 30_000)
      await runtime.terminate(agentId, { force: true })
    } finally {
      await runtime.shutdown()
    }
  }, 180_000)
})
