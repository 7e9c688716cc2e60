// Kubernetes-specific behaviour over the API server simulator: the watch loop (reconnect, 410 resync),
// status events (OOMKilled, image errors, CrashLoopBackOff), fail-closed RuntimeClasses, input refused
// before any call, stop and remove, persistent workspaces, warm-pool claims with 409, credentials.
import { randomUUID } from "node:crypto"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { CoreV1Api, type V1Pod } from "@kubernetes/client-node"
import { Effect, Fiber, type Layer, Option, type Scope, Stream } from "effect"
import { describe, expect, it } from "vitest"
import * as KubernetesBackend from "../../../src/backends/kubernetes/KubernetesBackend.ts"
import { claim, claimedByLabel, relabel } from "../../../src/backends/kubernetes/WarmPool.ts"
import { OwnershipLabels } from "../../../src/domain/Ids.ts"
import { writeTar } from "../../../src/services/WorkspaceArchive.ts"
import { SandboxBackend, type SandboxEvent, type SandboxSpec } from "../../../src/services/SandboxBackend.ts"
import { startKubeApiServer } from "../../support/kubeApiServer/KubeApiServer.ts"
import { shellPrograms } from "../process/support.ts"
import { namespace, simulatorLayer, specFor, useSimulator } from "./support.ts"

const simulator = useSimulator({ unpullableImages: ["registry.invalid/missing:1"] })

const run = <A, E>(body: (backend: SandboxBackend["Service"]) => Effect.Effect<A, E, Scope.Scope>, layer: Layer.Layer<SandboxBackend> = simulatorLayer(simulator.current)) =>
  Effect.runPromise(
    Effect.gen(function* () {
      return yield* body(yield* SandboxBackend)
    }).pipe(Effect.scoped, Effect.provide(layer))
  )

/** Provisions and starts a sandbox that is removed at the end of the scope. */
const started = (backend: SandboxBackend["Service"], spec: SandboxSpec) =>
  Effect.acquireRelease(
    Effect.flatMap(backend.provision(spec), (info) => backend.start(info.sandboxId)),
    (info) => Effect.ignore(backend.remove(info.sandboxId))
  )

/** Collects events of one sandbox until `count` arrived (or 10 s passed). */
const collectEvents = (backend: SandboxBackend["Service"], sandboxId: () => string, count: number) =>
  backend.events.pipe(
    Stream.filter((e) => e.sandboxId === sandboxId()),
    Stream.take(count),
    Stream.runCollect,
    Effect.map((events): Array<SandboxEvent> => [...events]),
    Effect.timeoutOption("10 seconds"),
    Effect.map(Option.getOrElse((): Array<SandboxEvent> => [])),
    Effect.forkChild
  )

const client = () =>
  KubernetesBackend.kubeConfigFor({ server: simulator.current().url, token: simulator.current().token, skipTlsVerify: true }).makeApiClient(CoreV1Api)

const waitUntil = async (condition: () => boolean, ms = 10_000) => {
  const deadline = Date.now() + ms
  while (!condition()) {
    if (Date.now() > deadline) throw new Error("condition not reached in time")
    await new Promise((r) => setTimeout(r, 20))
  }
}

describe("Kubernetes backend: watch loop", () => {
  it("reconnects after the server drops the watch and still reports the exit", { timeout: 30_000 }, () =>
    run((backend) =>
      Effect.gen(function* () {
        const sim = simulator.current()
        let id = ""
        const events = yield* collectEvents(backend, () => id, 1)
        const sandbox = yield* started(backend, specFor({ agentId: randomUUID(), command: shellPrograms.echoLoop }))
        id = sandbox.sandboxId
        const watchesBefore = sim.stats.watches
        yield* Effect.promise(() => waitUntil(() => sim.dropWatches() > 0))
        yield* Effect.promise(() => waitUntil(() => sim.stats.watches > watchesBefore))
        const attachment = yield* backend.attach(id)
        yield* attachment.write("exit 4")
        expect((yield* Fiber.join(events)).map((e) => [e.type, e.exitCode])).toEqual([["exited", 4]])
        expect(sim.stats.bookmarks, "watches ask for bookmarks and get them").toBeGreaterThan(0)
      })
    ))

  it("resyncs by listing after 410 Gone, reporting what changed while it was away", { timeout: 30_000 }, () =>
    run((backend) =>
      Effect.gen(function* () {
        const sim = simulator.current()
        let id = ""
        const events = yield* collectEvents(backend, () => id, 2)
        const sandbox = yield* started(backend, specFor({ agentId: randomUUID(), command: shellPrograms.echoLoop }))
        id = sandbox.sandboxId
        yield* Effect.promise(() => waitUntil(() => sim.stats.watches > 0 && sim.requests.some((r) => r.endsWith("/pods?watch"))))
        const listsBefore = sim.requests.filter((r) => r === `GET /api/v1/namespaces/${namespace}/pods`).length
        const goneBefore = sim.stats.gone
        // The history is compacted and the container OOM-killed while the watch is cut: the old
        // resourceVersion is gone, so only a relist can tell the backend what happened.
        sim.compact()
        sim.dropWatches()
        sim.oomKill(namespace, id)
        expect((yield* Fiber.join(events)).map((e) => [e.type, e.exitCode])).toEqual([
          ["oom", 137],
          ["exited", 137]
        ])
        expect(sim.stats.gone).toBeGreaterThan(goneBefore)
        expect(sim.requests.filter((r) => r === `GET /api/v1/namespaces/${namespace}/pods`).length).toBeGreaterThan(listsBefore)
      })
    ))
})

describe("Kubernetes backend: container status", () => {
  it("an OOMKilled container gives an oom event, then exited, and inspect says oomKilled", { timeout: 30_000 }, () =>
    run((backend) =>
      Effect.gen(function* () {
        let id = ""
        const events = yield* collectEvents(backend, () => id, 2)
        const sandbox = yield* started(backend, specFor({ agentId: randomUUID(), command: shellPrograms.echoLoop }))
        id = sandbox.sandboxId
        yield* Effect.sleep("300 millis")
        simulator.current().oomKill(namespace, id)
        expect((yield* Fiber.join(events)).map((e) => e.type)).toEqual(["oom", "exited"])
        expect(yield* backend.inspect(id)).toMatchObject({ status: "exited", exitCode: 137, oomKilled: true })
      })
    ))

  it("a Pod someone else deletes gracefully is removed at once, never an exit of its stopped container, and reported once", { timeout: 30_000 }, () =>
    run((backend) =>
      Effect.gen(function* () {
        const seen: Array<SandboxEvent> = []
        let id = ""
        yield* Effect.forkChild(backend.events.pipe(Stream.runForEach((e) => Effect.sync(() => e.sandboxId === id && seen.push(e)))))
        const sandbox = yield* started(backend, specFor({ agentId: randomUUID(), command: shellPrograms.echoLoop }))
        id = sandbox.sandboxId
        yield* Effect.sleep("300 millis")
        // As `kubectl delete pod` does: a grace period, so the kubelet stops the container (SIGTERM, 143) before the object goes.
        yield* Effect.promise(() => client().deleteNamespacedPod({ name: id, namespace, gracePeriodSeconds: 2 }))
        yield* Effect.promise(() => waitUntil(() => seen.length > 0))
        expect(seen.map((e) => e.type)).toEqual(["removed"])
        yield* Effect.promise(() => waitUntil(() => simulator.current().get("pods", namespace, id) === undefined))
        yield* Effect.sleep("500 millis")
        expect(seen.map((e) => e.type)).toEqual(["removed"])
      })
    ))

  it("CrashLoopBackOff gives an unhealthy event; an image that cannot be pulled fails start with E2022", { timeout: 30_000 }, () =>
    run((backend) =>
      Effect.gen(function* () {
        let id = ""
        const events = yield* collectEvents(backend, () => id, 1)
        const sandbox = yield* started(backend, specFor({ agentId: randomUUID(), command: shellPrograms.echoLoop }))
        id = sandbox.sandboxId
        yield* Effect.sleep("300 millis")
        simulator.current().setWaiting(namespace, id, "CrashLoopBackOff")
        expect((yield* Fiber.join(events)).map((e) => [e.type, e.healthy])).toEqual([["health", false]])

        const missing = yield* Effect.acquireRelease(backend.provision(specFor({ agentId: randomUUID(), image: "registry.invalid/missing:1", command: shellPrograms.echoLoop })), (info) =>
          Effect.ignore(backend.remove(info.sandboxId))
        )
        const error = yield* Effect.flip(backend.start(missing.sandboxId))
        expect(error).toMatchObject({ _tag: "SpawnFailed", code: "E2022" })
        expect(error.message).toContain("ErrImagePull")
      })
    ))

  it("with imagePullPolicy Never, an image the node lacks fails start at once with E2022 (ErrImageNeverPull)", { timeout: 30_000 }, () =>
    run(
      (backend) =>
        Effect.gen(function* () {
          const missing = yield* Effect.acquireRelease(backend.provision(specFor({ agentId: randomUUID(), image: "registry.invalid/missing:1", command: shellPrograms.echoLoop })), (info) =>
            Effect.ignore(backend.remove(info.sandboxId))
          )
          const t0 = Date.now()
          const error = yield* Effect.flip(backend.start(missing.sandboxId))
          expect(error).toMatchObject({ _tag: "SpawnFailed", code: "E2022" })
          expect(error.message).toContain("ErrImageNeverPull")
          expect(Date.now() - t0).toBeLessThan(5_000)
        }),
      simulatorLayer(simulator.current, { imagePullPolicy: "Never" })
    ))
})

describe("Kubernetes backend: the start gate", () => {
  it("retries a gate exec whose connection dropped; a gate it cannot open is a failed start at once (E2022), never a start that waits", { timeout: 30_000 }, () =>
    run((backend) =>
      Effect.gen(function* () {
        simulator.current().dropExecs("l02-gate", 1)
        const once = yield* started(backend, specFor({ agentId: randomUUID(), command: shellPrograms.echoLoop }))
        expect(once.status).toBe("running")

        simulator.current().dropExecs("l02-gate", 10)
        const held = yield* Effect.acquireRelease(backend.provision(specFor({ agentId: randomUUID(), command: shellPrograms.echoLoop })), (info) =>
          Effect.ignore(backend.remove(info.sandboxId))
        )
        const t0 = Date.now()
        const error = yield* Effect.flip(backend.start(held.sandboxId))
        simulator.current().dropExecs("l02-gate", 0)
        expect(error).toMatchObject({ _tag: "SpawnFailed", code: "E2022" })
        expect(error.message).toContain("could not open the start gate")
        expect(Date.now() - t0).toBeLessThan(5_000)
      })
    ))
  it("an exec whose upgrade the node refuses (500: nothing ran) is tried twice more; a third refusal is the caller's E2046", { timeout: 30_000 }, () =>
    run((backend) =>
      Effect.gen(function* () {
        const sim = simulator.current()
        const sandbox = yield* started(backend, specFor({ agentId: randomUUID(), command: shellPrograms.echoLoop }))
        const printed = (chunks: Iterable<{ _tag: string }>) => [...chunks].filter((c) => c._tag === "stdout").map((c) => (c as unknown as { data: string }).data).join("")
        sim.refusedExecs("agent", 2)
        const ok = yield* Stream.runCollect(backend.exec(sandbox.sandboxId, { command: shellPrograms.printAndExit("ran once", "", 0), timeoutMs: 5000, maxOutputBytes: 100 }))
        expect(printed(ok)).toBe("ran once")
        sim.refusedExecs("agent", 3)
        const error = yield* Effect.flip(Stream.runCollect(backend.exec(sandbox.sandboxId, { command: shellPrograms.printAndExit("never", "", 0), timeoutMs: 5000, maxOutputBytes: 100 })))
        sim.refusedExecs("agent", 0)
        expect(error).toMatchObject({ code: "E2046" })
        expect(error.message).toContain("500")
      })
    ))

  it("an import or a gate opening that reaches a gate being replaced (a silent 126) runs again in the one that replaced it, at most three times", { timeout: 30_000 }, () =>
    run((backend) =>
      Effect.gen(function* () {
        const sim = simulator.current()
        const archive = writeTar([{ path: "kept.txt", type: "file", mode: 0o644, data: new TextEncoder().encode("kept") }])
        const sandbox = yield* Effect.acquireRelease(backend.provision(specFor({ agentId: randomUUID(), command: shellPrograms.echoLoop })), (info) =>
          Effect.ignore(backend.remove(info.sandboxId))
        )
        sim.replacedExecs("l02-gate", 2)
        yield* backend.importWorkspace(sandbox.sandboxId, archive)
        sim.replacedExecs("l02-gate", 1)
        yield* backend.start(sandbox.sandboxId)
        const read = yield* Stream.runCollect(backend.exec(sandbox.sandboxId, { command: shellPrograms.readFile("kept.txt"), timeoutMs: 5000, maxOutputBytes: 100 }))
        expect([...read].filter((c) => c._tag === "stdout").map((c) => (c as { data: string }).data).join("")).toBe("kept")

        const other = yield* Effect.acquireRelease(backend.provision(specFor({ agentId: randomUUID(), command: shellPrograms.echoLoop })), (info) =>
          Effect.ignore(backend.remove(info.sandboxId))
        )
        sim.replacedExecs("l02-gate", 3)
        const error = yield* Effect.flip(backend.importWorkspace(other.sandboxId, archive))
        sim.replacedExecs("l02-gate", 0)
        expect(error.message).toContain("failed to extract the workspace (exit 126")
      })
    ))
})

describe("Kubernetes backend: a node must be able to run the sandbox (fail closed, and fast)", () => {
  // gvisor schedules onto nodes labelled for it; "runsc-less" names a handler node-1's runtime lacks.
  const placement = useSimulator({
    runtimeClasses: [
      { name: "gvisor", handler: "runsc", nodeSelector: { "l02.dev/runtime-gvisor": "true" } },
      { name: "runsc-less", handler: "runsc-missing" }
    ],
    nodeLabels: { "kubernetes.io/hostname": "node-1" },
    unsupportedHandlers: ["runsc-missing"],
    allocatable: { cpu: "2", memory: "4Gi" },
    schedulingDelayMs: 300
  })
  const runHere = <A, E>(body: (backend: SandboxBackend["Service"]) => Effect.Effect<A, E, Scope.Scope>) =>
    run(body, simulatorLayer(placement.current, { runtimeClasses: { runc: "", gvisor: "gvisor", kata: "runsc-less" } }))
  const nodeLabels = (labels: Record<string, string>) =>
    KubernetesBackend.kubeConfigFor({ server: placement.current().url, token: placement.current().token, skipTlsVerify: true })
      .makeApiClient(CoreV1Api)
      .patchNode({ name: "node-1", body: [{ op: "replace", path: "/metadata/labels", value: labels }] })

  it("a RuntimeClass whose nodeSelector no node carries is E2041 before anything is created, and capabilities leave it out", { timeout: 30_000 }, () =>
    runHere((backend) =>
      Effect.gen(function* () {
        const sim = placement.current()
        const before = sim.requests.length
        const error = yield* Effect.flip(backend.provision(specFor({ agentId: randomUUID(), command: shellPrograms.echoLoop })))
        expect(error).toMatchObject({ _tag: "RuntimeClassUnavailable", code: "E2041", runtimeClass: "gvisor" })
        expect(error.message).toContain("l02.dev/runtime-gvisor=true")
        expect(sim.requests.slice(before).filter((r) => r.startsWith("POST")), "nothing created").toEqual([])
        expect([...(yield* backend.capabilities).runtimeClasses].sort()).toEqual(["kata", "runc"])
      })
    ))

  it("a Pod whose RuntimeClass's nodes went away before it was scheduled fails start at once with E2041 naming the scheduler's reason", { timeout: 30_000 }, () =>
    runHere((backend) =>
      Effect.gen(function* () {
        yield* Effect.promise(() => nodeLabels({ "kubernetes.io/hostname": "node-1", "l02.dev/runtime-gvisor": "true" }))
        const created = yield* Effect.acquireRelease(backend.provision(specFor({ agentId: randomUUID(), command: shellPrograms.echoLoop })), (info) =>
          Effect.ignore(backend.remove(info.sandboxId))
        )
        // The node loses the label in the 300 ms before the scheduler looks.
        yield* Effect.promise(() => nodeLabels({ "kubernetes.io/hostname": "node-1" }))
        const t0 = Date.now()
        const error = yield* Effect.flip(backend.start(created.sandboxId))
        expect(error).toMatchObject({ _tag: "RuntimeClassUnavailable", code: "E2041", runtimeClass: "gvisor" })
        expect(error.message).toContain("didn't match Pod's node affinity")
        expect(Date.now() - t0, "at once, not after the start timeout").toBeLessThan(5_000)
      })
    ))

  it("a node whose container runtime lacks the handler (FailedCreatePodSandBox) fails start at once with E2041 naming it", { timeout: 30_000 }, () =>
    runHere((backend) =>
      Effect.gen(function* () {
        const spec = specFor({ agentId: randomUUID(), command: shellPrograms.echoLoop }, "UNTRUSTED")
        const created = yield* Effect.acquireRelease(backend.provision({ ...spec, sandbox: { ...spec.sandbox, runtimeClass: "kata" } }), (info) =>
          Effect.ignore(backend.remove(info.sandboxId))
        )
        const t0 = Date.now()
        const error = yield* Effect.flip(backend.start(created.sandboxId))
        expect(error).toMatchObject({ _tag: "RuntimeClassUnavailable", code: "E2041", runtimeClass: "kata" })
        expect(error.message).toContain('RuntimeHandler "runsc-missing" not supported')
        expect(error.message).toContain("node-1")
        expect(Date.now() - t0, "at once, not after the start timeout").toBeLessThan(5_000)
      })
    ))

  it("a Pod no node has room for waits (room may free up), and when the wait runs out says what is short", { timeout: 30_000 }, () =>
    run((backend) =>
      Effect.gen(function* () {
        const spec = specFor({ agentId: randomUUID(), command: shellPrograms.echoLoop }, "TRUSTED")
        const big = { ...spec, sandbox: { ...spec.sandbox, resources: { ...spec.sandbox.resources, cpu: "64", cpuMillis: 64_000 } } }
        const created = yield* Effect.acquireRelease(backend.provision(big), (info) => Effect.ignore(backend.remove(info.sandboxId)))
        const t0 = Date.now()
        const error = yield* Effect.flip(backend.start(created.sandboxId))
        expect(error).toMatchObject({ code: "E2046" })
        expect(error.message).toContain('the scheduler says "0/1 nodes are available: 1 Insufficient cpu."')
        expect(Date.now() - t0, "the whole wait").toBeGreaterThanOrEqual(1_500)
      })
    , simulatorLayer(placement.current, { startTimeoutMs: 1_500 })))
})

describe("Kubernetes backend: fail closed, input refused before any call", () => {
  it("a RuntimeClass the cluster lacks is E2041 naming what to install, and nothing is created", { timeout: 30_000 }, () =>
    run((backend) =>
      Effect.gen(function* () {
        const sim = simulator.current()
        const before = sim.requests.length
        const spec = specFor({ agentId: randomUUID() }, "UNTRUSTED")
        const error = yield* Effect.flip(backend.provision({ ...spec, sandbox: { ...spec.sandbox, runtimeClass: "kata" } }))
        expect(error).toMatchObject({ _tag: "RuntimeClassUnavailable", code: "E2041" })
        expect(error.message).toContain("node.k8s.io/v1 runtimeclasses")
        expect(error.message).toContain("config/kubernetes/runtimeclass-kata.yaml")
        expect(sim.requests.slice(before)).toEqual(["GET /apis/node.k8s.io/v1/runtimeclasses/kata"])
        // An installed RuntimeClass is named on the Pod.
        const gvisor = yield* Effect.acquireRelease(backend.provision(specFor({ agentId: randomUUID(), command: shellPrograms.echoLoop })), (info) =>
          Effect.ignore(backend.remove(info.sandboxId))
        )
        expect(sim.get("pods", namespace, gvisor.sandboxId)?.spec.runtimeClassName).toBe("gvisor")
        const capabilities = yield* backend.capabilities
        expect([...capabilities.runtimeClasses].sort()).toEqual(["gvisor", "runc"])
      })
    ))

  it("labels, names and ids Kubernetes would reject are refused with a code before any request", { timeout: 30_000 }, () =>
    run((backend) =>
      Effect.gen(function* () {
        const sim = simulator.current()
        const before = sim.requests.length
        const badLabel = yield* Effect.flip(backend.provision(specFor({ agentId: randomUUID(), labels: { "team/with/slashes": "x" } })))
        expect(badLabel).toMatchObject({ code: "E2040", key: "labels" })
        const longValue = yield* Effect.flip(backend.provision(specFor({ agentId: randomUUID(), labels: { team: "x".repeat(64) } })))
        expect(longValue.message).toContain("at most 63 characters")
        const badValue = yield* Effect.flip(backend.provision(specFor({ agentId: randomUUID(), labels: { team: "-leading-dash" } })))
        expect(badValue).toMatchObject({ code: "E2040" })
        const badId = yield* Effect.flip(backend.inspect("Not_A_Pod"))
        expect(badId).toMatchObject({ code: "E2040", key: "sandboxId" })
        const badSelector = yield* Effect.flip(backend.list({ "bad key": "x" }))
        expect(badSelector).toMatchObject({ code: "E2040", key: "labels" })
        const badImage = yield* Effect.flip(backend.provision(specFor({ agentId: randomUUID(), image: "has space:1" })))
        expect(badImage).toMatchObject({ code: "E2040", key: "image" })
        const noId = yield* Effect.flip(backend.provision(specFor({ agentId: "zzzz" })))
        expect(noId).toMatchObject({ code: "E2040", key: "agentId" })
        yield* backend.remove("Not_A_Pod")
        expect(sim.requests.slice(before), "nothing reached the API server").toEqual([])
      })
    ))

  it("an agent name Kubernetes would reject becomes a DNS-1123 Pod name, kept as given in an annotation", { timeout: 30_000 }, () =>
    run((backend) =>
      Effect.gen(function* () {
        const agentId = randomUUID()
        const name = "Ünïcode Agent_#1 with a name far longer than sixty-three characters, really"
        const sandbox = yield* Effect.acquireRelease(backend.provision(specFor({ agentId, name, command: shellPrograms.echoLoop })), (info) =>
          Effect.ignore(backend.remove(info.sandboxId))
        )
        expect(sandbox.sandboxId).toMatch(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/)
        expect(sandbox.sandboxId.length).toBeLessThanOrEqual(63)
        expect(sandbox.sandboxId.endsWith(agentId.replaceAll("-", "").slice(0, 12))).toBe(true)
        expect(simulator.current().get("pods", namespace, sandbox.sandboxId)?.metadata.annotations["l02.dev/agent-name"]).toBe(name)
      })
    ))
})

describe("Kubernetes backend: lifecycle on the cluster", () => {
  it("stop sets activeDeadlineSeconds, the Pod ends (143 from SIGTERM) and stays, with no exited event; remove deletes Pod and NetworkPolicy", { timeout: 30_000 }, () =>
    run((backend) =>
      Effect.gen(function* () {
        const sim = simulator.current()
        const seen: Array<SandboxEvent> = []
        yield* Effect.forkChild(Stream.runForEach(backend.events, (e) => Effect.sync(() => seen.push(e))), { startImmediately: true })
        const sandbox = yield* started(backend, specFor({ agentId: randomUUID(), command: shellPrograms.echoLoop }))
        yield* backend.stop(sandbox.sandboxId, { graceMs: 2000 })
        const pod = sim.get("pods", namespace, sandbox.sandboxId)
        expect(pod?.spec.activeDeadlineSeconds).toBeGreaterThanOrEqual(1)
        expect(pod?.status).toMatchObject({ phase: "Failed", reason: "DeadlineExceeded" })
        expect(yield* backend.inspect(sandbox.sandboxId)).toMatchObject({ status: "exited", exitCode: 143 })
        expect(sim.get("networkpolicies", namespace, sandbox.sandboxId)).toBeDefined()
        yield* backend.remove(sandbox.sandboxId)
        expect(sim.get("pods", namespace, sandbox.sandboxId)).toBeUndefined()
        expect(sim.get("networkpolicies", namespace, sandbox.sandboxId)).toBeUndefined()
        yield* Effect.sleep("300 millis")
        expect(seen.filter((e) => e.sandboxId === sandbox.sandboxId && (e.type === "exited" || e.type === "removed"))).toEqual([])
      })
    ))

  it("a persistent workspace claim retained on remove gives a recreated Pod the agent's files", { timeout: 30_000 }, () =>
    run(
      (backend) =>
        Effect.gen(function* () {
          const sim = simulator.current()
          const agentId = randomUUID()
          const spec = specFor({ agentId, command: shellPrograms.echoLoop })
          const first = yield* backend.start((yield* backend.provision(spec)).sandboxId)
          expect(sim.get("persistentvolumeclaims", namespace, `${first.sandboxId}-workspace`)?.spec.resources.requests.storage).toBe("1Gi")
          yield* Stream.runDrain(backend.exec(first.sandboxId, { command: shellPrograms.writeFile("kept.txt", "survives"), timeoutMs: 5000, maxOutputBytes: 1000 }))
          yield* backend.remove(first.sandboxId)
          expect(sim.get("persistentvolumeclaims", namespace, `${first.sandboxId}-workspace`)).toBeDefined()
          const second = yield* started(backend, spec)
          expect(second.sandboxId).toBe(first.sandboxId)
          const read = yield* Stream.runCollect(backend.exec(second.sandboxId, { command: shellPrograms.readFile("kept.txt"), timeoutMs: 5000, maxOutputBytes: 1000 }))
          expect([...read][0]).toEqual({ _tag: "stdout", data: "survives" })
        }),
      simulatorLayer(simulator.current, { workspace: { kind: "persistentVolumeClaim", size: "1Gi", retainOnRemove: true } })
    ))

  it("stats without metrics.k8s.io is E2046 saying to install metrics-server", { timeout: 30_000 }, async () => {
    const bare = await startKubeApiServer({ namespaces: [namespace], metrics: false })
    try {
      await run(
        (backend) =>
          Effect.gen(function* () {
            const sandbox = yield* started(backend, specFor({ agentId: randomUUID(), command: shellPrograms.echoLoop }, "TRUSTED"))
            const error = yield* Effect.flip(backend.stats(sandbox.sandboxId))
            expect(error).toMatchObject({ code: "E2046" })
            expect(error.message).toContain("metrics-server")
          }),
        simulatorLayer(() => bare)
      )
    } finally {
      await bare.close()
    }
  })
})

describe("Kubernetes backend: warm pool claims", () => {
  const warmPod = (name: string, pool: string): V1Pod => ({
    metadata: { name, labels: { "l02.dev/pool": pool } },
    spec: { restartPolicy: "Never", containers: [{ name: "agent", image: "busybox:1.36", command: ["sleep", "30"] }] }
  })

  it("a relabel carrying a stale resourceVersion gets 409; of two concurrent claims of one Pod exactly one wins", { timeout: 30_000 }, async () => {
    const core = client()
    const pool = `p${randomUUID().slice(0, 8)}`
    const name = `warm-${pool}`
    const created = await core.createNamespacedPod({ namespace, body: warmPod(name, pool) })
    try {
      const server = simulator.current().url
      // Someone else relabels first; our copy is now stale.
      expect(await Effect.runPromise(relabel(core, created, { "l02.dev/note": "first" }, server))).toBe(true)
      expect(await Effect.runPromise(relabel(core, created, { "l02.dev/note": "second" }, server))).toBe(false)
      expect(simulator.current().get("pods", namespace, name)?.metadata.labels["l02.dev/note"]).toBe("first")

      const claims = await Promise.all(
        ["runtime-a", "runtime-b"].map((claimant) =>
          Effect.runPromise(claim(core, { namespace, selector: `l02.dev/pool=${pool}`, claimant, labels: { [OwnershipLabels.agentId]: randomUUID() }, server }))
        )
      )
      expect(claims.filter((c) => c === name)).toHaveLength(1)
      expect(claims.filter((c) => c === undefined)).toHaveLength(1)
      expect(["runtime-a", "runtime-b"]).toContain(simulator.current().get("pods", namespace, name)?.metadata.labels[claimedByLabel])
    } finally {
      await core.deleteNamespacedPod({ name, namespace, gracePeriodSeconds: 0 })
    }
  })

  it("with two warm Pods, two concurrent claims both win, each a different Pod", { timeout: 30_000 }, async () => {
    const core = client()
    const pool = `p${randomUUID().slice(0, 8)}`
    const names = [`warm-${pool}-1`, `warm-${pool}-2`]
    for (const name of names) await core.createNamespacedPod({ namespace, body: warmPod(name, pool) })
    try {
      const server = simulator.current().url
      const claims = await Promise.all(
        ["runtime-a", "runtime-b"].map((claimant) => Effect.runPromise(claim(core, { namespace, selector: `l02.dev/pool=${pool}`, claimant, labels: {}, server })))
      )
      expect([...claims].sort()).toEqual([...names].sort())
    } finally {
      for (const name of names) await core.deleteNamespacedPod({ name, namespace, gracePeriodSeconds: 0 })
    }
  })
})

describe("Kubernetes backend: connecting", () => {
  it("loads a kubeconfig file and context; a missing context or a wrong token is E2047 saying what to fix", { timeout: 30_000 }, async () => {
    const sim = simulator.current()
    const dir = mkdtempSync(join(tmpdir(), "l02-kubeconfig-"))
    const file = join(dir, "config")
    writeFileSync(
      file,
      [
        "apiVersion: v1",
        "kind: Config",
        "clusters:",
        `- name: sim\n  cluster:\n    server: ${sim.url}\n    insecure-skip-tls-verify: true`,
        "users:",
        `- name: good\n  user:\n    token: ${sim.token}`,
        "- name: bad\n  user:\n    token: wrong",
        "contexts:",
        "- name: ok\n  context:\n    cluster: sim\n    user: good",
        "- name: denied\n  context:\n    cluster: sim\n    user: bad",
        "current-context: denied"
      ].join("\n")
    )
    try {
      const listed = await run((backend) => backend.list({}), simulatorLayer(simulator.current, { server: undefined, kubeconfigPath: file, context: "ok" }))
      expect(Array.isArray(listed)).toBe(true)
      const denied = await run((backend) => Effect.flip(backend.list({})), simulatorLayer(simulator.current, { server: undefined, kubeconfigPath: file, context: "" }))
      expect(denied).toMatchObject({ code: "E2047" })
      expect(denied.message).toContain("401")
      const missing = await run((backend) => Effect.flip(backend.list({})), simulatorLayer(simulator.current, { server: undefined, kubeconfigPath: file, context: "nope" }))
      expect(missing).toMatchObject({ code: "E2047" })
      expect(missing.message).toContain('no context "nope" (it has ok, denied)')
      const down = await run((backend) => Effect.flip(backend.list({})), simulatorLayer(simulator.current, { server: "http://127.0.0.1:1" }))
      expect(down).toMatchObject({ code: "E2047" })
      expect(down.message).toContain("cannot reach the Kubernetes API at http://127.0.0.1:1")
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it("with no kubeconfig anywhere and outside a cluster, E2047 says where it looked (not a refused localhost:8080)", { timeout: 30_000 }, async () => {
    const home = mkdtempSync(join(tmpdir(), "l02-no-kube-"))
    const saved = { HOME: process.env.HOME, KUBECONFIG: process.env.KUBECONFIG, KUBERNETES_SERVICE_HOST: process.env.KUBERNETES_SERVICE_HOST }
    process.env.HOME = home
    delete process.env.KUBECONFIG
    delete process.env.KUBERNETES_SERVICE_HOST
    try {
      const error = await run((backend) => Effect.flip(backend.list({})), simulatorLayer(simulator.current, { server: undefined }))
      expect(error).toMatchObject({ code: "E2047" })
      expect(error.message).toContain("no kubeconfig or in-cluster service account found")
      expect(error.message).toContain(join(home, ".kube", "config"))
      expect(error.message).not.toContain("localhost:8080")
    } finally {
      for (const [key, value] of Object.entries(saved)) {
        if (value === undefined) delete process.env[key]
        else process.env[key] = value
      }
      rmSync(home, { recursive: true, force: true })
    }
  })
})
