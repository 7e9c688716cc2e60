// The full runtime API on a real Kubernetes cluster (L02_BENCH_KUBECONFIG) against a raw Pod create
// with the same client and the same Pod (the one the runtime made), read every 50 ms until its
// container runs; measured in the same run, alternating which goes first. Also the
// suspend+resume round trip (a checkpoint: workspace archive, Pod deleted, a new Pod, archive back),
// which has no raw counterpart: Kubernetes cannot pause a Pod.
import { randomUUID } from "node:crypto"
import { CoreV1Api, KubeConfig, type V1Pod } from "@kubernetes/client-node"
import { createRuntime } from "../src/runtime/createRuntime.ts"
import { percentile, round } from "./docker.ts"

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** Reads the Pod every 50 ms until its container runs: the raw side sees the moment within 50 ms. */
const untilRunning = async (core: CoreV1Api, namespace: string, name: string) => {
  for (;;) {
    const pod = await core.readNamespacedPod({ name, namespace })
    if (pod.status?.containerStatuses?.some((c) => c.state?.running !== undefined)) return
    await sleep(50)
  }
}

/** The Pod the runtime made, as a raw client would create it: no gate, a fresh name, no status. */
const rawManifestOf = (pod: V1Pod, name: string): V1Pod => {
  const { initContainers: _gate, nodeName: _node, ...spec } = pod.spec!
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, namespace: pod.metadata?.namespace, labels: { "l02.dev/bench": "kubernetes-raw" } },
    spec
  }
}

/** Runtime vs raw on the cluster a kubeconfig names; returns p50/p95 and the spawn ratio. */
export async function benchKubernetes(options: { kubeconfig: string; namespace?: string; image?: string; runs?: number }): Promise<Record<string, unknown>> {
  const namespace = options.namespace ?? "l02-agents"
  const runs = options.runs ?? 10
  const kc = new KubeConfig()
  kc.loadFromFile(options.kubeconfig)
  const core = kc.makeApiClient(CoreV1Api)
  const runtime = await createRuntime({
    backend: "kubernetes",
    env: {},
    config: {
      store: { pglite: "memory" },
      runtime: { hibernate_idle_after_seconds: 0, runtime_id: `bench-${randomUUID().slice(0, 8)}` },
      kubernetes: { kubeconfig: options.kubeconfig, namespace, default_image: options.image ?? "l02-agent:latest", image_pull_policy: "IfNotPresent", termination_grace_seconds: 2 },
      lifecycle: { graceful_shutdown_seconds: 0, health_check_interval_seconds: 0, spawn_timeout_seconds: 120 }
    }
  })
  const agent = () => ({
    name: "bench",
    trustLevel: "TRUSTED" as const,
    command: ["sh", "-c", 'while IFS= read -r line; do :; done'],
    resources: { cpu: "100m", memory: "64Mi" }
  })
  const runtimeSpawn = async () => {
    const t0 = performance.now()
    const { agentId, sandboxId } = await runtime.spawn(agent())
    return { ms: performance.now() - t0, agentId, sandboxId: sandboxId! }
  }
  const rawSpawn = async (template: V1Pod) => {
    const name = `bench-raw-${randomUUID().slice(0, 8)}`
    const t0 = performance.now()
    await core.createNamespacedPod({ namespace, body: rawManifestOf(template, name) })
    await untilRunning(core, namespace, name)
    return { ms: performance.now() - t0, name }
  }
  const rawRemove = (name: string) => core.deleteNamespacedPod({ name, namespace, gracePeriodSeconds: 0 }).catch(() => undefined)
  try {
    // Warm both paths (image, the node's first Pod), and take the runtime's Pod as the raw template.
    const first = await runtimeSpawn()
    const template = await core.readNamespacedPod({ name: first.sandboxId, namespace })
    await rawRemove((await rawSpawn(template)).name)
    await runtime.terminate(first.agentId, { force: true })

    const raw: Array<number> = []
    const ours: Array<number> = []
    for (let i = 0; i < runs; i++) {
      const runtimeFirst = i % 2 === 1
      const early = runtimeFirst ? await runtimeSpawn() : undefined
      const r = await rawSpawn(template)
      const o = early ?? (await runtimeSpawn())
      raw.push(r.ms)
      ours.push(o.ms)
      await Promise.all([rawRemove(r.name), runtime.terminate(o.agentId, { force: true })])
    }

    const target = await runtimeSpawn()
    const roundTrips: Array<number> = []
    for (let i = 0; i < Math.max(3, Math.floor(runs / 2)); i++) {
      const t0 = performance.now()
      await runtime.suspend(target.agentId)
      await runtime.resume(target.agentId)
      roundTrips.push(performance.now() - t0)
    }
    await runtime.terminate(target.agentId, { force: true })
    return {
      runs,
      spawn: { rawP50: round(percentile(raw, 50)), rawP95: round(percentile(raw, 95)), runtimeP50: round(percentile(ours, 50)), runtimeP95: round(percentile(ours, 95)) },
      suspendResume: { p50: round(percentile(roundTrips, 50)), p95: round(percentile(roundTrips, 95)), samples: roundTrips.length },
      ratios: { spawnP50: round(percentile(ours, 50) / percentile(raw, 50)) }
    }
  } finally {
    await runtime.shutdown()
    const left = await core.listNamespacedPod({ namespace, labelSelector: "l02.dev/bench=kubernetes-raw" })
    await Promise.all(left.items.map((p) => rawRemove(p.metadata?.name ?? "")))
  }
}

if (import.meta.main) {
  const kubeconfig = process.env.L02_BENCH_KUBECONFIG ?? ""
  if (kubeconfig === "") throw new Error("set L02_BENCH_KUBECONFIG to the kubeconfig of the cluster to measure")
  console.log(JSON.stringify(await benchKubernetes({ kubeconfig, runs: Number(process.env.L02_BENCH_RUNS ?? 10) }), null, 2))
}
