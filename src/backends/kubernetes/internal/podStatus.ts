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
  // imagePullPolicy Never and the image is not on the node.
  "ErrImageNeverPull",
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

/** Why the scheduler cannot place a Pod (its PodScheduled condition is False with Unschedulable), if it cannot. */
export const unschedulable = (pod: V1Pod): string | undefined => {
  const condition = pod.status?.conditions?.find((c) => c.type === "PodScheduled")
  return condition?.status === "False" && condition.reason === "Unschedulable" ? (condition.message ?? "no node fits the Pod") : undefined
}

/** Whether a scheduling failure is only a lack of room (which other Pods ending, or new nodes, cure). */
export const lacksRoom = (reason: string): boolean => /Insufficient [a-z.\/-]+|Too many pods/i.test(reason) && !/didn't match|taint|affinity/i.test(reason)

/**
 * Whether a scheduling failure is the RuntimeClass's doing: the Pod asks for nodes only through the
 * RuntimeClass's scheduling.nodeSelector (merged into spec.nodeSelector at admission), and the
 * scheduler says no node matched it.
 */
export const runtimeClassUnplaceable = (pod: V1Pod, reason: string): boolean =>
  pod.spec?.runtimeClassName !== undefined &&
  Object.keys(pod.spec.nodeSelector ?? {}).length > 0 &&
  /node affinity|node selector|didn't match/i.test(reason)

/**
 * Whether the Pod is placed on a node that has not made its sandbox yet: the time in which the
 * kubelet's FailedCreatePodSandBox events (a runtime handler the node lacks, a network plugin that
 * fails) say what is wrong, and nothing in the Pod's status does.
 */
export const awaitingSandbox = (pod: V1Pod): boolean => {
  if (pod.status?.phase !== "Pending" || pod.spec?.nodeName === undefined || unschedulable(pod) !== undefined) return false
  const statuses = [...(pod.status.initContainerStatuses ?? []), ...(pod.status.containerStatuses ?? [])]
  return statuses.every((c) => c.state?.running === undefined && c.state?.terminated === undefined)
}

/** The message of a kubelet's failure to make a Pod's sandbox, and whether it is a runtime handler the node lacks. */
export interface SandboxCreationFailure {
  readonly message: string
  readonly handlerMissing: boolean
}

/** The newest FailedCreatePodSandBox among a Pod's events, if any. */
export const sandboxCreationFailure = (events: ReadonlyArray<{ readonly reason?: string | undefined; readonly message?: string | undefined }>): SandboxCreationFailure | undefined => {
  const failed = events.filter((e) => e.reason === "FailedCreatePodSandBox").at(-1)
  if (failed === undefined) return undefined
  const message = failed.message ?? "the kubelet could not create the Pod's sandbox"
  // dockershim: `RuntimeHandler "runsc" not supported`; containerd: `no runtime for "runsc" is configured`.
  return { message, handlerMissing: /RuntimeHandler .* not supported|no runtime for .* is configured|runtime handler/i.test(message) }
}
