/**
 * Claiming a pre-created ("warm") Pod for an agent by relabelling it with a resourceVersion
 * compare-and-swap: the update carries the version that was read, so of two runtimes claiming the
 * same Pod exactly one succeeds and the other gets 409 Conflict and tries the next candidate.
 */
import type { CoreV1Api, V1Pod } from "@kubernetes/client-node"
import * as Effect from "effect/Effect"
import { SandboxConfigInvalid, type SandboxError } from "../../domain/Errors.ts"
import { call, callOptional, statusOf, translate } from "./internal/kubeErrors.ts"
import { labelsProblem } from "./KubernetesNames.ts"

/** The label a claimed Pod carries: who claimed it. */
export const claimedByLabel = "l02.dev/claimed-by"

/** What to claim and how to mark it. */
export interface ClaimRequest {
  readonly namespace: string
  /** Selects the warm Pods (e.g. `l02.dev/pool=python`); unclaimed ones only are tried. */
  readonly selector: string
  /** The claimant, written to {@link claimedByLabel}. */
  readonly claimant: string
  /** More labels to put on the claimed Pod (the agent's ownership labels). */
  readonly labels: Readonly<Record<string, string>>
  /** For messages. */
  readonly server: string
}

/** One compare-and-swap relabel: succeeds only if the Pod is still at `pod`'s resourceVersion; a 409 is `false`. */
export const relabel = (core: CoreV1Api, pod: V1Pod, labels: Readonly<Record<string, string>>, server: string): Effect.Effect<boolean, SandboxError> => {
  const name = pod.metadata?.name ?? ""
  const namespace = pod.metadata?.namespace ?? ""
  const body: V1Pod = { ...pod, metadata: { ...pod.metadata, labels: { ...pod.metadata?.labels, ...labels } } }
  return Effect.tryPromise({ try: () => core.replaceNamespacedPod({ name, namespace, body }), catch: (e) => e }).pipe(
    Effect.as(true),
    Effect.catch((error) =>
      statusOf(error) === 409 ? Effect.succeed(false) : Effect.fail(translate(error, { server, namespace, operation: `relabel Pod ${name}`, sandboxId: name }))
    )
  )
}

const claimable = (pod: V1Pod): boolean =>
  pod.metadata?.labels?.[claimedByLabel] === undefined &&
  pod.metadata?.deletionTimestamp == null &&
  pod.status?.phase !== "Succeeded" &&
  pod.status?.phase !== "Failed"

/**
 * Claims one unclaimed Pod of the selector, trying the next when another claimant won; undefined
 * when none is left. A 409 is not proof of a lost race (the kubelet's status updates also move the
 * resourceVersion), so the Pod is read again and retried while it is still unclaimed.
 */
export const claim = (core: CoreV1Api, request: ClaimRequest): Effect.Effect<string | undefined, SandboxError> =>
  Effect.gen(function* () {
    const labels = { ...request.labels, [claimedByLabel]: request.claimant }
    const problem = labelsProblem(labels)
    if (problem !== undefined) return yield* new SandboxConfigInvalid({ message: `cannot claim a warm Pod: ${problem}`, key: "labels" })
    const ctx = { server: request.server, namespace: request.namespace, operation: `list warm Pods (${request.selector})` }
    const pods = yield* call(ctx, () => core.listNamespacedPod({ namespace: request.namespace, labelSelector: `${request.selector},!${claimedByLabel}` }))
    for (const candidate of pods.items) {
      let pod: V1Pod | undefined = candidate
      // A 409 also comes from the kubelet's status updates: re-read, and only a claim by someone else moves on.
      for (let attempt = 0; attempt < 5 && pod !== undefined && claimable(pod); attempt++) {
        if (yield* relabel(core, pod, labels, request.server)) return pod.metadata?.name
        const name: string = pod.metadata?.name ?? ""
        pod = yield* callOptional<V1Pod>({ ...ctx, operation: `read warm Pod ${name}` }, () => core.readNamespacedPod({ name, namespace: request.namespace }))
      }
    }
    return undefined
  })
