// The pure parts of the Kubernetes backend: naming rules, quantities, exec status and Pod status mapping.
import type { V1ContainerState, V1Pod } from "@kubernetes/client-node"
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { exitCodeOfStatus } from "../../../src/backends/kubernetes/KubernetesBackend.ts"
import { dns1123LabelProblem, labelKeyProblem, labelValueProblem, podNameOf } from "../../../src/backends/kubernetes/KubernetesNames.ts"
import { eventsBetween, observe } from "../../../src/backends/kubernetes/internal/podStatus.ts"
import { parseQuantity } from "../../../src/domain/Quantity.ts"

describe("Kubernetes names", () => {
  it("a Pod name derived from any agent name and a UUID is a DNS-1123 label, stable per agent", () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 200 }), fc.uuid(), (name, agentId) => {
        const pod = podNameOf(name, agentId)
        expect(pod).toBeDefined()
        expect(dns1123LabelProblem(pod!)).toBeUndefined()
        expect(podNameOf(name, agentId)).toBe(pod)
      }),
      { numRuns: 300 }
    )
    expect(podNameOf("My Agent!", "0F1E2D3C-4B5A-6978-8796-a5b4c3d2e1f0")).toBe("my-agent-0f1e2d3c4b5a")
    expect(podNameOf("", "zzzz")).toBeUndefined()
  })

  it("label keys and values follow the API server's rules", () => {
    for (const ok of ["team", "l02.dev/agent-id", "a_b.c-d", "example.com/X"]) expect(labelKeyProblem(ok), ok).toBeUndefined()
    for (const bad of ["", "/x", "a/b/c", "Bad_Prefix.com/x", "-x", `${"k".repeat(64)}`, "x/"]) expect(labelKeyProblem(bad), bad).toBeDefined()
    for (const ok of ["", "v1", "A.b_c-d", "x".repeat(63)]) expect(labelValueProblem(ok), ok).toBeUndefined()
    for (const bad of ["-a", "a-", "has space", "x".repeat(64), "ü"]) expect(labelValueProblem(bad), bad).toBeDefined()
  })

  it("quantities parse with decimal and binary suffixes", () => {
    expect(parseQuantity("250m")).toBeCloseTo(0.25)
    expect(parseQuantity("123456789n")).toBeCloseTo(0.123456789)
    expect(parseQuantity("64Mi")).toBe(64 * 1024 * 1024)
    expect(parseQuantity("1G")).toBe(1e9)
    expect(parseQuantity("2")).toBe(2)
    expect(parseQuantity("lots")).toBeUndefined()
  })

  it("an exec's status gives its exit code: Success 0, NonZeroExitCode from its cause, else none", () => {
    expect(exitCodeOfStatus({ status: "Success" })).toBe(0)
    expect(exitCodeOfStatus({ status: "Failure", reason: "NonZeroExitCode", details: { causes: [{ reason: "ExitCode", message: "42" }] } })).toBe(42)
    expect(exitCodeOfStatus({ status: "Failure", reason: "InternalError", message: "executable file not found" })).toBeUndefined()
  })
})

describe("Pod status mapping", () => {
  const pod = (phase: string, agent: V1ContainerState, gate: V1ContainerState = { terminated: { exitCode: 0 } as never }): V1Pod => ({
    metadata: { name: "p", labels: {} },
    status: {
      phase,
      initContainerStatuses: [{ name: "l02-gate", state: gate, image: "i", imageID: "", ready: false, restartCount: 0 }],
      containerStatuses: [{ name: "agent", state: agent, image: "i", imageID: "", ready: false, restartCount: 0 }]
    }
  })
  const ids = { sandboxId: "p", agentId: "a" }

  it("maps gate, running, terminated and OOMKilled to the port's statuses", () => {
    expect(observe(pod("Pending", { waiting: { reason: "PodInitializing" } }, { running: {} })).status).toBe("created")
    expect(observe(pod("Running", { running: {} })).status).toBe("running")
    expect(observe(pod("Failed", { terminated: { exitCode: 3, reason: "Error" } as never }))).toMatchObject({ status: "exited", exitCode: 3, oomKilled: false })
    expect(observe(pod("Failed", { terminated: { exitCode: 137, reason: "OOMKilled" } as never }))).toMatchObject({ status: "exited", oomKilled: true })
    expect(observe(pod("Pending", { waiting: { reason: "PodInitializing" } }, { waiting: { reason: "ErrImagePull" } })).failing).toBe("ErrImagePull")
  })

  it("reports exits and failures as events, but not a baseline nor an end the runtime asked for", () => {
    const running = observe(pod("Running", { running: {} }))
    const oom = observe(pod("Failed", { terminated: { exitCode: 137, reason: "OOMKilled" } as never }))
    expect(eventsBetween(ids, undefined, oom, false, 1)).toEqual([])
    expect(eventsBetween(ids, running, oom, false, 1).map((e) => e.type)).toEqual(["oom", "exited"])
    expect(eventsBetween(ids, running, oom, true, 1)).toEqual([])
    const crashLoop = observe(pod("Running", { waiting: { reason: "CrashLoopBackOff" } }))
    expect(eventsBetween(ids, running, crashLoop, false, 1)).toEqual([{ ...ids, type: "health", healthy: false, at: 1 }])
  })
})
