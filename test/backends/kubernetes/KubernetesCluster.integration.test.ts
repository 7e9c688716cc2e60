// The defects a simulator hid, each proven on a real cluster (L02_TEST_KUBECONFIG): a resume whose
// Pod cannot run leaves nothing behind, a RuntimeClass no node can run is refused before anything is
// created or fails at once with its cause, and a Pod someone else deletes is removed, not exited.
// What a test changes on the cluster (RuntimeClasses, node labels) it changes with the admin identity
// and puts back; the backend itself always runs as the restricted service account.
import { execFileSync } from "node:child_process"
import { randomUUID } from "node:crypto"
import { Effect, Layer, type Scope, Stream } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { createRuntime } from "../../../src/runtime/createRuntime.ts"
import { layerMemory as checkpointMemory } from "../../../src/services/CheckpointStore.ts"
import { layerMemory as eventLogMemory } from "../../../src/services/EventLog.ts"
import { SandboxBackend, type SandboxEvent } from "../../../src/services/SandboxBackend.ts"
import { layerMemory as stateMemory } from "../../../src/services/StateStore.ts"
import { shellPrograms } from "../process/support.ts"
import { adminClients, clusterEnabled, clusterImage, clusterLayer, clusterNamespace, clusterSpec, firstNodeName, labelNode } from "./clusterSupport.ts"
import { specFor } from "./support.ts"

const run = <A, E>(body: (backend: SandboxBackend["Service"]) => Effect.Effect<A, E, Scope.Scope>, layer: Layer.Layer<SandboxBackend> = clusterLayer()) =>
  Effect.runPromise(
    Effect.gen(function* () {
      return yield* body(yield* SandboxBackend)
    }).pipe(Effect.scoped, Effect.provide(layer))
  )

const waitUntil = async (condition: () => boolean | Promise<boolean>, ms = 60_000) => {
  const deadline = Date.now() + ms
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error("condition not reached in time")
    await new Promise((r) => setTimeout(r, 100))
  }
}

const podsOf = async (agentId: string) =>
  (await adminClients().core.listNamespacedPod({ namespace: clusterNamespace, labelSelector: `l02.dev/agent-id=${agentId}` })).items

const policiesOf = async (agentId: string) =>
  (await adminClients().networking.listNamespacedNetworkPolicy({ namespace: clusterNamespace, labelSelector: `l02.dev/agent-id=${agentId}` })).items

describe.skipIf(!clusterEnabled)("Kubernetes backend on a real cluster: the defects the simulator hid", () => {
  let node = ""
  // gvisor-l02-test asks for runsc (which this cluster's dockershim cannot run) on nodes labelled for it;
  // nowhere-l02-test schedules onto a label no node has.
  const gvisorClass = `gvisor-l02-test-${randomUUID().slice(0, 6)}`
  const nowhereClass = `nowhere-l02-test-${randomUUID().slice(0, 6)}`
  const gvisorLabel = "l02.dev/runtime-gvisor-test"
  beforeAll(async () => {
    node = await firstNodeName()
    const { node: nodeApi } = adminClients()
    await nodeApi.createRuntimeClass({ body: { metadata: { name: gvisorClass }, handler: "runsc", scheduling: { nodeSelector: { [gvisorLabel]: "true" } } } })
    await nodeApi.createRuntimeClass({ body: { metadata: { name: nowhereClass }, handler: "runc", scheduling: { nodeSelector: { "l02.dev/no-such-node": "true" } } } })
  })
  afterAll(async () => {
    const { node: nodeApi } = adminClients()
    for (const name of [gvisorClass, nowhereClass]) await nodeApi.deleteRuntimeClass({ name }).catch(() => undefined)
    if (node !== "") await labelNode(node, { [gvisorLabel]: undefined }).catch(() => undefined)
  })
  const layerWith = (mapping: Record<string, string>) => clusterLayer({ runtimeClasses: { runc: "", ...mapping } })

  it("a RuntimeClass whose nodeSelector no node carries is E2041 before anything is created", async () => {
    await run(
      (backend) =>
        Effect.gen(function* () {
          const spec = clusterSpec(specFor({ agentId: randomUUID(), command: shellPrograms.echoLoop }, "STANDARD"))
          const error = yield* Effect.flip(backend.provision(spec))
          expect(error).toMatchObject({ code: "E2041", runtimeClass: "gvisor" })
          expect(error.message).toContain("l02.dev/no-such-node=true")
          expect(yield* Effect.promise(() => podsOf(spec.agentId))).toEqual([])
          expect(yield* Effect.promise(() => policiesOf(spec.agentId))).toEqual([])
        }),
      layerWith({ gvisor: nowhereClass })
    )
  })

  it("a node whose container runtime lacks the RuntimeClass's handler fails start at once with E2041 naming it, and nothing stays", async () => {
    await labelNode(node, { [gvisorLabel]: "true" })
    await run(
      (backend) =>
        Effect.gen(function* () {
          const spec = clusterSpec(specFor({ agentId: randomUUID(), command: shellPrograms.echoLoop }, "STANDARD"))
          const created = yield* backend.provision(spec)
          const t0 = Date.now()
          const error = yield* Effect.flip(Effect.ensuring(backend.start(created.sandboxId), Effect.ignore(backend.remove(created.sandboxId))))
          expect(error).toMatchObject({ code: "E2041", runtimeClass: "gvisor" })
          expect(error.message).toContain('RuntimeHandler "runsc" not supported')
          expect(error.message).toContain(`node ${node}`)
          expect(Date.now() - t0, "at once, not after the start timeout (60 s)").toBeLessThan(20_000)
          expect(yield* Effect.promise(() => podsOf(spec.agentId))).toEqual([])
        }),
      layerWith({ gvisor: gvisorClass })
    )
  })

  it("a resume whose new Pod cannot run (its image went away) leaves no Pod or NetworkPolicy, the agent stays suspended, and a later resume works", { timeout: 300_000 }, async () => {
    const image = `l02-resume-test:${randomUUID().slice(0, 8)}`
    execFileSync("docker", ["tag", clusterImage, image])
    const runtime = await createRuntime({
      // Never: the node says at once that the image is missing (ErrImageNeverPull), with no registry to wait for.
      layer: Layer.mergeAll(clusterLayer({ defaultImage: image, imagePullPolicy: "Never", startTimeoutMs: 120_000 }), stateMemory, checkpointMemory, eventLogMemory),
      env: {},
      config: { store: { pglite: "memory" }, runtime: { hibernate_idle_after_seconds: 0 }, lifecycle: { graceful_shutdown_seconds: 2, spawn_timeout_seconds: 90 } }
    })
    try {
      const { agentId } = await runtime.spawn({
        name: "resume-leak",
        trustLevel: "TRUSTED",
        command: ["sh", "-c", 'echo kept > "$L02_WORKSPACE/mark"; while IFS= read -r line; do :; done'],
        resources: { cpu: "100m", memory: "64Mi" }
      })
      await runtime.suspend(agentId)
      expect(await podsOf(agentId)).toEqual([])
      execFileSync("docker", ["rmi", image])
      await expect(runtime.resume(agentId)).rejects.toMatchObject({ code: "E2024" })
      expect((await runtime.getState(agentId)).state).toBe("suspended")
      // This cluster's kubelet takes up to about 40 s to confirm a deletion.
      await waitUntil(async () => (await podsOf(agentId)).length === 0, 100_000)
      expect(await policiesOf(agentId)).toEqual([])
      execFileSync("docker", ["tag", clusterImage, image])
      // Should this fail, say what the node said about the agent's Pods.
      const resumed = await runtime.resume(agentId).catch(async (error: unknown) => {
        const events = await adminClients().core.listNamespacedEvent({ namespace: clusterNamespace })
        const about = events.items.filter((e) => e.involvedObject.name?.startsWith("resume-leak")).map((e) => `${e.reason}: ${e.message}`)
        throw new Error(`${String(error)}; the Pod's events: ${about.join(" | ")}`)
      })
      expect(resumed).toBe("running")
      expect((await podsOf(agentId)).length).toBe(1)
      await runtime.terminate(agentId)
    } finally {
      await runtime.shutdown()
      try {
        execFileSync("docker", ["rmi", image], { stdio: "ignore" })
      } catch {
        // already gone
      }
    }
  })

  it("a Pod someone else deletes (kubectl delete pod: graceful) is removed at once and once, never an exit of its stopped container", { timeout: 180_000 }, async () => {
    await run((backend) =>
      Effect.gen(function* () {
        const seen: Array<SandboxEvent> = []
        let id = ""
        // The sandbox's `started`, which the Pod watch may deliver late on a busy host (even after the
        // deletion was asked for), is not what this test is about: what the deletion itself reports is.
        const afterStart = () => seen.filter((e) => e.type !== "started").map((e) => e.type)
        yield* Effect.forkChild(backend.events.pipe(Stream.runForEach((e) => Effect.sync(() => e.sandboxId === id && seen.push(e)))))
        const spec = clusterSpec(specFor({ agentId: randomUUID(), command: shellPrograms.echoLoop }, "TRUSTED"))
        const sandbox = yield* Effect.acquireRelease(
          Effect.flatMap(backend.provision(spec), (info) => backend.start(info.sandboxId)),
          (info) => Effect.ignore(backend.remove(info.sandboxId))
        )
        id = sandbox.sandboxId
        yield* Effect.sleep("1 second")
        yield* Effect.promise(() => adminClients().core.deleteNamespacedPod({ name: id, namespace: clusterNamespace, gracePeriodSeconds: 5 }))
        yield* Effect.promise(() => waitUntil(() => afterStart().length > 0, 20_000))
        expect(afterStart()).toEqual(["removed"])
        // This cluster's kubelet takes about 40 s to confirm a graceful deletion; the object goes after that.
        yield* Effect.promise(() => waitUntil(async () => (await podsOf(spec.agentId)).length === 0, 100_000))
        yield* Effect.sleep("1 second")
        expect(afterStart()).toEqual(["removed"])
        expect(seen.filter((e) => e.type === "started").length).toBeLessThanOrEqual(1)
      })
    )
  })
})
