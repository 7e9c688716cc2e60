// What the Docker backend asks of the engine, read back from `docker inspect` for every trust level,
// plus the fail-closed paths: unavailable runtimes, network fallback, bad input. Real engine only.
import { randomUUID } from "node:crypto"
import { Effect, Stream } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as DockerBackend from "../../../src/backends/docker/DockerBackend.ts"
import { OwnershipLabels } from "../../../src/domain/Ids.ts"
import { SandboxBackend, type SandboxSpec } from "../../../src/services/SandboxBackend.ts"
import { dockerEnabled, ensureAgentImage, leftovers, specAt, testDocker } from "./dockerTestSupport.ts"

const testLabel = { "l02.dev/test": "docker-hardening" }

describe.skipIf(!dockerEnabled)("Docker backend: hardening and fail-closed provisioning", () => {
  const docker = testDocker()
  const backendLayer = DockerBackend.layer({ docker })
  const run = <A, E>(body: (backend: SandboxBackend["Service"]) => Effect.Effect<A, E, never>, layer = backendLayer) =>
    Effect.runPromise(
      Effect.provide(
        Effect.gen(function* () {
          return yield* body(yield* SandboxBackend)
        }),
        layer
      )
    )
  const spec = (trust: Parameters<typeof specAt>[0], overrides: Partial<SandboxSpec> = {}) =>
    specAt(trust, { labels: { [OwnershipLabels.managedBy]: "l02", ...testLabel }, ...overrides })

  /** Provisions and starts, returns the backend's info and the engine's inspect, then removes the sandbox. */
  const provisionAndInspect = (s: SandboxSpec, layer = backendLayer) =>
    run(
      (backend) =>
        Effect.acquireUseRelease(
          backend.provision(s),
          (created) =>
            Effect.gen(function* () {
              const started = yield* backend.start(created.sandboxId)
              const raw = yield* Effect.promise(() => docker.getContainer(created.sandboxId).inspect())
              const seccomp = yield* Stream.runCollect(
                backend.exec(created.sandboxId, { command: ["/bin/sh", "-c", "grep -E '^(Seccomp|NoNewPrivs|CapEff|Uid):' /proc/self/status"], timeoutMs: 10_000, maxOutputBytes: 4096 })
              )
              const status = [...seccomp].map((c) => (c._tag === "stdout" ? c.data : "")).join("")
              const network = raw.HostConfig.NetworkMode?.endsWith("-net")
                ? yield* Effect.promise(() => docker.getNetwork(raw.HostConfig.NetworkMode!).inspect())
                : undefined
              return { created, started, raw, status, network }
            }),
          (created) => Effect.ignore(backend.remove(created.sandboxId))
        ),
      layer
    )

  beforeAll(() => ensureAgentImage(docker))

  it("TRUSTED runs on runc with a writable root, the default bridge and every other hardening", async () => {
    const s = spec("TRUSTED")
    const { started, raw, status } = await provisionAndInspect(s)
    expect(started.status).toBe("running")
    expect(started.notes).toBeUndefined()
    expect(raw.HostConfig.Runtime).toBe("runc")
    expect(raw.Config.User).toBe("65534:65534")
    expect(raw.HostConfig.ReadonlyRootfs).toBe(false)
    expect(raw.HostConfig.CapDrop).toEqual(["ALL"])
    expect(raw.HostConfig.CapAdd ?? []).toEqual([])
    expect(raw.HostConfig.Privileged).toBe(false)
    expect(raw.HostConfig.SecurityOpt).toContain("no-new-privileges:true")
    expect(raw.HostConfig.SecurityOpt?.some((o: string) => o.startsWith("seccomp="))).toBe(false)
    expect(raw.HostConfig.PidsLimit).toBe(64)
    expect(raw.HostConfig.Memory).toBe(128 * 1024 * 1024)
    expect(raw.HostConfig.MemorySwap).toBe(128 * 1024 * 1024)
    expect(raw.HostConfig.NanoCpus).toBe(1_000_000_000)
    expect(raw.HostConfig.Tmpfs).toEqual({ "/tmp": "rw,nosuid,nodev,noexec,size=64m" })
    expect(raw.HostConfig.NetworkMode).toBe("bridge")
    expect(raw.Mounts.find((m) => m.Destination === "/workspace")).toMatchObject({ Type: "volume", RW: true })
    expect(raw.Config.Env).toEqual(expect.arrayContaining(["L02_WORKSPACE=/workspace", `L02_AGENT_ID=${s.agentId}`]))
    expect(raw.Config.Labels).toMatchObject({ [OwnershipLabels.agentId]: s.agentId, [OwnershipLabels.runtimeId]: s.runtimeId, [OwnershipLabels.sessionId]: s.sessionId })
    expect(raw.Config.OpenStdin).toBe(true)
    // Seen from inside: the default seccomp filter (mode 2), no new privileges, no capabilities, uid 65534.
    expect(status).toMatch(/Seccomp:\s+2/)
    expect(status).toMatch(/NoNewPrivs:\s+1/)
    expect(status).toMatch(/CapEff:\s+0000000000000000/)
    expect(status).toMatch(/Uid:\s+65534\s+65534\s+65534\s+65534/)
  })

  it("STANDARD runs on gVisor (runsc) with a read-only root, stricter network noted in the sandbox status", async () => {
    const { started, raw, status } = await provisionAndInspect(spec("STANDARD"))
    expect(raw.HostConfig.Runtime).toBe("runsc")
    expect(raw.HostConfig.ReadonlyRootfs).toBe(true)
    expect(raw.HostConfig.CapDrop).toEqual(["ALL"])
    expect(raw.HostConfig.SecurityOpt).toContain("no-new-privileges:true")
    expect(raw.HostConfig.PidsLimit).toBe(64)
    expect(raw.Config.User).toBe("65534:65534")
    // restricted asked, runsc has --network=none here: no network at all, and it says so.
    expect(raw.HostConfig.NetworkMode).toBe("none")
    expect((raw.Config as { NetworkDisabled?: boolean }).NetworkDisabled).toBe(true)
    expect(started.notes?.join(" ")).toContain('network policy "restricted" asked, running isolated')
    expect(status).toMatch(/Uid:\s+65534/)
  })

  it("restricted on runc has no network at all (an internal network would still reach the host's gateway addresses)", async () => {
    const base = spec("STANDARD")
    const s = { ...base, sandbox: { ...base.sandbox, runtimeClass: "runc" } }
    const { raw, network } = await provisionAndInspect(s)
    expect(raw.HostConfig.NetworkMode).toBe("none")
    expect(network).toBeUndefined()
    expect((await leftovers(docker, { [OwnershipLabels.agentId]: s.agentId })).networks).toEqual([])
  })

  it("network_fallback fail refuses restricted on runsc with E2043 and leaves nothing", async () => {
    const s = spec("STANDARD")
    const error = await run((backend) => Effect.flip(backend.provision(s)), DockerBackend.layer({ docker, networkFallback: "fail" }))
    expect(error).toMatchObject({ _tag: "NetworkPolicyUnsupported", code: "E2043" })
    expect(error.message).toContain("--network=none")
    expect(await leftovers(docker, { [OwnershipLabels.agentId]: s.agentId })).toEqual({ containers: [], volumes: [], networks: [] })
  })

  for (const trust of ["UNTRUSTED", "CONFIDENTIAL"] as const) {
    it(`${trust} needs kata, which this engine lacks: E2041 naming how to install or remap, never a downgrade`, async () => {
      const s = spec(trust)
      const error = await run((backend) => Effect.flip(backend.provision(s)))
      expect(error).toMatchObject({ _tag: "RuntimeClassUnavailable", code: "E2041" })
      expect(error.message).toContain(trust === "UNTRUSTED" ? '"kata-runtime"' : '"kata-cc"')
      expect(error.message).toContain("/etc/docker/daemon.json")
      expect(error.message).toContain(`docker.runtimes.${s.sandbox.runtimeClass}`)
      expect(await leftovers(docker, { [OwnershipLabels.agentId]: s.agentId })).toEqual({ containers: [], volumes: [], networks: [] })
    })
  }

  it("a runtime class with no mapping is E2041 naming the config key", async () => {
    const base = spec("TRUSTED")
    const s = { ...base, sandbox: { ...base.sandbox, runtimeClass: "quantum" } }
    const error = await run((backend) => Effect.flip(backend.provision(s)))
    expect(error).toMatchObject({ code: "E2041" })
    expect(error.message).toContain("docker.runtimes.quantum")
  })

  it("an unknown image is E2022 naming the image and `l02 image build`, and leaves nothing", async () => {
    const image = `l02-missing-${randomUUID().slice(0, 8)}:latest`
    const s = spec("TRUSTED", { image })
    const error = await run((backend) => Effect.flip(backend.provision(s)))
    expect(error).toMatchObject({ _tag: "SpawnFailed", code: "E2022" })
    expect(error.message).toContain(image)
    expect(error.message).toContain("l02 image build")
    expect(await leftovers(docker, { [OwnershipLabels.agentId]: s.agentId })).toEqual({ containers: [], volumes: [], networks: [] })
  })

  it("invalid limits are E2042 before anything is created", async () => {
    const base = spec("TRUSTED")
    const tiny = { ...base, sandbox: { ...base.sandbox, resources: { ...base.sandbox.resources, memory: "1Mi", memoryBytes: 1024 * 1024 } } }
    const noPids = { ...base, sandbox: { ...base.sandbox, resources: { ...base.sandbox.resources, pids: 0 } } }
    for (const s of [tiny, noPids]) {
      const error = await run((backend) => Effect.flip(backend.provision(s)))
      expect(error).toMatchObject({ _tag: "ResourceLimitsInvalid", code: "E2042" })
    }
    expect(await leftovers(docker, { [OwnershipLabels.agentId]: base.agentId })).toEqual({ containers: [], volumes: [], networks: [] })
  })

  it("capabilities list the runtime classes the engine has", async () => {
    const capabilities = await run((backend) => backend.capabilities)
    expect(capabilities.runtimeClasses).toEqual(["runc", "gvisor"])
    expect(capabilities.workspaceArchive).toBe(true)
  })

  afterAll(async () => {
    const left = await leftovers(docker, testLabel)
    await Promise.all(left.containers.map((id) => docker.getContainer(id).remove({ force: true, v: true }).catch(() => undefined)))
    await Promise.all(left.volumes.map((name) => docker.getVolume(name).remove().catch(() => undefined)))
    await Promise.all(left.networks.map((name) => docker.getNetwork(name).remove().catch(() => undefined)))
    expect(left, "every test removed what it created").toEqual({ containers: [], volumes: [], networks: [] })
  })
})
