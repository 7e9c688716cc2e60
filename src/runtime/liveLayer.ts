/**
 * The composition root: the one module that chooses implementations. It builds the live services
 * (sandbox backend and stores) from the configuration; everything else asks for the ports.
 */
import { resolve } from "node:path"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as AgentImage from "../backends/docker/AgentImage.ts"
import type { AgentConfig } from "../domain/AgentConfig.ts"
import type { SandboxError } from "../domain/Errors.ts"
import type { RuntimeConfig } from "../domain/RuntimeConfig.ts"
import { parseUidRange } from "../domain/UidRange.ts"
import type { CheckpointStore } from "../services/CheckpointStore.ts"
import type { EventLog } from "../services/EventLog.ts"
import { layerMemory as sandboxMemory, type SandboxBackend } from "../services/SandboxBackend.ts"
import type { StateStore } from "../services/StateStore.ts"
import { layerMemory as workflowStoreMemory, type WorkflowStore } from "../services/WorkflowStore.ts"
import type { SqlClient } from "effect/sql/SqlClient"
import * as Store from "../store/Store.ts"
import { packagePath } from "./internal/packageRoot.ts"

/** The process backend's default agent program: a JSON-lines echo agent run by this Node. */
export const echoAgentPath: string = packagePath("src/agent/echoAgent.mjs")

/** The command an agent runs when its config names none, per backend. */
export const defaultCommandFor =
  (config: RuntimeConfig) =>
  (agent: AgentConfig): ReadonlyArray<string> | undefined => {
    switch (config.runtime.backend) {
      case "process":
        return [process.execPath, echoAgentPath]
      case "docker":
      case "kubernetes":
        // The default agent image's JSON-lines agent (`l02 image build`); an image of the user's runs its own CMD.
        return agent.image === undefined ? ["/bin/l02-agent"] : undefined
      case "memory":
        return ["l02-agent"]
    }
  }

// Backends are loaded when chosen: a process that runs on Docker never loads the Kubernetes client
// (about 80 MB of resident memory), and one on the process backend loads neither.
const load = <M, A>(module: () => Promise<M>, f: (m: M) => Layer.Layer<A, unknown>): Layer.Layer<A, unknown> =>
  Layer.unwrap(Effect.map(Effect.promise(module), f))

/** The sandbox backend the configuration names. */
export const backendLayer = (config: RuntimeConfig, runtimeId: string): Layer.Layer<SandboxBackend, unknown> => {
  const dataDir = resolve(config.runtime.data_dir)
  switch (config.runtime.backend) {
    case "process":
      return load(() => import("../backends/process/ProcessBackend.ts"), (m) => m.layer({ dataDir, runtimeId, uidRange: parseUidRange(config.process.uid_range), uidClaimsDir: config.process.uid_claims_dir }))
    case "memory":
      return sandboxMemory()
    case "docker":
      return load(() => import("../backends/docker/DockerBackend.ts"), (m) => m.layer(m.optionsFromConfig(config.docker)))
    case "kubernetes":
      return load(() => import("../backends/kubernetes/KubernetesBackend.ts"), (m) => m.layer(m.optionsFromConfig(config.kubernetes)))
  }
}

/** Backend plus stores, as configured (the store's SQL client too: the workflow engine keeps its state there). */
export const liveLayer = (
  config: RuntimeConfig,
  runtimeId: string
): Layer.Layer<SandboxBackend | StateStore | CheckpointStore | EventLog | WorkflowStore | SqlClient, unknown> =>
  Layer.mergeAll(
    backendLayer(config, runtimeId),
    Store.layer({ url: config.store.url, pglite: config.store.pglite, embedded: config.store.embedded, dataDir: resolve(config.runtime.data_dir) })
  )

/**
 * Where workflow runs go when the embedder brings its own services: an in-memory run store and an
 * in-memory SQLite database for the engine (runs last as long as the runtime).
 */
export const workflowServicesInMemory: Layer.Layer<WorkflowStore | SqlClient, unknown> = Layer.merge(
  workflowStoreMemory,
  load(() => import("../store/SqliteClient.ts"), (m) => m.layer())
)

/** Builds the default agent image offline on the configured Docker engine (`l02 image build`). */
export const buildAgentImage = (
  config: RuntimeConfig,
  options: { readonly busyboxPath?: string | undefined; readonly tag?: string | undefined } = {}
): Effect.Effect<AgentImage.AgentImageBuilt, SandboxError> =>
  Effect.flatMap(
    Effect.promise(() => Promise.all([import("../backends/docker/AgentImage.ts"), import("../backends/docker/DockerBackend.ts")])),
    ([AgentImage, DockerBackend]) =>
      AgentImage.buildAgentImage({
        docker: DockerBackend.dockerClient({ socketPath: config.docker.socket_path }),
        busyboxPath: options.busyboxPath,
        tag: options.tag ?? config.docker.default_image
      })
  )

/**
 * What the configured backend enforces on this host, in words (`l02 config` prints it): for the
 * process backend its user, process and memory limits; the container backends say where theirs are.
 */
export const isolationInForce = async (config: RuntimeConfig): Promise<Readonly<Record<string, string>>> => {
  switch (config.runtime.backend) {
    case "process": {
      const { describeProcessIsolation } = await import("../backends/process/isolation.ts")
      return { ...describeProcessIsolation({ uidRange: parseUidRange(config.process.uid_range), uidClaimsDir: config.process.uid_claims_dir }) }
    }
    case "docker":
      return { limits: "the container's cgroup (memory, CPU, pids) and the runtime class's isolation, set by the Docker engine (docs/docker.md)" }
    case "kubernetes":
      return { limits: "the Pod's resources and securityContext, enforced by the kubelet and the RuntimeClass (docs/kubernetes.md)" }
    case "memory":
      return { limits: "none: the in-memory backend runs no programs (tests and embedding only)" }
  }
}
