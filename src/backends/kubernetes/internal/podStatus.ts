// Pure functions from a Pod object to what the port reports: its SandboxInfo, and the events a
// change between two observations of it means. The watcher and every read use these alone.
import type { V1ContainerStatus, V1Pod } from "@kubernetes/client-node"
import { OwnershipLabels } from "../../../domain/Ids.ts"
import type { SandboxEvent, SandboxInfo, SandboxStatus } from "../../../services/SandboxBackend.ts"
import { agentContainer, gateContainer } from "../SandboxManifests.ts"

/** Waiting reasons that mean the container will not run without someone fixing something. */
export const failingWaitingReasons: ReadonlySet<string> = new Set([
  "CrashLoopBackOff",
  "ErrImagePull",
  "ImagePullBackOff",
  "InvalidImageName",
  "CreateContainerConfigError",
  "CreateContainerError",
  "RunContainerError"
])

/** The condensed state of a sandbox Pod, enough to compare two observations. */
export interface PodObservation {
  readonly status: SandboxStatus
  readonly exitCode?: number | undefined
  readonly oomKilled: boolean
  /** A failing waiting reason of the agent or gate container, if any. */
  readonly failing?: string | undefined
}

const containerStatus = (pod: V1Pod, name: string): V1ContainerStatus | undefined =>
  [...(pod.status?.containerStatuses ?? []), ...(pod.status?.initContainerStatuses ?? [])].find((c) => c.name === name)

/** What a Pod's state means for the port. */
export const observe = (pod: V1Pod): PodObservation => {
  const agent = containerStatus(pod, agentContainer)
  const gate = containerStatus(pod, gateContainer)
  const terminated = agent?.state?.terminated
  const failing = [agent?.state?.waiting?.reason, gate?.state?.waiting?.reason].find((reason) => reason !== undefined && failingWaitingReasons.has(reason))
  const phase = pod.status?.phase
  // A Pod being deleted is removed, whatever its containers do meanwhile: on a real kubelet a
  // graceful deletion stops them (SIGTERM, exit 143) before the object goes.
  if (pod.metadata?.deletionTimestamp !== undefined && pod.metadata.deletionTimestamp !== null) return { status: "removed", oomKilled: false, failing }
  if (terminated !== undefined) {
    return { status: "exited", exitCode: terminated.exitCode, oomKilled: terminated.reason === "OOMKilled", failing }
  }
  if (phase === "Succeeded" || phase === "Failed") {
    // Ended before the agent container ran (gate killed, deadline before start): no exit code of the program.
    const gateEnd = gate?.state?.terminated
    return { status: "exited", exitCode: gateEnd?.exitCode ?? 137, oomKilled: gateEnd?.reason === "OOMKilled", failing }
  }
  if (agent?.state?.running !== undefined) return { status: "running", oomKilled: false, failing }
  return { status: "created", oomKilled: false, failing }
}

/** The port's view of a sandbox Pod. */
export const sandboxInfoOf = (pod: V1Pod): SandboxInfo => {
  const labels = pod.metadata?.labels ?? {}
  const observation = observe(pod)
  return {
    sandboxId: pod.metadata?.name ?? "",
    agentId: labels[OwnershipLabels.agentId] ?? "",
    runtimeId: labels[OwnershipLabels.runtimeId] ?? "",
    status: observation.status,
    labels,
    ...(observation.status === "exited" ? { exitCode: observation.exitCode, oomKilled: observation.oomKilled } : {})
  }
}

/**
 * The events a change from `before` (undefined: first seen) to `after` means. An end the runtime
 * caused itself (`expected`) is not reported as an exit or a removal. A first observation reports
 * nothing: it is the baseline a watcher starts from. A deletion someone else started is `removed` at
 * once (not when the object finally goes, nor as the exit its stopped containers show meanwhile).
 */
export const eventsBetween = (
  ids: { readonly sandboxId: string; readonly agentId: string },
  before: PodObservation | undefined,
  after: PodObservation,
  expected: boolean,
  at: number
): ReadonlyArray<SandboxEvent> => {
  if (before === undefined) return []
  const events: Array<SandboxEvent> = []
  if (after.failing !== undefined && after.failing !== before.failing) events.push({ ...ids, type: "health", healthy: false, at })
  if (before.status !== "running" && after.status === "running") events.push({ ...ids, type: "started", at })
  if (before.status !== "removed" && after.status === "removed" && !expected) events.push({ ...ids, type: "removed", at })
  if (before.status !== "exited" && after.status === "exited" && !expected) {
    if (after.oomKilled) events.push({ ...ids, type: "oom", exitCode: after.exitCode, at })
    events.push({ ...ids, type: "exited", exitCode: after.exitCode, at })
  }
  return events
}
