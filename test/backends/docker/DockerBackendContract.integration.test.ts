// The SandboxBackend contract against a real Docker engine (L02_TEST_DOCKER=1; CI requires the engine).
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as DockerBackend from "../../../src/backends/docker/DockerBackend.ts"
import { sandboxBackendContract } from "../../services/SandboxBackendContract.ts"
import { busyboxPrograms, dockerEnabled, ensureAgentImage, leftovers, specAt, testDocker } from "./dockerTestSupport.ts"

describe.skipIf(!dockerEnabled)("Docker backend: the SandboxBackend contract", () => {
  const docker = testDocker()
  beforeAll(() => ensureAgentImage(docker))

  sandboxBackendContract("docker (runc, TRUSTED)", {
    layer: DockerBackend.layer({ docker }),
    programs: busyboxPrograms,
    makeSpec: (overrides) => specAt("TRUSTED", overrides),
    unavailableRuntimeClass: "kata",
    timeoutMs: 30_000
  })

  describe("after the contract", () => {
    it("left no container, volume or network behind", async () => {
      expect(await leftovers(docker, { "l02.dev/test": "docker" })).toEqual({ containers: [], volumes: [], networks: [] })
    })
  })

  afterAll(async () => {
    // Reap on failure too, so one broken run does not break the next.
    const left = await leftovers(docker, { "l02.dev/test": "docker" })
    await Promise.all(left.containers.map((id) => docker.getContainer(id).remove({ force: true, v: true }).catch(() => undefined)))
    await Promise.all(left.volumes.map((name) => docker.getVolume(name).remove().catch(() => undefined)))
    await Promise.all(left.networks.map((name) => docker.getNetwork(name).remove().catch(() => undefined)))
  })
})
