/**
 * The Kubernetes objects of one agent's sandbox, as pure functions of its spec: the Pod, its
 * NetworkPolicy and, when the workspace is persistent, its PersistentVolumeClaim.
 *
 * The Pod runs the agent's program in the container `agent`, behind an init container `l02-gate`
 * that waits for a file on the Pod's /tmp volume: Kubernetes starts a Pod's containers as soon as it
 * is scheduled, while the port separates provision (where a checkpointed workspace is imported) from
 * start. The gate shares the workspace volume, so an import before start is an exec into the gate.
 */
import type { V1Container, V1NetworkPolicy, V1NetworkPolicyEgressRule, V1PersistentVolumeClaim, V1Pod, V1Volume } from "@kubernetes/client-node"
import { OwnershipLabels } from "../../domain/Ids.ts"
import { type SandboxSpec, sandboxLabels } from "../../services/SandboxBackend.ts"

/** The name of the container running the agent's program. */
export const agentContainer = "agent"
/** The name of the init container that holds the Pod until `start`. */
export const gateContainer = "l02-gate"
/** Where the workspace volume is mounted, in the agent and the gate container (env L02_WORKSPACE). */
export const workspacePath = "/workspace"
/** Where the Pod's writable scratch volume is mounted (env TMPDIR): the root filesystem is read-only. */
export const tmpPath = "/tmp"
/** The label selecting one sandbox's Pod, used by its NetworkPolicy. */
export const sandboxLabel = "l02.dev/sandbox"
/** The annotation keeping the agent's name as given (the Pod name is a DNS-safe derivative). */
export const agentNameAnnotation = "l02.dev/agent-name"
/** The annotation recording the trust level the sandbox was built for. */
export const trustLevelAnnotation = "l02.dev/trust-level"

/** The workspace volume of every sandbox: an emptyDir, or a PersistentVolumeClaim per agent. */
export type WorkspaceVolume =
  | { readonly kind: "emptyDir"; readonly sizeLimit?: string | undefined }
  | {
      readonly kind: "persistentVolumeClaim"
      readonly size: string
      readonly storageClassName?: string | undefined
      /** Keep the claim when the sandbox is removed, so a Pod recreated for the agent finds its files. */
      readonly retainOnRemove?: boolean | undefined
    }

/** Everything besides the spec that decides a sandbox's objects. */
export interface SandboxPlan {
  readonly name: string
  readonly namespace: string
  readonly image: string
  /** The RuntimeClass to name; undefined runs on the cluster's default handler (runc). */
  readonly runtimeClassName?: string | undefined
  readonly workspace: WorkspaceVolume
  readonly terminationGraceSeconds: number
  readonly imagePullPolicy: "Always" | "IfNotPresent" | "Never"
  readonly serviceAccountName?: string | undefined
  /** CIDRs the `restricted` policy may reach besides DNS. */
  readonly egressAllowCidrs: ReadonlyArray<string>
  /** Labels of the cluster's DNS Pods, the only destination of a restricted agent's DNS (any namespace). */
  readonly dnsPodLabels: Readonly<Record<string, string>>
}

/** The name of an agent's workspace claim. */
export const claimNameOf = (podName: string): string => `${podName}-workspace`

/** The labels of every object of the sandbox: the spec's and the ownership labels, plus the sandbox selector. */
export const objectLabels = (spec: SandboxSpec, plan: Pick<SandboxPlan, "name">): Record<string, string> => ({
  ...sandboxLabels(spec),
  [sandboxLabel]: plan.name
})

/** The script of the gate: wait for the file `$TMPDIR/.l02-start`; `sleep 0.2` keeps start latency low without a busy loop. */
export const gateScript = 'while [ ! -e "${TMPDIR:-/tmp}/.l02-start" ]; do sleep 0.2; done'

/** Kubernetes quantity for a byte count: whole Mi when exact, else bytes. */
const bytesQuantity = (bytes: number): string => (bytes % (1024 * 1024) === 0 ? `${bytes / (1024 * 1024)}Mi` : String(bytes))

/** The agent's Pod. */
export const podManifest = (spec: SandboxSpec, plan: SandboxPlan): V1Pod => {
  const { securityContext, resources } = spec.sandbox
  const containerSecurity = {
    runAsNonRoot: securityContext.runAsNonRoot,
    runAsUser: securityContext.runAsUser,
    runAsGroup: securityContext.runAsGroup,
    readOnlyRootFilesystem: securityContext.readOnlyRootFilesystem,
    allowPrivilegeEscalation: securityContext.allowPrivilegeEscalation,
    privileged: false,
    seccompProfile: { type: securityContext.seccompProfile },
    capabilities: { drop: [...securityContext.dropCapabilities] }
  }
  const quantities = { cpu: `${resources.cpuMillis}m`, memory: bytesQuantity(resources.memoryBytes) }
  const mounts = [
    { name: "workspace", mountPath: workspacePath },
    { name: "tmp", mountPath: tmpPath }
  ]
  const env = [
    ...Object.entries(spec.env)
      .filter(([name]) => name !== "L02_WORKSPACE" && name !== "TMPDIR")
      .map(([name, value]) => ({ name, value })),
    { name: "L02_WORKSPACE", value: workspacePath },
    { name: "TMPDIR", value: tmpPath }
  ]
  const agent: V1Container = {
    name: agentContainer,
    image: plan.image,
    imagePullPolicy: plan.imagePullPolicy,
    ...(spec.command === undefined ? {} : { command: [...spec.command] }),
    env,
    workingDir: workspacePath,
    stdin: true,
    stdinOnce: false,
    tty: false,
    resources: { requests: quantities, limits: quantities },
    securityContext: containerSecurity,
    volumeMounts: mounts
  }
  const gate: V1Container = {
    name: gateContainer,
    image: plan.image,
    imagePullPolicy: plan.imagePullPolicy,
    command: ["/bin/sh", "-c", gateScript],
    env,
    workingDir: workspacePath,
    resources: { requests: quantities, limits: quantities },
    securityContext: containerSecurity,
    volumeMounts: mounts
  }
  const workspace: V1Volume =
    plan.workspace.kind === "emptyDir"
      ? { name: "workspace", emptyDir: plan.workspace.sizeLimit === undefined ? {} : { sizeLimit: plan.workspace.sizeLimit } }
      : { name: "workspace", persistentVolumeClaim: { claimName: claimNameOf(plan.name) } }
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      name: plan.name,
      namespace: plan.namespace,
      labels: objectLabels(spec, plan),
      annotations: { [agentNameAnnotation]: spec.name, [trustLevelAnnotation]: spec.sandbox.trustLevel }
    },
    spec: {
      ...(plan.runtimeClassName === undefined ? {} : { runtimeClassName: plan.runtimeClassName }),
      restartPolicy: "Never",
      terminationGracePeriodSeconds: plan.terminationGraceSeconds,
      automountServiceAccountToken: false,
      enableServiceLinks: false,
      ...(plan.serviceAccountName === undefined ? {} : { serviceAccountName: plan.serviceAccountName }),
      securityContext: {
        runAsNonRoot: securityContext.runAsNonRoot,
        runAsUser: securityContext.runAsUser,
        runAsGroup: securityContext.runAsGroup,
        fsGroup: securityContext.runAsGroup,
        seccompProfile: { type: securityContext.seccompProfile }
      },
      // A sandbox nothing is imported into before its start needs no gate (the gate costs a container start and an exec).
      ...(spec.startImmediately === true ? {} : { initContainers: [gate] }),
      containers: [agent],
      volumes: [workspace, { name: "tmp", emptyDir: { medium: "Memory", sizeLimit: "64Mi" } }]
    }
  }
}

/** DNS to the cluster's DNS Pods only: port 53 on any other address (the node, 169.254.169.254) stays closed. */
const dnsEgress = (dnsPodLabels: Readonly<Record<string, string>>): V1NetworkPolicyEgressRule => ({
  to: [{ namespaceSelector: {}, podSelector: { matchLabels: { ...dnsPodLabels } } }],
  ports: [
    { protocol: "UDP", port: 53 },
    { protocol: "TCP", port: 53 }
  ]
})

/**
 * The agent's NetworkPolicy. Ingress is always denied (agents serve nobody). Egress: `isolated`
 * none, `restricted` DNS (port 53 UDP and TCP, to the cluster's DNS Pods) plus the configured CIDRs, `allow_egress` anywhere.
 */
export const networkPolicyManifest = (spec: SandboxSpec, plan: SandboxPlan): V1NetworkPolicy => {
  const policy = spec.sandbox.networkPolicy
  const egress: Array<V1NetworkPolicyEgressRule> =
    policy === "isolated"
      ? []
      : policy === "allow_egress"
        ? [{}]
        : [dnsEgress(plan.dnsPodLabels), ...(plan.egressAllowCidrs.length === 0 ? [] : [{ to: plan.egressAllowCidrs.map((cidr) => ({ ipBlock: { cidr } })) }])]
  return {
    apiVersion: "networking.k8s.io/v1",
    kind: "NetworkPolicy",
    metadata: {
      name: plan.name,
      namespace: plan.namespace,
      labels: objectLabels(spec, plan),
      annotations: { "l02.dev/network-policy": policy }
    },
    spec: {
      podSelector: { matchLabels: { [sandboxLabel]: plan.name } },
      policyTypes: ["Ingress", "Egress"],
      ingress: [],
      egress
    }
  }
}

/** The agent's workspace claim, when the workspace is a PersistentVolumeClaim. */
export const claimManifest = (spec: SandboxSpec, plan: SandboxPlan): V1PersistentVolumeClaim | undefined => {
  if (plan.workspace.kind !== "persistentVolumeClaim") return undefined
  return {
    apiVersion: "v1",
    kind: "PersistentVolumeClaim",
    metadata: { name: claimNameOf(plan.name), namespace: plan.namespace, labels: objectLabels(spec, plan) },
    spec: {
      accessModes: ["ReadWriteOnce"],
      ...(plan.workspace.storageClassName === undefined ? {} : { storageClassName: plan.workspace.storageClassName }),
      resources: { requests: { storage: plan.workspace.size } }
    }
  }
}

/** True when a Pod carries the labels of a sandbox (as opposed to any other Pod in the namespace). */
export const isSandboxPod = (pod: V1Pod): boolean => pod.metadata?.labels?.[OwnershipLabels.agentId] !== undefined
