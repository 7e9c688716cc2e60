/**
 * The composition root: the one module that chooses implementations. It builds the live services
 * (sandbox backend and stores) from the configuration; everything else asks for the ports.
 */
import { resolve } from "node:path"
import { fileURLToPath } from "node:url"
import { Effect, Layer } from "effect"
import * as DockerBackend from "../backends/docker/DockerBackend.ts"
import * as ProcessBackend from "../backends/process/ProcessBackend.ts"
import type { RuntimeConfig } from "../domain/RuntimeConfig.ts"
import type { CheckpointStore } from "../services/CheckpointStore.ts"
import type { EventLog } from "../services/EventLog.ts"
import { layerMemory as sandboxMemory, SandboxBackend } from "../services/SandboxBackend.ts"
import type { StateStore } from "../services/StateStore.ts"
import * as Store from "../store/Store.ts"

/** The process backend's default agent program: a JSON-lines echo agent run by this Node. */
export const echoAgentPath: string = fileURLToPath(new URL("../agent/echoAgent.mjs", import.meta.url))

/** The command an agent runs when its config names none, per backend. */
export const defaultCommandFor = (config: RuntimeConfig): ReadonlyArray<string> | undefined =>
  config.runtime.backend === "process" ? [process.execPath, echoAgentPath] : undefined

/** The sandbox backend the configuration names. */
export const backendLayer = (config: RuntimeConfig, runtimeId: string): Layer.Layer<SandboxBackend, unknown> => {
  const dataDir = resolve(config.runtime.data_dir)
  switch (config.runtime.backend) {
    case "process":
      return ProcessBackend.layer({ dataDir, runtimeId })
    case "memory":
      return sandboxMemory()
    case "docker":
      return DockerBackend.layer({
        socketPath: config.docker.socket_path,
        defaultImage: config.docker.default_image,
        runtimes: config.docker.runtimes,
        networkFallback: config.docker.network_fallback
      })
    case "kubernetes":
      return Layer.effect(SandboxBackend, Effect.die(`backend ${config.runtime.backend} is being wired in`))
  }
}

/** Backend plus stores, as configured. */
export const liveLayer = (
  config: RuntimeConfig,
  runtimeId: string
): Layer.Layer<SandboxBackend | StateStore | CheckpointStore | EventLog, unknown> =>
  Layer.mergeAll(
    backendLayer(config, runtimeId),
    Store.layer({ url: config.store.url, pglite: config.store.pglite, dataDir: resolve(config.runtime.data_dir) })
  )
