// Shared by the Kubernetes backend's tests: a simulator per test file, a layer over it, and specs.
import { randomUUID } from "node:crypto"
import { Layer } from "effect"
import { afterAll, beforeAll } from "vitest"
import * as KubernetesBackend from "../../../src/backends/kubernetes/KubernetesBackend.ts"
import { type TrustLevel } from "../../../src/domain/AgentConfig.ts"
import { trustProfiles } from "../../../src/domain/SandboxConfiguration.ts"
import type { SandboxBackend, SandboxSpec } from "../../../src/services/SandboxBackend.ts"
import { type KubeApiServer, type KubeApiServerOptions, startKubeApiServer } from "../../support/kubeApiServer/KubeApiServer.ts"

/** The namespace every test uses. */
export const namespace = "l02-agents"

/** Starts a simulator before the file's tests and closes it after; `current()` is the running one. */
export const useSimulator = (options: KubeApiServerOptions = {}) => {
  let server: KubeApiServer | undefined
  beforeAll(async () => {
    server = await startKubeApiServer({ token: "test-token", namespaces: [namespace], bookmarkIntervalMs: 200, runtimeClasses: ["gvisor"], ...options })
  })
  afterAll(async () => {
    await server?.close()
  })
  return {
    current: (): KubeApiServer => {
      if (server === undefined) throw new Error("the simulator is not running: use it inside a test")
      return server
    }
  }
}

/** The backend over a simulator, built when the layer is (after the simulator started). */
export const simulatorLayer = (
  current: () => KubeApiServer,
  options: Partial<KubernetesBackend.KubernetesBackendOptions> = {}
): Layer.Layer<SandboxBackend> =>
  Layer.suspend(() =>
    KubernetesBackend.layer({
      server: current().url,
      token: current().token,
      // The simulator speaks plain HTTP, which the client accepts only with TLS verification off.
      skipTlsVerify: true,
      namespace,
      defaultImage: "busybox:1.36",
      terminationGraceSeconds: 2,
      startTimeoutMs: 10_000,
      watchRetryMs: 50,
      ...options
    })
  )

/** A spec as the runtime resolves it for a trust level. */
export const specFor = (overrides: Partial<SandboxSpec> & { agentId: string }, trustLevel: TrustLevel = "STANDARD"): SandboxSpec => ({
  sessionId: randomUUID(),
  runtimeId: "rt-kube",
  name: "contract",
  env: {},
  labels: {},
  sandbox: {
    trustLevel,
    runtimeClass: trustLevel === "TRUSTED" ? "runc" : "gvisor",
    networkPolicy: trustProfiles[trustLevel].network,
    securityContext: trustProfiles[trustLevel].security,
    resources: { cpu: "1", cpuMillis: 1000, memory: "512Mi", memoryBytes: 512 * 1024 * 1024, tokensPerHour: 100_000, pids: 64 }
  },
  ...overrides
})
