// The full runtime API on Docker (state persisted to an embedded PGlite store) against raw dockerode
// with the same hardened container config, measured in the same run: spawn vs create+start,
// suspend+resume vs pause+unpause, and a burst of concurrent spawns vs the same burst raw.
import { randomUUID } from "node:crypto"
import type Docker from "dockerode"
import { containerCreateOptions, containerNameOf, volumeNameOf } from "../src/backends/docker/ContainerConfig.ts"
import * as DockerBackend from "../src/backends/docker/DockerBackend.ts"
import { OwnershipLabels } from "../src/domain/Ids.ts"
import { trustProfiles } from "../src/domain/SandboxConfiguration.ts"
import { createRuntime } from "../src/runtime/createRuntime.ts"
import { sandboxLabels, type SandboxSpec } from "../src/services/SandboxBackend.ts"
import { percentile, round } from "./docker.ts"

const benchLabel = { "l02.dev/bench": "runtime" }

const rawSpec = (image: string): SandboxSpec => ({
  agentId: randomUUID(),
  sessionId: randomUUID(),
  runtimeId: "bench-raw",
  name: "raw",
  image,
  env: {},
  labels: { [OwnershipLabels.managedBy]: "l02", ...benchLabel },
  sandbox: {
    trustLevel: "UNTRUSTED",
    runtimeClass: "runc",
    networkPolicy: "isolated",
    securityContext: trustProfiles.UNTRUSTED.security,
    resources: { cpu: "1", cpuMillis: 1000, memory: "128Mi", memoryBytes: 128 * 1024 * 1024, tokensPerHour: 0, pids: 64 }
  }
})

const rawSpawn = async (docker: Docker, image: string) => {
  const spec = rawSpec(image)
  const name = `${containerNameOf(spec)}-raw`
  const started = performance.now()
  const container = await docker.createContainer(
    containerCreateOptions(spec, { name, image, runtimeName: "runc", network: { mode: "none" }, volumeName: volumeNameOf(name), labels: sandboxLabels(spec) })
  )
  await container.start()
  return { ms: performance.now() - started, container }
}

const reapRaw = async (docker: Docker) => {
  const containers = await docker.listContainers({ all: true, filters: { label: ["l02.dev/bench=runtime"] } })
  await Promise.all(containers.map((c) => docker.getContainer(c.Id).remove({ force: true, v: true }).catch(() => undefined)))
  const volumes = await docker.listVolumes({ filters: { label: ["l02.dev/bench=runtime"] } })
  await Promise.all((volumes.Volumes ?? []).map((v) => docker.getVolume(v.Name).remove().catch(() => undefined)))
}

/** Runtime vs raw on Docker; returns p50/p95 and ratios. */
export async function benchDockerRuntime(options: { runs?: number; burst?: number; image?: string } = {}): Promise<Record<string, unknown>> {
  const runs = options.runs ?? 20
  const burst = options.burst ?? 200
  const image = options.image ?? "l02-agent:latest"
  const docker = DockerBackend.dockerClient({})
  await docker.ping()
  await docker.getImage(image).inspect()
  const runtime = await createRuntime({
    backend: "docker",
    env: {},
    config: {
      store: { pglite: "memory" },
      runtime: { hibernate_idle_after_seconds: 0, runtime_id: `bench-${randomUUID().slice(0, 8)}` },
      sandbox: { trust_runtime_classes: { TRUSTED: "runc", STANDARD: "gvisor", UNTRUSTED: "runc", CONFIDENTIAL: "kata-cc" } },
      lifecycle: { graceful_shutdown_seconds: 0, health_check_interval_seconds: 0 }
    }
  })
  const agent = () => ({ name: "bench", trustLevel: "UNTRUSTED", resources: { cpu: "1", memory: "128Mi", pids: 64 } })
  const runtimeSpawn = async () => {
    const started = performance.now()
    const { agentId } = await runtime.spawn(agent())
    return { ms: performance.now() - started, agentId }
  }
  try {
    // Warm both paths.
    const warm = await rawSpawn(docker, image)
    await warm.container.remove({ force: true, v: true })
    const warmAgent = await runtimeSpawn()
    await runtime.terminate(warmAgent.agentId, { force: true })

    const raw: Array<number> = []
    const ours: Array<number> = []
    const rawRemove: Array<number> = []
    const oursTerminate: Array<number> = []
    for (let i = 0; i < runs; i++) {
      const runtimeFirst = i % 2 === 1
      const early = runtimeFirst ? await runtimeSpawn() : undefined
      const r = await rawSpawn(docker, image)
      const o = early ?? (await runtimeSpawn())
      raw.push(r.ms)
      ours.push(o.ms)
      // Alternating which goes first, as above.
      const removeRaw = async () => {
        const t0 = performance.now()
        await r.container.remove({ force: true })
        rawRemove.push(performance.now() - t0)
      }
      const terminateOurs = async () => {
        const t0 = performance.now()
        await runtime.terminate(o.agentId, { force: true })
        oursTerminate.push(performance.now() - t0)
      }
      if (runtimeFirst) await terminateOurs().then(removeRaw)
      else await removeRaw().then(terminateOurs)
    }

    const target = await runtimeSpawn()
    const { sandboxId } = await runtime.getState(target.agentId)
    const rawContainer = (await rawSpawn(docker, image)).container
    const rawPause: Array<number> = []
    const oursPause: Array<number> = []
    for (let i = 0; i < runs; i++) {
      let t = performance.now()
      await rawContainer.pause()
      await rawContainer.unpause()
      rawPause.push(performance.now() - t)
      t = performance.now()
      await runtime.suspend(target.agentId)
      await runtime.resume(target.agentId)
      oursPause.push(performance.now() - t)
    }
    void sandboxId
    await rawContainer.remove({ force: true, v: true })
    await runtime.terminate(target.agentId, { force: true })

    let t = performance.now()
    const rawBurst = await Promise.all(Array.from({ length: burst }, () => rawSpawn(docker, image)))
    const rawBurstMs = performance.now() - t
    await reapRaw(docker)
    void rawBurst
    t = performance.now()
    const ourBurst = await Promise.all(Array.from({ length: burst }, () => runtime.spawn(agent())))
    const ourBurstMs = performance.now() - t
    for (let i = 0; i < ourBurst.length; i += 16) {
      await Promise.all(ourBurst.slice(i, i + 16).map((a) => runtime.terminate(a.agentId, { force: true })))
    }
    const result = {
      runs,
      burst,
      spawn: { rawP50: round(percentile(raw, 50)), rawP95: round(percentile(raw, 95)), runtimeP50: round(percentile(ours, 50)), runtimeP95: round(percentile(ours, 95)) },
      suspendResume: {
        rawPauseUnpauseP50: round(percentile(rawPause, 50)),
        runtimeSuspendResumeP50: round(percentile(oursPause, 50)),
        rawP95: round(percentile(rawPause, 95)),
        runtimeP95: round(percentile(oursPause, 95))
      },
      terminateForce: { rawRemoveP50: round(percentile(rawRemove, 50)), runtimeP50: round(percentile(oursTerminate, 50)) },
      burstWall: { rawMs: round(rawBurstMs), runtimeMs: round(ourBurstMs), maxConcurrentSpawns: runtime.config.lifecycle.max_concurrent_spawns },
      ratios: {
        spawnP50: round(percentile(ours, 50) / percentile(raw, 50)),
        suspendResumeP50: round(percentile(oursPause, 50) / percentile(rawPause, 50)),
        burstWall: round(ourBurstMs / rawBurstMs),
        terminateForceP50: round(percentile(oursTerminate, 50) / percentile(rawRemove, 50))
      }
    }
    return result
  } finally {
    await reapRaw(docker)
    await runtime.shutdown()
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  console.log(JSON.stringify(await benchDockerRuntime({ ...(process.env.L02_BENCH_BURST ? { burst: Number(process.env.L02_BENCH_BURST) } : {}) }), null, 2))
}
