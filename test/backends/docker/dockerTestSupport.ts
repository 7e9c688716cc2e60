// Shared by the Docker integration suites: the gate, the client, the agent image, specs and programs.
import { randomUUID } from "node:crypto"
import Docker from "dockerode"
import { Context, Effect, Exit, Layer, Scope } from "effect"
import type { TrustLevel } from "../../../src/domain/AgentConfig.ts"
import { OwnershipLabels } from "../../../src/domain/Ids.ts"
import { trustProfiles } from "../../../src/domain/SandboxConfiguration.ts"
import { buildAgentImage, defaultAgentImage } from "../../../src/backends/docker/AgentImage.ts"
import * as DockerBackend from "../../../src/backends/docker/DockerBackend.ts"
import { layerMemory as checkpointMemory } from "../../../src/services/CheckpointStore.ts"
import { layerMemory as eventLogMemory } from "../../../src/services/EventLog.ts"
import { SandboxBackend, type SandboxSpec } from "../../../src/services/SandboxBackend.ts"
import { layerMemory as stateMemory } from "../../../src/services/StateStore.ts"
import type { ContractPrograms } from "../../services/SandboxBackendContract.ts"

/** Set by CI (`.ci/run`): the suites then require a Docker engine and fail without one. */
export const dockerEnabled = process.env.L02_TEST_DOCKER !== undefined && process.env.L02_TEST_DOCKER !== "" && process.env.L02_TEST_DOCKER !== "0"

/** A client for the engine the suites use (DOCKER_HOST or the default socket). */
export const testDocker = (): Docker => (process.env.DOCKER_HOST ? new Docker() : new Docker({ socketPath: "/var/run/docker.sock" }))

/** Builds l02-agent:latest when the engine does not have it yet. */
export const ensureAgentImage = async (docker: Docker): Promise<void> => {
  try {
    await docker.getImage(defaultAgentImage).inspect()
  } catch {
    await Effect.runPromise(buildAgentImage({ docker, busyboxPath: process.env.L02_BUSYBOX ?? "/bin/busybox" }))
  }
}

/** The runtime classes of each trust level, as in the seed. */
export const trustRuntimeClasses: Readonly<Record<TrustLevel, string>> = {
  TRUSTED: "runc",
  STANDARD: "gvisor",
  UNTRUSTED: "kata",
  CONFIDENTIAL: "kata-cc"
}

/** A spec for a fresh agent at a trust level, with small limits. */
export const specAt = (
  trustLevel: TrustLevel,
  overrides: Partial<SandboxSpec> & { agentId?: string } = {},
  runtimeId = "rt-docker-test"
): SandboxSpec => ({
  agentId: randomUUID(),
  sessionId: randomUUID(),
  runtimeId,
  name: "docker-test",
  env: {},
  labels: { [OwnershipLabels.managedBy]: "l02", "l02.dev/test": "docker" },
  sandbox: {
    trustLevel,
    runtimeClass: trustRuntimeClasses[trustLevel],
    networkPolicy: trustProfiles[trustLevel].network,
    securityContext: trustProfiles[trustLevel].security,
    resources: { cpu: "1", cpuMillis: 1000, memory: "128Mi", memoryBytes: 128 * 1024 * 1024, tokensPerHour: 100_000, pids: 64 }
  },
  ...overrides
})

/** The contract's programs spelled with the agent image's busybox. */
export const busyboxPrograms: ContractPrograms = {
  echoLoop: ["/bin/l02-echo"],
  printAndExit: (out, err, code) => ["/bin/sh", "-c", 'printf "%s" "$1"; printf "%s" "$2" >&2; exit "$3"', "sh", out, err, String(code)],
  sleep: (seconds) => ["/bin/sleep", String(seconds)],
  flood: (bytes) => ["/bin/sh", "-c", 'head -c "$1" /dev/zero | tr "\\0" x', "sh", String(bytes)],
  writeFile: (path, content) => [
    "/bin/sh",
    "-c",
    'mkdir -p "$(dirname "$L02_WORKSPACE/$1")" && printf "%s" "$2" > "$L02_WORKSPACE/$1"',
    "sh",
    path,
    content
  ],
  readFile: (path) => ["/bin/sh", "-c", 'cat "$L02_WORKSPACE/$1"', "sh", path]
}

/** Everything the suites left on the engine under their test label: containers, volumes, networks. */
export const leftovers = async (docker: Docker, labels: Readonly<Record<string, string>>) => {
  const label = Object.entries(labels).map(([k, v]) => `${k}=${v}`)
  const [containers, volumes, networks] = await Promise.all([
    docker.listContainers({ all: true, filters: { label } }),
    docker.listVolumes({ filters: { label } }),
    docker.listNetworks({ filters: { label } })
  ])
  return { containers: containers.map((c) => c.Id), volumes: (volumes.Volumes ?? []).map((v) => v.Name), networks: networks.map((n) => n.Name) }
}

/**
 * The Docker backend with in-memory stores, built once so several runtimes of a suite (a "restart")
 * share them; `close` removes every sandbox `runtimeId` left on the engine, then releases them.
 */
export const dockerRuntimeServices = async (docker: Docker, runtimeId: string) => {
  const scope = Effect.runSync(Scope.make())
  const context = await Effect.runPromise(
    Layer.buildWithScope(Layer.mergeAll(DockerBackend.layer({ docker }), stateMemory, checkpointMemory, eventLogMemory), scope)
  )
  const backend = Context.get(context, SandboxBackend)
  return {
    context,
    backend,
    layer: Layer.succeedContext(context),
    close: async () => {
      for (const info of await Effect.runPromise(backend.list({ [OwnershipLabels.runtimeId]: runtimeId }))) {
        await Effect.runPromise(Effect.ignore(backend.remove(info.sandboxId)))
      }
      await Effect.runPromise(Scope.close(scope, Exit.void))
    }
  }
}
