// Shared by the suites that run on a real Kubernetes cluster: the gate (L02_TEST_KUBECONFIG names the
// kubeconfig of the identity the runtime uses, the restricted one config/kubernetes/rbac.yaml binds),
// an admin client for what a test sets up around the backend (RuntimeClasses, node labels), and the
// backend's layer. `.ci/run` brings up the single-node cluster of ../shared/k8s-cluster and sets both.
import { CoreV1Api, KubeConfig, NetworkingV1Api, NodeV1Api, PatchStrategy, setHeaderOptions } from "@kubernetes/client-node"
import type { Layer } from "effect"
import * as KubernetesBackend from "../../../src/backends/kubernetes/KubernetesBackend.ts"
import type { SandboxBackend, SandboxSpec } from "../../../src/services/SandboxBackend.ts"

/** The kubeconfig the backend connects with; unset: the real-cluster suites skip (CI sets it, so there they are required). */
export const clusterKubeconfig = process.env.L02_TEST_KUBECONFIG ?? ""

/** Whether the real-cluster suites run. */
export const clusterEnabled = clusterKubeconfig !== ""

/** The namespace of the sandboxes (config/kubernetes/namespace.yaml). */
export const clusterNamespace = process.env.L02_TEST_KUBE_NAMESPACE ?? "l02-agents"

/** The image the Pods run; it must be on the nodes already (nothing is pulled on these machines). */
export const clusterImage = process.env.L02_TEST_KUBE_IMAGE ?? "l02-agent:latest"

/** Clients with the admin identity (L02_TEST_KUBECONFIG_ADMIN, else the backend's own kubeconfig). */
export const adminClients = () => {
  const kc = new KubeConfig()
  kc.loadFromFile(process.env.L02_TEST_KUBECONFIG_ADMIN ?? clusterKubeconfig)
  return { core: kc.makeApiClient(CoreV1Api), node: kc.makeApiClient(NodeV1Api), networking: kc.makeApiClient(NetworkingV1Api) }
}

/** The backend on the cluster, as an operator would configure it there. */
export const clusterLayer = (options: Partial<KubernetesBackend.KubernetesBackendOptions> = {}): Layer.Layer<SandboxBackend> =>
  KubernetesBackend.layer({
    kubeconfigPath: clusterKubeconfig,
    namespace: clusterNamespace,
    defaultImage: clusterImage,
    imagePullPolicy: "IfNotPresent",
    terminationGraceSeconds: 2,
    startTimeoutMs: 60_000,
    ...options
  })

/** The node every Pod of a single-node cluster runs on (the first listed). */
export const firstNodeName = async (): Promise<string> => {
  const nodes = await adminClients().core.listNode()
  const name = nodes.items[0]?.metadata?.name
  if (name === undefined) throw new Error("the cluster has no node")
  return name
}

/** Sets (a string) or removes (undefined) labels of a node with a merge patch, as `kubectl label` does. */
export const labelNode = async (name: string, labels: Readonly<Record<string, string | undefined>>): Promise<void> => {
  const body = { metadata: { labels: Object.fromEntries(Object.entries(labels).map(([k, v]) => [k, v ?? null])) } }
  await adminClients().core.patchNode({ name, body }, setHeaderOptions("Content-Type", PatchStrategy.MergePatch))
}

/** A spec sized for a small test node (a tenth of a core, 64Mi), so the suites' Pods fit side by side. */
export const clusterSpec = (spec: SandboxSpec): SandboxSpec => ({
  ...spec,
  sandbox: { ...spec.sandbox, resources: { ...spec.sandbox.resources, cpu: "100m", cpuMillis: 100, memory: "64Mi", memoryBytes: 64 * 1024 * 1024 } }
})
