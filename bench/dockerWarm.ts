// Warm pools on Docker through the full runtime API (state persisted) against a raw unpause measured in
// the same run, one claim per round after the pools settled (a steady stream of spawns):
// - a paused pool as configured by default (thawed: 1): the claim takes its thawed sandbox, the pool
//   thaws the next one in the background;
// - a paused pool with thawed: 0: every claim unpauses (an unpause plus the agent's writes);
// - a running pool (paused: false): the writes alone.
// `node bench/dockerWarm.ts` runs it alone.
import { randomUUID } from "node:crypto"
import * as DockerBackend from "../src/backends/docker/DockerBackend.ts"
import { createRuntime } from "../src/runtime/createRuntime.ts"
import { percentile, round } from "./docker.ts"

const runtimeId = `bench-warm-${randomUUID().slice(0, 8)}`

/** Warm spawn p50 (paused pool with and without a thawed sandbox, running pool) and raw unpause p50, with their ratios. */
export async function benchDockerWarm(options: { runs?: number; image?: string } = {}): Promise<Record<string, unknown>> {
  const runs = options.runs ?? 20
  const image = options.image ?? "l02-agent:latest"
  const docker = DockerBackend.dockerClient({})
  await docker.getImage(image).inspect()
  const paused = { name: "warm-paused", trustLevel: "TRUSTED", command: ["/bin/l02-agent"] }
  const frozen = { name: "warm-frozen", trustLevel: "TRUSTED", command: ["/bin/l02-agent"] }
  const running = { name: "warm-running", trustLevel: "TRUSTED", command: ["/bin/l02-agent"] }
  const runtime = await createRuntime({
    backend: "docker",
    env: {},
    config: {
      store: { pglite: "memory" },
      runtime: { hibernate_idle_after_seconds: 0, runtime_id: runtimeId },
      lifecycle: { graceful_shutdown_seconds: 0, health_check_interval_seconds: 0 },
      pools: {
        warm: [
          { name: "paused", template: paused, size: 2, paused: true },
          { name: "frozen", template: frozen, size: 2, paused: true, thawed: 0 },
          { name: "running", template: running, size: 2, paused: false }
        ]
      }
    }
  })
  const ready = async (name: string) => {
    for (let i = 0; i < 600; i++) {
      const pool = (await runtime.pools()).find((p) => p.name === name)!
      if (pool.ready >= 2 && pool.creating === 0 && pool.readyRunning >= Math.min(pool.thawed, 2)) return
      await new Promise((r) => setTimeout(r, 50))
    }
    throw new Error(`pool ${name} did not fill`)
  }
  const raw = await docker.createContainer({ Image: image, Cmd: ["/bin/sleep", "3600"], NetworkDisabled: true, Labels: { "l02.dev/bench": "warm" } })
  try {
    await raw.start()
    const rawUnpause: Array<number> = []
    const warmPaused: Array<number> = []
    const warmFrozen: Array<number> = []
    const warmRunning: Array<number> = []
    for (let i = 0; i < runs + 2; i++) {
      await raw.pause()
      let t = performance.now()
      await raw.unpause()
      const rawMs = performance.now() - t
      await ready("paused")
      t = performance.now()
      const a = await runtime.spawn(paused)
      const pausedMs = performance.now() - t
      await ready("frozen")
      t = performance.now()
      const c = await runtime.spawn(frozen)
      const frozenMs = performance.now() - t
      await ready("running")
      t = performance.now()
      const b = await runtime.spawn(running)
      const runningMs = performance.now() - t
      // The first two rounds warm both paths up and are not counted.
      if (i >= 2) {
        rawUnpause.push(rawMs)
        warmPaused.push(pausedMs)
        warmFrozen.push(frozenMs)
        warmRunning.push(runningMs)
      }
      await Promise.all([a, b, c].map((r) => runtime.terminate(r.agentId, { force: true })))
    }
    const status = await runtime.pools()
    return {
      runs,
      rawUnpauseP50: round(percentile(rawUnpause, 50)),
      warmSpawnPausedP50: round(percentile(warmPaused, 50)),
      warmSpawnPausedP95: round(percentile(warmPaused, 95)),
      warmSpawnPausedNoThawedP50: round(percentile(warmFrozen, 50)),
      warmSpawnPausedNoThawedP95: round(percentile(warmFrozen, 95)),
      warmSpawnRunningP50: round(percentile(warmRunning, 50)),
      warmSpawnRunningP95: round(percentile(warmRunning, 95)),
      claims: Object.fromEntries(status.map((p) => [p.name, { claimed: p.claimedTotal, misses: p.missesTotal }])),
      ratios: {
        pausedVsRawUnpause: round(percentile(warmPaused, 50) / percentile(rawUnpause, 50)),
        pausedNoThawedVsRawUnpause: round(percentile(warmFrozen, 50) / percentile(rawUnpause, 50)),
        runningVsRawUnpause: round(percentile(warmRunning, 50) / percentile(rawUnpause, 50))
      }
    }
  } finally {
    await raw.remove({ force: true }).catch(() => undefined)
    await runtime.shutdown()
    // Ready containers stay for the next start by design; a start without the pools reaps them (and their volumes).
    const reaper = await createRuntime({ backend: "docker", env: {}, config: { store: { pglite: "memory" }, runtime: { runtime_id: runtimeId } } })
    await reaper.shutdown()
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  console.log(JSON.stringify(await benchDockerWarm({}), null, 2))
}
