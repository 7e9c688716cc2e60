// The runtime on the Kubernetes backend over the API server simulator: spawn a Pod, execute through
// the agent's program, suspend (Pods cannot pause, so a checkpoint: workspace archived, Pod deleted),
// resume into a new Pod with the workspace restored, terminate.
import { Layer } from "effect"
import { describe, expect, it } from "vitest"
import { createRuntime } from "../../src/runtime/createRuntime.ts"
import { layerMemory as checkpointMemory } from "../../src/services/CheckpointStore.ts"
import { layerMemory as eventLogMemory } from "../../src/services/EventLog.ts"
import { layerMemory as stateMemory } from "../../src/services/StateStore.ts"
import { CoreV1Api } from "@kubernetes/client-node"
import { kubeConfigFor } from "../../src/backends/kubernetes/KubernetesBackend.ts"
import { simulatorLayer, useSimulator } from "../backends/kubernetes/support.ts"

const simulator = useSimulator()

const protocolAgent = [
  "sh",
  "-c",
  `while IFS= read -r line; do id=$(printf '%s' "$line" | sed -n 's/.*"id":"\\([^"]*\\)".*/\\1/p'); n=$(cat "$L02_WORKSPACE/count" 2>/dev/null || echo 0); n=$((n+1)); echo $n > "$L02_WORKSPACE/count"; printf '{"type":"output","id":"%s","count":%s}\\n' "$id" "$n"; printf '{"type":"done","id":"%s"}\\n' "$id"; done`
]

const startRuntime = () =>
  createRuntime({
    layer: Layer.mergeAll(simulatorLayer(simulator.current), stateMemory, checkpointMemory, eventLogMemory),
    env: {},
    config: { store: { pglite: "memory" }, runtime: { hibernate_idle_after_seconds: 0 }, lifecycle: { graceful_shutdown_seconds: 2 } }
  })

/** Runs one step of the counting agent; its answer is the count kept in its workspace. */
const countOnce = async (runtime: Awaited<ReturnType<typeof startRuntime>>, agentId: string) => {
  const events: Array<{ type: string; data?: unknown }> = []
  for await (const e of runtime.execute(agentId, "count")) events.push(e)
  return (events.find((e) => e.type === "output")?.data as { count: number }).count
}

describe("runtime on Kubernetes (API server simulator)", () => {
  it("spawns a Pod, suspends by checkpoint (no pause), resumes into a new Pod with the workspace", async () => {
    const runtime = await startRuntime()
    try {
      const { agentId, sandboxId } = await runtime.spawn({ name: "k8s-agent", trustLevel: "TRUSTED", command: protocolAgent })
      const count = () => countOnce(runtime, agentId)
      expect(await count()).toBe(1)
      expect(await count()).toBe(2)
      const podUid = () => (simulator.current().get("pods", "l02-agents", sandboxId!) as { metadata?: { uid?: string } } | undefined)?.metadata?.uid
      const firstUid = podUid()
      expect(firstUid).toBeTypeOf("string")
      const checkpointId = await runtime.suspend(agentId)
      expect(checkpointId).toBeTypeOf("string")
      expect((await runtime.getState(agentId)).state).toBe("suspended")
      expect(podUid()).toBeUndefined()
      expect(await runtime.resume(agentId)).toBe("running")
      // A new Pod (same name, derived from the agent) with a new uid.
      expect(podUid()).toBeTypeOf("string")
      expect(podUid()).not.toBe(firstUid)
      // The workspace came back with the Pod: the counter goes on.
      expect(await count()).toBe(3)
      await runtime.terminate(agentId)
      expect((await runtime.getState(agentId)).state).toBe("terminated")
    } finally {
      await runtime.shutdown()
    }
  }, 120_000)
  it("a resume whose workspace import fails leaves no Pod or NetworkPolicy behind, keeps the agent suspended, and the next resume works", async () => {
    const runtime = await startRuntime()
    try {
      const { agentId, sandboxId } = await runtime.spawn({ name: "k8s-resume-fails", trustLevel: "TRUSTED", command: protocolAgent })
      const count = () => countOnce(runtime, agentId)
      expect(await count()).toBe(1)
      await runtime.suspend(agentId)
      // The import runs in the new Pod's gate: its exec connection is dropped without a status, each of its three tries.
      simulator.current().dropExecs("l02-gate", 3)
      await expect(runtime.resume(agentId)).rejects.toMatchObject({ code: "E2024" })
      expect((await runtime.getState(agentId)).state).toBe("suspended")
      expect(simulator.current().get("pods", "l02-agents", sandboxId!)).toBeUndefined()
      expect(simulator.current().get("networkpolicies", "l02-agents", sandboxId!)).toBeUndefined()
      expect(await runtime.resume(agentId)).toBe("running")
      expect(await count()).toBe(2)
      await runtime.terminate(agentId)
    } finally {
      await runtime.shutdown()
    }
  }, 120_000)

  it("an agent whose Pod someone else deletes hears that its sandbox was removed, not that it exited with code unknown", async () => {
    const runtime = await createRuntime({
      layer: Layer.mergeAll(simulatorLayer(simulator.current), stateMemory, checkpointMemory, eventLogMemory),
      env: {},
      config: { store: { pglite: "memory" }, runtime: { hibernate_idle_after_seconds: 0 }, lifecycle: { graceful_shutdown_seconds: 2, max_restart_count: 1, restart_backoff_initial_ms: 60_000 } }
    })
    try {
      const { agentId, sandboxId } = await runtime.spawn({ name: "k8s-deleted", trustLevel: "TRUSTED", command: protocolAgent })
      const core = kubeConfigFor({ server: simulator.current().url, token: simulator.current().token, skipTlsVerify: true }).makeApiClient(CoreV1Api)
      await core.deleteNamespacedPod({ name: sandboxId!, namespace: "l02-agents", gracePeriodSeconds: 2 })
      const deadline = Date.now() + 20_000
      while ((await runtime.getState(agentId)).lastError === undefined && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50))
      const { lastError } = await runtime.getState(agentId)
      expect(lastError).toMatchObject({ code: "E2027" })
      expect(lastError?.message).toContain("removed by someone other than this runtime")
    } finally {
      await runtime.shutdown()
    }
  }, 60_000)
})
