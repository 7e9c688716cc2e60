// The Docker backend against the raw engine, same hardened container config on both sides:
// create+start, pause/unpause, and a burst of concurrent spawns. `node bench/docker.ts` runs it alone;
// `npm run bench` calls benchDocker when the engine answers.
import { randomUUID } from "node:crypto"
import Docker from "dockerode"
import { Effect, Layer } from "effect"
import { containerCreateOptions, containerNameOf, type ContainerPlan, volumeNameOf } from "../src/backends/docker/ContainerConfig.ts"
import * as DockerBackend from "../src/backends/docker/DockerBackend.ts"
import { OwnershipLabels } from "../src/domain/Ids.ts"
import { trustProfiles } from "../src/domain/SandboxConfiguration.ts"
import { SandboxBackend, sandboxLabels, type SandboxSpec } from "../src/services/SandboxBackend.ts"

/** What to measure; defaults suit a small shared machine. */
export interface DockerBenchOptions {
  /** Sequential runs per measurement (p50/p95 over them). Default 20. */
  readonly runs?: number
  /** Concurrent spawns in the burst. Default 50. */
  readonly burst?: number
  readonly socketPath?: string
  readonly image?: string
  readonly log?: (line: string) => void
}

const benchLabel = { "l02.dev/bench": "docker" }
const runtimeId = `bench-${randomUUID().slice(0, 8)}`

/** The p-th percentile of the samples (nearest rank). */
export const percentile = (samples: ReadonlyArray<number>, p: number): number => {
  const sorted = [...samples].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? Number.NaN
}

/** Two decimals. */
export const round = (n: number) => Math.round(n * 100) / 100

/** The spec both sides use: the strict profile (read-only root, no network) on runc, small limits. */
const benchSpec = (image: string): SandboxSpec => ({
  agentId: randomUUID(),
  sessionId: randomUUID(),
  runtimeId,
  name: "bench",
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

const rawPlan = (spec: SandboxSpec, image: string): ContainerPlan => {
  const name = `${containerNameOf(spec)}-raw`
  return { name, image, runtimeName: "runc", network: { mode: "none" }, volumeName: volumeNameOf(name), labels: sandboxLabels(spec) }
}

/** Removes everything the bench created (containers, then their volumes). */
const reap = async (docker: Docker) => {
  const containers = await docker.listContainers({ all: true, filters: { label: ["l02.dev/bench=docker"] } })
  await Promise.all(containers.map((c) => docker.getContainer(c.Id).remove({ force: true, v: true }).catch(() => undefined)))
  const volumes = await docker.listVolumes({ filters: { label: ["l02.dev/bench=docker"] } })
  await Promise.all((volumes.Volumes ?? []).map((v) => docker.getVolume(v.Name).remove().catch(() => undefined)))
}

/**
 * Raw dockerode vs the backend: create+start p50/p95, pause/unpause p50/p95, and the wall time of
 * `burst` concurrent spawns; prints a table and returns the numbers with backend/raw ratios.
 */
export async function benchDocker(options: DockerBenchOptions = {}): Promise<Record<string, unknown>> {
  const runs = options.runs ?? 20
  const burst = options.burst ?? 50
  const image = options.image ?? "l02-agent:latest"
  const log = options.log ?? ((line: string) => console.log(line))
  const docker = options.socketPath !== undefined ? new Docker({ socketPath: options.socketPath }) : DockerBackend.dockerClient({})
  await docker.ping()
  await docker.getImage(image).inspect()

  const rawSpawn = async () => {
    const spec = benchSpec(image)
    const started = performance.now()
    const container = await docker.createContainer(containerCreateOptions(spec, rawPlan(spec, image)))
    await container.start()
    return { ms: performance.now() - started, container }
  }

  return Effect.runPromise(
    Effect.gen(function* () {
      const backend = yield* SandboxBackend
      const backendSpawn = Effect.gen(function* () {
        const spec = benchSpec(image)
        const started = performance.now()
        const info = yield* backend.provision(spec)
        yield* backend.start(info.sandboxId)
        return { ms: performance.now() - started, sandboxId: info.sandboxId }
      })

      {
        // Warm both paths (image layers, runtime cache) before measuring.
        const warm = yield* Effect.promise(rawSpawn)
        yield* Effect.promise(() => warm.container.remove({ force: true, v: true }))
        const warmBackend = yield* backendSpawn
        yield* backend.remove(warmBackend.sandboxId)

        const raw: Array<number> = []
        const ours: Array<number> = []
        for (let i = 0; i < runs; i++) {
          // Interleaved, alternating which side goes first, so drift on a shared machine hits both alike.
          const backendFirst = i % 2 === 1
          const early = backendFirst ? yield* backendSpawn : undefined
          const r = yield* Effect.promise(rawSpawn)
          const b = early ?? (yield* backendSpawn)
          raw.push(r.ms)
          ours.push(b.ms)
          yield* Effect.promise(() => r.container.remove({ force: true, v: true }))
          yield* backend.remove(b.sandboxId)
        }

        const target = yield* backendSpawn
        const container = docker.getContainer(target.sandboxId)
        const rawPause: Array<number> = []
        const oursPause: Array<number> = []
        for (let i = 0; i < runs; i++) {
          let t = performance.now()
          // Same order every round: pause cost does not depend on what ran before.
          yield* Effect.promise(async () => {
            await container.pause()
            await container.unpause()
          })
          rawPause.push(performance.now() - t)
          t = performance.now()
          yield* backend.pause(target.sandboxId)
          yield* backend.unpause(target.sandboxId)
          oursPause.push(performance.now() - t)
        }
        yield* backend.remove(target.sandboxId)

        let t = performance.now()
        const rawBurst = yield* Effect.promise(() => Promise.all(Array.from({ length: burst }, rawSpawn)))
        const rawBurstMs = performance.now() - t
        yield* Effect.promise(() => Promise.all(rawBurst.map((r) => r.container.remove({ force: true, v: true }))))
        t = performance.now()
        const ourBurst = yield* Effect.all(Array.from({ length: burst }, () => backendSpawn), { concurrency: "unbounded" })
        const ourBurstMs = performance.now() - t
        yield* Effect.all(ourBurst.map((b) => backend.remove(b.sandboxId)), { concurrency: 16 })

        const result = {
          runs,
          burst,
          spawn: { rawP50: round(percentile(raw, 50)), rawP95: round(percentile(raw, 95)), backendP50: round(percentile(ours, 50)), backendP95: round(percentile(ours, 95)) },
          pauseUnpause: {
            rawP50: round(percentile(rawPause, 50)),
            rawP95: round(percentile(rawPause, 95)),
            backendP50: round(percentile(oursPause, 50)),
            backendP95: round(percentile(oursPause, 95))
          },
          burstWall: { rawMs: round(rawBurstMs), backendMs: round(ourBurstMs) },
          ratios: {
            spawnP50: round(percentile(ours, 50) / percentile(raw, 50)),
            pauseUnpauseP50: round(percentile(oursPause, 50) / percentile(rawPause, 50)),
            burstWall: round(ourBurstMs / rawBurstMs)
          }
        }
        log(`\nDocker backend vs raw dockerode (ms; ${runs} runs, burst of ${burst})`)
        log("  measurement          raw p50   raw p95   backend p50   backend p95   ratio p50")
        log(`  create+start      ${[result.spawn.rawP50, result.spawn.rawP95, result.spawn.backendP50, result.spawn.backendP95].map((n) => String(n).padStart(10)).join("  ")}   ${result.ratios.spawnP50}x (target <= 1.10x)`)
        log(`  pause+unpause     ${[result.pauseUnpause.rawP50, result.pauseUnpause.rawP95, result.pauseUnpause.backendP50, result.pauseUnpause.backendP95].map((n) => String(n).padStart(10)).join("  ")}   ${result.ratios.pauseUnpauseP50}x (target <= 1.2x)`)
        log(`  burst wall        ${String(result.burstWall.rawMs).padStart(10)}              ${String(result.burstWall.backendMs).padStart(10)}                ${result.ratios.burstWall}x (target <= 1.15x)`)
        return result
      }
    }).pipe(
      Effect.ensuring(Effect.promise(() => reap(docker))),
      Effect.provide(DockerBackend.layer({ docker }) as Layer.Layer<SandboxBackend>)
    )
  )
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const result = await benchDocker({
    ...(process.env.L02_BENCH_RUNS ? { runs: Number(process.env.L02_BENCH_RUNS) } : {}),
    ...(process.env.L02_BENCH_BURST ? { burst: Number(process.env.L02_BENCH_BURST) } : {})
  })
  console.log(JSON.stringify(result, null, 2))
}
