/**
 * The Kubernetes sandbox backend: each agent is one Pod (with its own NetworkPolicy and, when
 * configured, its own workspace PersistentVolumeClaim) in one namespace, through
 * @kubernetes/client-node. Runtime classes map to RuntimeClasses checked on the cluster before any
 * object is created; exec and attach use the API server's WebSocket channel protocol; a list-then-watch
 * loop (resourceVersion, bookmarks, reconnect, relist on 410 Gone) turns Pod status into events.
 *
 * Kubernetes cannot pause a Pod: `pause` is refused with E2046, and suspend is a checkpoint (the
 * workspace archive, exported by running `tar` in the Pod) followed by `remove`; resume provisions a
 * new Pod and imports the archive before `start`. `stop` sets the Pod's activeDeadlineSeconds so the
 * kubelet ends it (SIGTERM, then SIGKILL after terminationGracePeriodSeconds) and the Pod object stays
 * to be inspected, as a stopped container does.
 *
 * @example
 * ```ts
 * const backend = KubernetesBackend.layer({ kubeconfigPath: "~/.kube/config", context: "prod", namespace: "l02-agents" })
 * ```
 */
import { randomUUID } from "node:crypto"
import { existsSync } from "node:fs"
import { isIP } from "node:net"
import { homedir } from "node:os"
import { join } from "node:path"
import { PassThrough, type Readable, Writable } from "node:stream"
import {
  Attach,
  CoreV1Api,
  CustomObjectsApi,
  Exec,
  KubeConfig,
  NetworkingV1Api,
  NodeV1Api,
  type V1Pod,
  type V1Status
} from "@kubernetes/client-node"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as PubSub from "effect/PubSub"
import * as Queue from "effect/Queue"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import {
  BackendUnavailable,
  ResourceLimitsInvalid,
  RuntimeClassUnavailable,
  SandboxConfigInvalid,
  SandboxOperationFailed,
  SecurityContextViolation,
  SpawnFailed,
  type SandboxError
} from "../../domain/Errors.ts"
import { OwnershipLabels } from "../../domain/Ids.ts"
import type { RuntimeConfig } from "../../domain/RuntimeConfig.ts"
import {
  type Attachment,
  type BackendCapabilities,
  type ExecChunk,
  type ExecRequest,
  type OutputLine,
  SandboxBackend,
  type SandboxBackendShape,
  type SandboxEvent,
  type SandboxInfo,
  type SandboxSpec,
  type SandboxStats
} from "../../services/SandboxBackend.ts"
import { ArchiveInvalid, readTar, writeTar } from "../../services/WorkspaceArchive.ts"
import { execInputOf } from "./internal/execInput.ts"
import { execKiller, exportScript, importScript, openGateScript, wrappedCommand } from "./internal/execScripts.ts"
import { apiReason, call, type CallContext, callOptional, statusOf, translate } from "./internal/kubeErrors.ts"
import {
  awaitingSandbox,
  eventsBetween,
  lacksRoom,
  observe,
  type PodObservation,
  runtimeClassUnplaceable,
  sandboxCreationFailure,
  sandboxInfoOf,
  unschedulable
} from "./internal/podStatus.ts"
import { startPodWatch, type PodWatch } from "./internal/podWatch.ts"
import { parseQuantity } from "../../domain/Quantity.ts"
import { dns1123LabelProblem, dns1123SubdomainProblem, labelsProblem, podNameOf } from "./KubernetesNames.ts"
import {
  agentContainer,
  claimManifest,
  claimNameOf,
  gateContainer,
  networkPolicyManifest,
  objectLabels,
  podManifest,
  type SandboxPlan,
  type WorkspaceVolume
} from "./SandboxManifests.ts"

/** Options of the Kubernetes backend; every field has the default of config/default_config.yaml. */
export interface KubernetesBackendOptions {
  /** A loaded client configuration; wins over every other way to connect. */
  readonly kubeConfig?: KubeConfig | undefined
  /** A kubeconfig file; empty or undefined: in-cluster service account when running in a Pod, else ~/.kube/config or KUBECONFIG. */
  readonly kubeconfigPath?: string | undefined
  /** The kubeconfig context to use; empty or undefined: the file's current context. */
  readonly context?: string | undefined
  /** Use the Pod's service account (token and CA under /var/run/secrets/kubernetes.io/serviceaccount). */
  readonly inCluster?: boolean | undefined
  /** An API server URL with a bearer token, instead of a kubeconfig. */
  readonly server?: string | undefined
  readonly token?: string | undefined
  /** The API server's CA certificate, base64 PEM, with `server`. */
  readonly caData?: string | undefined
  readonly skipTlsVerify?: boolean | undefined
  /** The namespace of the sandboxes. Default `l02-agents`. */
  readonly namespace?: string | undefined
  /** The image of agents that name none. Default `l02-agent:latest`. */
  readonly defaultImage?: string | undefined
  /** Runtime class -> RuntimeClass name; "" runs on the cluster's default handler. Default {@link defaultRuntimeClasses}. */
  readonly runtimeClasses?: Readonly<Record<string, string>> | undefined
  /** CIDRs the `restricted` network policy may reach besides DNS. Default none. */
  readonly egressAllowCidrs?: ReadonlyArray<string> | undefined
  /** Labels of the cluster's DNS Pods (default `k8s-app: kube-dns`). */
  readonly dnsPodLabels?: Readonly<Record<string, string>> | undefined
  /** The workspace volume. Default an emptyDir. */
  readonly workspace?: WorkspaceVolume | undefined
  /** The Pod's terminationGracePeriodSeconds: how long `stop` waits after SIGTERM before SIGKILL. Default 30. */
  readonly terminationGraceSeconds?: number | undefined
  readonly imagePullPolicy?: "Always" | "IfNotPresent" | "Never" | undefined
  /** The service account of agent Pods (its token is never mounted). Default the namespace's default. */
  readonly serviceAccountName?: string | undefined
  /** How long `start` and `importWorkspace` wait for a Pod's container to run. Default 120 s (image pulls). */
  readonly startTimeoutMs?: number | undefined
  /** First delay of the watch loop's reconnects. Default 200 ms. */
  readonly watchRetryMs?: number | undefined
}

/** An exec that ended with a silent 126: it reached a container instance being replaced (see runIdempotent). */
class ReplacedContainer {
  readonly _tag = "ReplacedContainer"
  readonly result: { readonly stdout: Buffer; readonly stderr: string; readonly exitCode: number }
  constructor(result: ReplacedContainer["result"]) {
    this.result = result
  }
}

/** The runtime class -> RuntimeClass mapping of the seed: runc is the cluster's default handler. */
export const defaultRuntimeClasses: Readonly<Record<string, string>> = {
  runc: "",
  gvisor: "gvisor",
  kata: "kata",
  "kata-cc": "kata-cc"
}

/** The backend's options from the `kubernetes:` section of the runtime configuration. */
export const optionsFromConfig = (config: RuntimeConfig["kubernetes"]): KubernetesBackendOptions => ({
  kubeconfigPath: config.kubeconfig,
  context: config.context,
  namespace: config.namespace,
  defaultImage: config.default_image,
  runtimeClasses: config.runtime_classes,
  egressAllowCidrs: config.egress_allow_cidrs,
  dnsPodLabels: config.dns_pod_labels,
  workspace:
    config.workspace.volume === "persistentVolumeClaim"
      ? {
          kind: "persistentVolumeClaim",
          size: config.workspace.size,
          storageClassName: config.workspace.storage_class === "" ? undefined : config.workspace.storage_class,
          retainOnRemove: config.workspace.retain_on_remove
        }
      : { kind: "emptyDir", sizeLimit: config.workspace.size },
  terminationGraceSeconds: config.termination_grace_seconds,
  imagePullPolicy: config.image_pull_policy,
  serviceAccountName: config.service_account === "" ? undefined : config.service_account
})

const expandHome = (path: string) => (path.startsWith("~/") ? `${process.env.HOME ?? ""}${path.slice(1)}` : path)

/** The client configuration the options name; throws with a message saying what to fix. */
export const kubeConfigFor = (options: KubernetesBackendOptions): KubeConfig => {
  if (options.kubeConfig !== undefined) return options.kubeConfig
  const kc = new KubeConfig()
  if (options.server !== undefined && options.server !== "") {
    kc.loadFromOptions({
      clusters: [{ name: "l02", server: options.server, skipTLSVerify: options.skipTlsVerify ?? false, ...(options.caData === undefined ? {} : { caData: options.caData }) }],
      users: [{ name: "l02", ...(options.token === undefined ? {} : { token: options.token }) }],
      contexts: [{ name: "l02", cluster: "l02", user: "l02" }],
      currentContext: "l02"
    })
    return kc
  }
  if (options.inCluster === true) {
    kc.loadFromCluster()
    return kc
  }
  if (options.kubeconfigPath !== undefined && options.kubeconfigPath !== "") kc.loadFromFile(expandHome(options.kubeconfigPath))
  else {
    // The client's default, with nothing found, is http://localhost:8080: say where we looked instead.
    const fromEnv = process.env.KUBECONFIG ?? ""
    const home = join(homedir(), ".kube", "config")
    const inCluster = (process.env.KUBERNETES_SERVICE_HOST ?? "") !== "" && existsSync("/var/run/secrets/kubernetes.io/serviceaccount/token")
    if (fromEnv === "" && !existsSync(home) && !inCluster) {
      throw new Error(
        `no kubeconfig or in-cluster service account found: KUBECONFIG is unset, ${home} does not exist, and this process is not in a Pod with a service account (KUBERNETES_SERVICE_HOST unset); set kubernetes.kubeconfig to a kubeconfig file, or run inside the cluster`
      )
    }
    kc.loadFromDefault()
  }
  if (options.context !== undefined && options.context !== "") {
    if (kc.getContextObject(options.context) === null) {
      throw new Error(`the kubeconfig has no context "${options.context}" (it has ${kc.getContexts().map((c) => c.name).join(", ") || "none"}); set kubernetes.context to one of them`)
    }
    kc.setCurrentContext(options.context)
  }
  if (kc.getCurrentCluster() === null) throw new Error("no Kubernetes cluster configured: set kubernetes.kubeconfig to a kubeconfig file, or run inside a Pod with a service account")
  return kc
}

/** A CIDR's problem, or undefined when it is one (IPv4 or IPv6 with a prefix length in range). */
const cidrProblem = (cidr: string): string | undefined => {
  const [address, prefix, ...rest] = cidr.split("/")
  const family = isIP(address ?? "")
  if (rest.length > 0 || prefix === undefined || family === 0 || !/^\d{1,3}$/.test(prefix)) return "is not a CIDR like 10.0.0.0/8"
  if (Number(prefix) > (family === 4 ? 32 : 128)) return `has a prefix longer than ${family === 4 ? 32 : 128}`
  return undefined
}

/** The exit code in an exec's status: Success is 0, a NonZeroExitCode carries it in its causes. */
export const exitCodeOfStatus = (status: V1Status): number | undefined => {
  if (status.status === "Success") return 0
  const cause = status.details?.causes?.find((c) => c.reason === "ExitCode")
  const code = cause?.message === undefined ? Number.NaN : Number(cause.message)
  return Number.isInteger(code) ? code : undefined
}

/** The longest prefix of `bytes` of at most `limit` bytes that does not cut a UTF-8 sequence. */
const utf8Prefix = (bytes: Buffer, limit: number): Buffer => {
  if (bytes.length <= limit) return bytes
  let end = Math.max(0, limit)
  while (end > 0 && (bytes[end]! & 0xc0) === 0x80) end -= 1
  return bytes.subarray(0, end)
}

const sink = (onChunk: (chunk: Buffer) => void) =>
  new Writable({
    write(chunk: Buffer, _encoding, done) {
      onChunk(chunk)
      done()
    }
  })

interface Clients {
  readonly core: CoreV1Api
  readonly networking: NetworkingV1Api
  readonly nodeApi: NodeV1Api
  readonly custom: CustomObjectsApi
  readonly kc: KubeConfig
  readonly exec: Exec
  readonly attach: Attach
}

/** Builds the Kubernetes backend's service. Nothing is asked of the API server until the first operation. */
export const make = (options: KubernetesBackendOptions = {}): Effect.Effect<SandboxBackendShape, never, Scope.Scope> =>
  Effect.gen(function* () {
    const namespace = options.namespace ?? "l02-agents"
    const runtimeClasses = options.runtimeClasses ?? defaultRuntimeClasses
    const egressAllowCidrs = options.egressAllowCidrs ?? []
    const dnsPodLabels = options.dnsPodLabels ?? { "k8s-app": "kube-dns" }
    const workspace: WorkspaceVolume = options.workspace ?? { kind: "emptyDir" }
    const terminationGraceSeconds = options.terminationGraceSeconds ?? 30
    const startTimeoutMs = options.startTimeoutMs ?? 120_000
    let kc: KubeConfig | undefined
    let configProblem: string | undefined
    try {
      kc = kubeConfigFor(options)
    } catch (error) {
      configProblem = error instanceof Error ? error.message : String(error)
    }
    const server = kc?.getCurrentCluster()?.server ?? "(unconfigured)"
    const core = kc?.makeApiClient(CoreV1Api)
    const networking = kc?.makeApiClient(NetworkingV1Api)
    const nodeApi = kc?.makeApiClient(NodeV1Api)
    const custom = kc?.makeApiClient(CustomObjectsApi)
    const execClient = kc === undefined ? undefined : new Exec(kc)
    const attachClient = kc === undefined ? undefined : new Attach(kc)

    /** Pods whose end the runtime asked for (stop, remove): not reported as exits. */
    const expectedEnds = new Set<string>()
    /** Pods being removed by the runtime: their deletion is not reported. */
    const removing = new Set<string>()
    const events = yield* PubSub.unbounded<SandboxEvent>()
    const observed = new Map<string, PodObservation>()
    let watcher: PodWatch | undefined
    yield* Effect.addFinalizer(() => Effect.sync(() => watcher?.stop()))
    /** Waits on a Pod (waitForPod) that the watch loop wakes when it sees the Pod change. */
    const wakers = new Map<string, Set<() => void>>()
    const wake = (name: string) => {
      for (const f of [...(wakers.get(name) ?? [])]) f()
    }
    /** Sleeps up to `ms`, or until the watch loop sees a change of the Pod. */
    const pauseFor = (sandboxId: string, ms: number) =>
      Effect.callback<void>((resume) => {
        const set = wakers.get(sandboxId) ?? new Set<() => void>()
        wakers.set(sandboxId, set)
        const forget = () => {
          clearTimeout(timer)
          set.delete(done)
          if (set.size === 0 && wakers.get(sandboxId) === set) wakers.delete(sandboxId)
        }
        const done = () => {
          forget()
          resume(Effect.void)
        }
        const timer = setTimeout(done, ms)
        set.add(done)
        return Effect.sync(forget)
      })

    const ctx = (operation: string, sandboxId?: string, agentId?: string): CallContext => ({ server, namespace, operation, sandboxId, agentId })

    /** The clients, or the configuration's problem as a coded error. */
    const clients = Effect.suspend((): Effect.Effect<Clients, SandboxError> => {
      if (configProblem !== undefined || core === undefined || networking === undefined || nodeApi === undefined || custom === undefined || kc === undefined) {
        return Effect.fail(new BackendUnavailable({ message: `the Kubernetes client configuration is unusable: ${configProblem ?? "not loaded"}` }))
      }
      const namespaceProblem = dns1123LabelProblem(namespace)
      if (namespaceProblem !== undefined) {
        return Effect.fail(new SandboxConfigInvalid({ message: `kubernetes.namespace "${namespace}" is not a valid namespace name: it ${namespaceProblem}`, key: "kubernetes.namespace" }))
      }
      return Effect.succeed({ core, networking, nodeApi, custom, kc, exec: execClient!, attach: attachClient! })
    })

    /** A sandbox id that cannot name a Pod is refused before any call. */
    const checkId = (sandboxId: string) => {
      const problem = dns1123SubdomainProblem(sandboxId)
      return problem === undefined
        ? Effect.void
        : Effect.fail(new SandboxConfigInvalid({ message: `"${sandboxId}" is not a sandbox id of the Kubernetes backend: a Pod name ${problem}`, key: "sandboxId" }))
    }

    const readPod = (sandboxId: string, operation = `read sandbox ${sandboxId}`) =>
      Effect.gen(function* () {
        yield* checkId(sandboxId)
        const { core } = yield* clients
        return yield* call(ctx(operation, sandboxId), () => core.readNamespacedPod({ name: sandboxId, namespace }))
      })

    /** Node labels as a label selector (`k=v,k2=v2`); "" for none. */
    const selectorOf = (labels: Readonly<Record<string, string>> | undefined) => Object.entries(labels ?? {}).map(([k, v]) => `${k}=${v}`).join(",")

    /** Whether some schedulable node carries the labels a RuntimeClass schedules onto (none asked: yes). */
    const nodesCanTake = (selector: string, what: string, agentId?: string) =>
      selector === ""
        ? Effect.succeed(true)
        : Effect.flatMap(clients, ({ core }) =>
          Effect.map(call(ctx(what, undefined, agentId), () => core.listNode({ labelSelector: selector })), (nodes) => nodes.items.some((n) => n.spec?.unschedulable !== true))
        )

    /** The runtime class (of the trust profiles) a RuntimeClass name stands for. */
    const runtimeClassOf = (runtimeClassName: string) => Object.entries(runtimeClasses).find(([, mapped]) => mapped === runtimeClassName)?.[0] ?? runtimeClassName

    /**
     * A Pod the scheduler cannot place, as a coded error: E2041 when its RuntimeClass's nodes are the
     * reason. A node short of room is no failure yet (other Pods end, nodes are added): the wait goes on,
     * and its timeout says what is short.
     */
    const placementFailure = (sandboxId: string, pod: V1Pod): SandboxError | undefined => {
      const reason = unschedulable(pod)
      if (reason === undefined || lacksRoom(reason)) return undefined
      const agentId = pod.metadata?.labels?.[OwnershipLabels.agentId]
      const runtimeClassName = pod.spec?.runtimeClassName
      if (runtimeClassName !== undefined && runtimeClassUnplaceable(pod, reason)) {
        const runtimeClass = runtimeClassOf(runtimeClassName)
        const selector = selectorOf(pod.spec?.nodeSelector)
        return new RuntimeClassUnavailable({
          message: `no node can run sandbox ${sandboxId}: its RuntimeClass "${runtimeClassName}" places it on nodes labelled ${selector}, and the scheduler says "${reason}"; install the RuntimeClass's handler on nodes and label them, or map kubernetes.runtime_classes.${runtimeClass} to a RuntimeClass a node can run. The runtime never downgrades to a weaker class.`,
          agentId,
          runtimeClass
        })
      }
      return new SpawnFailed({ message: `the scheduler cannot place sandbox ${sandboxId}: "${reason}"; check the nodes' taints and conditions (kubectl describe nodes)`, agentId })
    }

    /** A node's failure to make a Pod's sandbox (its events say it; its status does not), as a coded error. */
    const sandboxFailure = (sandboxId: string, pod: V1Pod): Effect.Effect<SandboxError | undefined, SandboxError> =>
      Effect.gen(function* () {
        const { core } = yield* clients
        const uid = pod.metadata?.uid
        // Events only explain: one that cannot be read (an older Role without events) fails nothing.
        const events = yield* call(ctx(`read the events of sandbox ${sandboxId}`, sandboxId), () =>
          core.listNamespacedEvent({ namespace, fieldSelector: `involvedObject.name=${sandboxId}${uid === undefined ? "" : `,involvedObject.uid=${uid}`}` })
        ).pipe(Effect.orElseSucceed(() => ({ items: [] })))
        const failure = sandboxCreationFailure(events.items)
        if (failure === undefined) return undefined
        const agentId = pod.metadata?.labels?.[OwnershipLabels.agentId]
        const node = pod.spec?.nodeName ?? "its node"
        const runtimeClassName = pod.spec?.runtimeClassName
        if (failure.handlerMissing && runtimeClassName !== undefined) {
          const runtimeClass = runtimeClassOf(runtimeClassName)
          return new RuntimeClassUnavailable({
            message: `node ${node} cannot run sandbox ${sandboxId}: its RuntimeClass "${runtimeClassName}" names a handler the node's container runtime does not have ("${failure.message}"); install the handler on the nodes the RuntimeClass selects (and label only those), or map kubernetes.runtime_classes.${runtimeClass} to a RuntimeClass a node can run. The runtime never downgrades to a weaker class.`,
            agentId,
            runtimeClass
          })
        }
        return new SpawnFailed({ message: `node ${node} could not create the sandbox of ${sandboxId}: "${failure.message}"; check the node's container runtime and network plugin`, agentId })
      })

    /**
     * Polls the Pod until `done` says it is ready (a value) or failed (an error); a bounded wait. With
     * `placement`, a Pod the scheduler cannot place, or whose node cannot make its sandbox, fails at
     * once with the cause instead of waiting out the bound.
     */
    const waitForPod = <A>(
      sandboxId: string,
      what: string,
      timeoutMs: number,
      done: (pod: V1Pod) => { readonly _tag: "ready"; readonly value: A } | { readonly _tag: "failed"; readonly error: SandboxError } | undefined,
      placement = false
    ): Effect.Effect<A, SandboxError> =>
      Effect.gen(function* () {
        // The watch loop wakes the wait when the Pod changes; reads between are the fallback, backing off.
        ensureWatcher()
        const deadline = Date.now() + timeoutMs
        let delay = 50
        let awaitingSince: number | undefined
        let eventsReadAt = 0
        while (true) {
          const pod = yield* readPod(sandboxId, `wait for sandbox ${sandboxId} to ${what}`)
          const outcome = done(pod)
          if (outcome?._tag === "ready") return outcome.value
          if (outcome?._tag === "failed") return yield* Effect.fail(outcome.error)
          if (placement) {
            const unplaced = placementFailure(sandboxId, pod)
            if (unplaced !== undefined) return yield* Effect.fail(unplaced)
            // A sandbox takes a moment to make: its events are read after a second of waiting, then once a second.
            awaitingSince = awaitingSandbox(pod) ? (awaitingSince ?? Date.now()) : undefined
            if (awaitingSince !== undefined && Date.now() - awaitingSince >= 1000 && Date.now() - eventsReadAt >= 1000) {
              eventsReadAt = Date.now()
              const failed = yield* sandboxFailure(sandboxId, pod)
              if (failed !== undefined) return yield* Effect.fail(failed)
            }
          }
          if (Date.now() >= deadline) {
            const waiting = unschedulable(pod)
            return yield* new SandboxOperationFailed({
              message: `sandbox ${sandboxId} did not ${what} within ${Math.round(timeoutMs / 1000)} s (Pod phase ${pod.status?.phase ?? "unknown"}${waiting === undefined ? "" : `; the scheduler says "${waiting}": free room on the nodes or ask for less (resources.cpu, resources.memory)`}); check \`kubectl -n ${namespace} describe pod ${sandboxId}\``
            })
          }
          yield* pauseFor(sandboxId, delay)
          delay = Math.min(delay * 2, 1000)
        }
      })

    /** The container to exec in: the agent's once it runs, else the gate while it holds the Pod. */
    const runningContainer = (pod: V1Pod): string | undefined => {
      const running = (name: string) =>
        [...(pod.status?.containerStatuses ?? []), ...(pod.status?.initContainerStatuses ?? [])].some((c) => c.name === name && c.state?.running !== undefined)
      if (running(agentContainer)) return agentContainer
      if (running(gateContainer)) return gateContainer
      return undefined
    }

    const waitForContainer = (sandboxId: string, what: string) =>
      waitForPod(sandboxId, what, startTimeoutMs, (pod) => {
        const container = runningContainer(pod)
        if (container !== undefined) return { _tag: "ready", value: container }
        const observation = observe(pod)
        if (observation.failing !== undefined) {
          return {
            _tag: "failed",
            error: new SpawnFailed({
              message: `sandbox ${sandboxId} cannot run: its container is waiting with ${observation.failing} (image ${pod.spec?.containers[0]?.image ?? "?"}); check the image name and the cluster's access to its registry`,
              agentId: pod.metadata?.labels?.[OwnershipLabels.agentId]
            })
          }
        }
        if (observation.status === "exited" || observation.status === "removed") {
          return { _tag: "failed", error: new SandboxOperationFailed({ message: `sandbox ${sandboxId} has ${observation.status} (exit code ${observation.exitCode ?? "none"}); provision it again` }) }
        }
        return undefined
      }, true)

    // ---- validation, before any call ----

    const planFor = (spec: SandboxSpec): Effect.Effect<{ plan: SandboxPlan }, SandboxError> =>
      Effect.gen(function* () {
        const agent = { agentId: spec.agentId }
        const name = podNameOf(spec.name, spec.agentId)
        if (name === undefined) {
          return yield* new SandboxConfigInvalid({ message: `agent id "${spec.agentId}" has no hex digits to derive a Pod name from; agent ids are UUIDs`, key: "agentId", ...agent })
        }
        const labelProblem = labelsProblem(objectLabels(spec, { name }))
        if (labelProblem !== undefined) return yield* new SandboxConfigInvalid({ message: `${labelProblem}; change the agent's labels`, key: "labels", ...agent })
        const { resources, securityContext } = spec.sandbox
        if (!Number.isInteger(resources.cpuMillis) || resources.cpuMillis < 1) {
          return yield* new ResourceLimitsInvalid({ message: `resources.cpu must be at least 1m, got ${resources.cpu}`, key: "resources.cpu", ...agent })
        }
        if (!Number.isInteger(resources.memoryBytes) || resources.memoryBytes < 4 * 1024 * 1024) {
          return yield* new ResourceLimitsInvalid({ message: `resources.memory ${resources.memory} is below 4Mi, too little for any container; ask for more`, key: "resources.memory", ...agent })
        }
        if (securityContext.runAsNonRoot && securityContext.runAsUser === 0) {
          return yield* new SecurityContextViolation({ message: "the security context asks for runAsNonRoot with runAsUser 0; run as a non-root uid (65534)", key: "securityContext.runAsUser", ...agent })
        }
        const image = spec.image ?? options.defaultImage ?? "l02-agent:latest"
        if (image === "" || /\s/.test(image) || image !== image.trim()) {
          return yield* new SandboxConfigInvalid({ message: `image "${image}" is not a valid image reference; name an image like registry/name:tag`, key: "image", ...agent })
        }
        if (spec.command !== undefined && (spec.command.length === 0 || spec.command[0] === "")) {
          return yield* new SandboxConfigInvalid({ message: "the command is empty; name a program or leave the command out to run the image's own", key: "command", ...agent })
        }
        const badEnv = Object.keys(spec.env).find((k) => k === "" || k.includes("="))
        if (badEnv !== undefined) return yield* new SandboxConfigInvalid({ message: `environment variable name "${badEnv}" is not valid: it must be non-empty without "="`, key: "env", ...agent })
        for (const cidr of egressAllowCidrs) {
          const problem = cidrProblem(cidr)
          if (problem !== undefined) return yield* new SandboxConfigInvalid({ message: `kubernetes.egress_allow_cidrs entry "${cidr}" ${problem}`, key: "kubernetes.egress_allow_cidrs", ...agent })
        }
        if (workspace.kind === "persistentVolumeClaim" && parseQuantity(workspace.size) === undefined) {
          return yield* new SandboxConfigInvalid({ message: `kubernetes.workspace.size "${workspace.size}" is not a quantity like 1Gi`, key: "kubernetes.workspace.size", ...agent })
        }
        const mapped = runtimeClasses[spec.sandbox.runtimeClass]
        if (mapped !== undefined && mapped !== "") {
          const problem = dns1123SubdomainProblem(mapped)
          if (problem !== undefined) {
            return yield* new SandboxConfigInvalid({ message: `kubernetes.runtime_classes.${spec.sandbox.runtimeClass} "${mapped}" is not a RuntimeClass name: it ${problem}`, key: "kubernetes.runtime_classes", ...agent })
          }
        }
        return {
          plan: {
            name,
            namespace,
            image,
            runtimeClassName: mapped === undefined || mapped === "" ? undefined : mapped,
            workspace,
            terminationGraceSeconds,
            imagePullPolicy: options.imagePullPolicy ?? "IfNotPresent",
            serviceAccountName: options.serviceAccountName,
            egressAllowCidrs,
            dnsPodLabels
          }
        }
      })

    /** Fails closed with E2041 unless the runtime class maps to a RuntimeClass the cluster has (or to the default handler). */
    const checkRuntimeClass = (spec: SandboxSpec) =>
      Effect.gen(function* () {
        const runtimeClass = spec.sandbox.runtimeClass
        const mapped = runtimeClasses[runtimeClass]
        if (mapped === undefined) {
          return yield* new RuntimeClassUnavailable({
            message: `runtime class "${runtimeClass}" (trust level ${spec.sandbox.trustLevel}) has no RuntimeClass mapped; add kubernetes.runtime_classes.${runtimeClass} (mapped: ${Object.keys(runtimeClasses).join(", ")}). The runtime never downgrades to a weaker class.`,
            agentId: spec.agentId,
            runtimeClass
          })
        }
        if (mapped === "") return
        const { nodeApi } = yield* clients
        const found = yield* callOptional(ctx(`check RuntimeClass ${mapped} (node.k8s.io/v1 runtimeclasses)`, undefined, spec.agentId), () => nodeApi.readRuntimeClass({ name: mapped }))
        if (found === undefined) {
          return yield* new RuntimeClassUnavailable({
            message: `runtime class "${runtimeClass}" (trust level ${spec.sandbox.trustLevel}) needs the RuntimeClass "${mapped}", which the cluster at ${server} does not have (checked node.k8s.io/v1 runtimeclasses); install its handler on the nodes and apply the RuntimeClass (config/kubernetes/runtimeclass-${runtimeClass === "gvisor" ? "gvisor" : "kata"}.yaml), or map kubernetes.runtime_classes.${runtimeClass} to an installed one. The runtime never downgrades to a weaker class.`,
            agentId: spec.agentId,
            runtimeClass
          })
        }
        // The object existing is not enough: some node must carry the labels it schedules onto.
        const selector = selectorOf(found.scheduling?.nodeSelector)
        if (!(yield* nodesCanTake(selector, `list the nodes RuntimeClass ${mapped} runs on (nodes labelled ${selector})`, spec.agentId))) {
          return yield* new RuntimeClassUnavailable({
            message: `runtime class "${runtimeClass}" (trust level ${spec.sandbox.trustLevel}) needs the RuntimeClass "${mapped}", whose Pods run only on nodes labelled ${selector}, and the cluster at ${server} has no such node that takes Pods; install the handler "${found.handler}" on nodes and label them (config/kubernetes/runtimeclass-${runtimeClass === "gvisor" ? "gvisor" : "kata"}.yaml says how), or map kubernetes.runtime_classes.${runtimeClass} to another RuntimeClass. The runtime never downgrades to a weaker class.`,
            agentId: spec.agentId,
            runtimeClass
          })
        }
      })

    // ---- the port ----

    const capabilities: Effect.Effect<BackendCapabilities, SandboxError> = Effect.gen(function* () {
      const { nodeApi } = yield* clients
      const list = yield* call(ctx("list RuntimeClasses (node.k8s.io/v1)"), () => nodeApi.listRuntimeClass({}))
      // A RuntimeClass counts when a node can take its Pods: none of its labels asked, or a node that has them.
      const present = new Set<string>()
      for (const rc of list.items) {
        if (yield* nodesCanTake(selectorOf(rc.scheduling?.nodeSelector), `list the nodes RuntimeClass ${rc.metadata?.name ?? ""} runs on`)) present.add(rc.metadata?.name ?? "")
      }
      return {
        name: "kubernetes",
        runtimeClasses: Object.entries(runtimeClasses)
          .filter(([, mapped]) => mapped === "" || present.has(mapped))
          .map(([runtimeClass]) => runtimeClass),
        networkPolicies: ["allow_egress", "restricted", "isolated"],
        workspaceArchive: true,
        // A Pod cannot be paused: the runtime suspends by checkpoint and delete.
        pause: false
      }
    })

    const provision = (spec: SandboxSpec): Effect.Effect<SandboxInfo, SandboxError> =>
      Effect.gen(function* () {
        const { plan } = yield* planFor(spec)
        yield* checkRuntimeClass(spec)
        const { core, networking } = yield* clients
        const context = (what: string) => ctx(what, undefined, spec.agentId)
        const existsOk = <A>(what: string, f: () => Promise<A>) =>
          Effect.tryPromise({ try: f, catch: (e) => e }).pipe(
            Effect.as(true),
            Effect.catch((error) => (statusOf(error) === 409 ? Effect.succeed(false) : Effect.fail(translate(error, context(what)))))
          )
        const claim = claimManifest(spec, plan)
        const claimCreated = claim === undefined ? false : yield* existsOk(`create the workspace claim ${claimNameOf(plan.name)}`, () => core.createNamespacedPersistentVolumeClaim({ namespace, body: claim }))
        const policyCreated = yield* existsOk(`create the NetworkPolicy ${plan.name}`, () =>
          networking.createNamespacedNetworkPolicy({ namespace, body: networkPolicyManifest(spec, plan) })
        ).pipe(
          Effect.tapError(() =>
            claimCreated && !(workspace.kind === "persistentVolumeClaim" && workspace.retainOnRemove === true)
              ? Effect.ignore(callOptional(context("clean up"), () => core.deleteNamespacedPersistentVolumeClaim({ name: claimNameOf(plan.name), namespace })))
              : Effect.void
          )
        )
        const created = yield* Effect.tryPromise({ try: () => core.createNamespacedPod({ namespace, body: podManifest(spec, plan) }), catch: (e) => e }).pipe(
          Effect.map((pod): V1Pod | undefined => pod),
          Effect.catch((error): Effect.Effect<V1Pod | undefined, SandboxError> => {
            if (statusOf(error) === 409) return Effect.succeed(undefined)
            // Leave nothing behind: what this call created before the API server refused the Pod.
            const cleanup = Effect.ignore(
              Effect.all([
                policyCreated ? callOptional(context("clean up"), () => networking.deleteNamespacedNetworkPolicy({ name: plan.name, namespace })) : Effect.void,
                claimCreated && !(workspace.kind === "persistentVolumeClaim" && workspace.retainOnRemove === true)
                  ? callOptional(context("clean up"), () => core.deleteNamespacedPersistentVolumeClaim({ name: claimNameOf(plan.name), namespace }))
                  : Effect.void
              ])
            )
            const failure: SandboxError =
              statusOf(error) === 403 && /RuntimeClass/i.test(String((error as { body?: unknown }).body ?? ""))
                ? new RuntimeClassUnavailable({
                    message: `the cluster refused the Pod of agent ${spec.agentId}: its RuntimeClass "${plan.runtimeClassName ?? ""}" is gone (${apiReason(error) ?? "Forbidden"}); apply it again from config/kubernetes/`,
                    agentId: spec.agentId,
                    runtimeClass: spec.sandbox.runtimeClass
                  })
                : translate(error, context(`create the Pod of agent ${spec.agentId}`))
            return Effect.andThen(cleanup, Effect.fail(failure))
          })
        )
        if (created !== undefined) {
          expectedEnds.delete(plan.name)
          removing.delete(plan.name)
          return sandboxInfoOf(created)
        }
        // The name is taken: the agent already has its Pod (provisioned before, or concurrently).
        const existing = yield* call(context(`read the existing Pod ${plan.name}`), () => core.readNamespacedPod({ name: plan.name, namespace }))
        const info = sandboxInfoOf(existing)
        if (info.agentId !== spec.agentId || info.runtimeId !== spec.runtimeId) {
          return yield* new SpawnFailed({
            message: `a Pod named ${plan.name} exists in namespace ${namespace} but belongs to agent ${info.agentId || "(none)"} of runtime ${info.runtimeId || "(none)"}; delete it (kubectl -n ${namespace} delete pod ${plan.name})`,
            agentId: spec.agentId
          })
        }
        return info
      })

    const execIn = (
      sandboxId: string,
      container: string,
      command: ReadonlyArray<string>,
      handlers: { readonly stdout: (b: Buffer) => void; readonly stderr: (b: Buffer) => void; readonly stdin?: Readable | undefined; readonly status: (s: V1Status) => void }
    ) =>
      Effect.gen(function* () {
        const { exec } = yield* clients
        const open = () =>
          exec.exec(namespace, sandboxId, container, [...command], sink(handlers.stdout), sink(handlers.stderr), handlers.stdin ?? null, false, handlers.status)
        // A refused upgrade (5xx: a kubelet busy with the container's state) ran nothing, so it is tried
        // twice more; anything after the upgrade is the caller's to judge.
        return yield* call(ctx(`exec in sandbox ${sandboxId}`, sandboxId), async () => {
          for (let attempt = 1; ; attempt++) {
            try {
              return await open()
            } catch (error) {
              const status = statusOf(error)
              if (attempt >= 3 || status === undefined || status < 500) throw error
              await new Promise((r) => setTimeout(r, 300 * attempt))
            }
          }
        })
      })

    /**
     * Runs a command to its end and collects its output as bytes (workspace archives, the gate). An
     * input goes bounded through the exec wrapper, so the exec's stdin stays open until the status.
     */
    const runToEnd = (sandboxId: string, container: string, command: ReadonlyArray<string>, stdin?: Uint8Array) =>
      Effect.gen(function* () {
        const stdout: Array<Buffer> = []
        const stderr: Array<Buffer> = []
        let resolveStatus: (s: V1Status | undefined) => void = () => undefined
        const statusPromise = new Promise<V1Status | undefined>((resolve) => (resolveStatus = resolve))
        const input = execInputOf(stdin)
        yield* Effect.addFinalizer(() => Effect.sync(input.close))
        const socket = yield* execIn(sandboxId, container, stdin === undefined ? command : wrappedCommand(randomUUID(), command, { input: input.mode }), {
          stdout: (b) => stdout.push(b),
          stderr: (b) => stderr.push(b),
          stdin: input.readable,
          status: (s) => resolveStatus(s)
        })
        socket.on("close", () => setTimeout(() => resolveStatus(undefined), 50))
        if (socket.readyState === socket.CLOSED) setTimeout(() => resolveStatus(undefined), 50)
        const status = yield* Effect.promise(() => statusPromise)
        const exitCode = status === undefined ? undefined : exitCodeOfStatus(status)
        if (exitCode === undefined) {
          return yield* new SandboxOperationFailed({
            message: `an exec in sandbox ${sandboxId} ended without an exit status (${status?.message ?? "the connection closed"}); retry`
          })
        }
        return { stdout: Buffer.concat(stdout), stderr: Buffer.concat(stderr).toString("utf8"), exitCode }
      }).pipe(Effect.scoped)

    /**
     * {@link runToEnd} for a command that may run twice (the gate, tar out, tar in): an exec the node
     * dropped before its status (a kubelet closes at once an exec that comes while the container's
     * state is changing), or that ended with a silent 126 (it reached a container instance being
     * replaced, as when a kubelet re-creates a Pod's sandbox; the volumes stay), is tried twice more, in
     * the container of that name then. A Pod that is gone is not. After the last try, a silent 126 is
     * the caller's result to judge.
     */
    const runIdempotent = (sandboxId: string, container: string, command: ReadonlyArray<string>, stdin?: Uint8Array) =>
      runToEnd(sandboxId, container, command, stdin).pipe(
        Effect.flatMap((result) => (result.exitCode === 126 && result.stderr.trim() === "" ? Effect.fail(new ReplacedContainer(result)) : Effect.succeed(result))),
        Effect.retry({ times: 2, schedule: Schedule.spaced("400 millis"), while: (error) => error._tag !== "SandboxNotFound" }),
        Effect.catchTag("ReplacedContainer", (replaced) => Effect.succeed(replaced.result))
      )

    /**
     * Opens the start gate. An exec that ends without a status (a dropped connection) is tried again;
     * if it still fails, the gate counts as open only when it no longer holds the Pod (it ended between
     * the read and the exec): a gate still running after a failed open is a failed start, never a
     * start that waits for nothing.
     */
    const openGate = (sandboxId: string) =>
      runIdempotent(sandboxId, gateContainer, ["/bin/sh", "-c", openGateScript]).pipe(
        Effect.catch((error) =>
          Effect.flatMap(readPod(sandboxId, `start sandbox ${sandboxId}`), (pod) =>
            runningContainer(pod) === gateContainer
              ? Effect.fail(
                new SpawnFailed({ message: `could not open the start gate of sandbox ${sandboxId}: ${error.message}; the Pod is still held at its gate, remove it and spawn again` })
              )
              : Effect.succeed({ exitCode: 0, stderr: "" })
          )
        )
      )

    const start = (sandboxId: string): Effect.Effect<SandboxInfo, SandboxError> =>
      Effect.gen(function* () {
        expectedEnds.delete(sandboxId)
        const container = yield* waitForContainer(sandboxId, "get its container running")
        if (container === gateContainer) {
          const opened = yield* openGate(sandboxId)
          if (opened.exitCode !== 0) {
            return yield* new SpawnFailed({ message: `could not open the start gate of sandbox ${sandboxId} (exit ${opened.exitCode}: ${opened.stderr.trim()}); the image needs /bin/sh and touch` })
          }
        }
        return yield* waitForPod(sandboxId, "start its agent container", startTimeoutMs, (pod) => {
          const info = sandboxInfoOf(pod)
          if (info.status === "running" || info.status === "exited") return { _tag: "ready", value: info }
          const failing = observe(pod).failing
          if (failing !== undefined) {
            return { _tag: "failed", error: new SpawnFailed({ message: `sandbox ${sandboxId} cannot start: its agent container is waiting with ${failing}; check the image` }) }
          }
          return undefined
        })
      })

    const refusePause = (sandboxId: string, verb: "pause" | "unpause") =>
      Effect.gen(function* () {
        yield* readPod(sandboxId, `${verb} sandbox ${sandboxId}`)
        return yield* new SandboxOperationFailed({
          message: `Kubernetes cannot ${verb} a Pod (sandbox ${sandboxId}); suspend with a checkpoint instead: export the workspace, remove the sandbox, and resume on a new one`
        })
      })

    const stop = (sandboxId: string, stopOptions: { readonly graceMs: number }): Effect.Effect<void, SandboxError> =>
      Effect.gen(function* () {
        const pod = yield* readPod(sandboxId, `stop sandbox ${sandboxId}`)
        if (observe(pod).status === "exited") return
        expectedEnds.add(sandboxId)
        const { core } = yield* clients
        const startedAt = pod.status?.startTime === undefined ? Date.now() : new Date(pod.status.startTime).getTime()
        const deadline = Math.max(1, Math.floor((Date.now() - startedAt) / 1000))
        const current = pod.spec?.activeDeadlineSeconds
        if (current === undefined || current > deadline) {
          yield* call(ctx(`stop sandbox ${sandboxId} (set activeDeadlineSeconds)`, sandboxId), () =>
            core.patchNamespacedPod({ name: sandboxId, namespace, body: [{ op: "add", path: "/spec/activeDeadlineSeconds", value: deadline }] })
          )
        }
        const bound = Math.max(stopOptions.graceMs, terminationGraceSeconds * 1000) + 30_000
        yield* waitForPod(sandboxId, "stop", bound, (p) => (observe(p).status === "exited" ? { _tag: "ready", value: undefined } : undefined))
      })

    const remove = (sandboxId: string): Effect.Effect<void, SandboxError> =>
      Effect.gen(function* () {
        if (dns1123SubdomainProblem(sandboxId) !== undefined) return
        const { core, networking } = yield* clients
        expectedEnds.add(sandboxId)
        removing.add(sandboxId)
        const gone = (what: string, f: () => Promise<unknown>) => Effect.asVoid(callOptional(ctx(what), f))
        yield* gone(`remove the Pod ${sandboxId}`, () => core.deleteNamespacedPod({ name: sandboxId, namespace, gracePeriodSeconds: 0 }))
        yield* gone(`remove the NetworkPolicy ${sandboxId}`, () => networking.deleteNamespacedNetworkPolicy({ name: sandboxId, namespace }))
        if (workspace.kind === "persistentVolumeClaim" && workspace.retainOnRemove !== true) {
          yield* gone(`remove the workspace claim ${claimNameOf(sandboxId)}`, () => core.deleteNamespacedPersistentVolumeClaim({ name: claimNameOf(sandboxId), namespace }))
        }
        // A real cluster may keep the object while the kubelet confirms; the port promises it is gone.
        const deadline = Date.now() + 30_000
        while (true) {
          const pod = yield* callOptional(ctx(`confirm the removal of ${sandboxId}`), () => core.readNamespacedPod({ name: sandboxId, namespace }))
          if (pod === undefined) return
          if (Date.now() >= deadline) {
            return yield* new SandboxOperationFailed({ message: `the Pod ${sandboxId} is still terminating after 30 s; check its node (kubectl -n ${namespace} describe pod ${sandboxId})` })
          }
          yield* Effect.sleep("100 millis")
        }
      })

    const inspect = (sandboxId: string) => Effect.map(readPod(sandboxId), sandboxInfoOf)

    const list = (labels: Readonly<Record<string, string>>) =>
      Effect.gen(function* () {
        const problem = labelsProblem(labels)
        if (problem !== undefined) return yield* new SandboxConfigInvalid({ message: `cannot list sandboxes: ${problem}`, key: "labels" })
        const { core } = yield* clients
        const selector = [OwnershipLabels.agentId, ...Object.entries(labels).map(([k, v]) => `${k}=${v}`)].join(",")
        const pods = yield* call(ctx("list sandboxes"), () => core.listNamespacedPod({ namespace, labelSelector: selector }))
        return pods.items.filter((p) => p.metadata?.deletionTimestamp == null).map(sandboxInfoOf)
      })

    const exec = (sandboxId: string, request: ExecRequest): Stream.Stream<ExecChunk, SandboxError> =>
      Stream.callback<ExecChunk, SandboxError>((queue) =>
        Effect.gen(function* () {
          const pod = yield* readPod(sandboxId, `exec in sandbox ${sandboxId}`)
          const container = runningContainer(pod)
          if (container !== agentContainer) {
            return yield* new SandboxOperationFailed({
              message: `sandbox ${sandboxId} is ${observe(pod).status}, not running; exec needs a started sandbox (start it, or provision a new one)`
            })
          }
          const execId = randomUUID()
          let used = 0
          let truncated = false
          let timedOut = false
          let finished = false
          const decoders = { stdout: new TextDecoder(), stderr: new TextDecoder() }
          const output = (stream: "stdout" | "stderr") => (payload: Buffer) => {
            if (truncated || finished) return
            let part = payload
            if (part.length > request.maxOutputBytes - used) {
              part = utf8Prefix(payload, request.maxOutputBytes - used)
              truncated = true
            }
            used += part.length
            const data = decoders[stream].decode(part, { stream: !truncated })
            if (data !== "") Queue.offerUnsafe(queue, { _tag: stream, data })
          }
          const finish = (exitCode: number) => {
            if (finished) return
            finished = true
            clearTimeout(timer)
            clearTimeout(forceTimer)
            for (const stream of ["stdout", "stderr"] as const) {
              const rest = truncated ? "" : decoders[stream].decode()
              if (rest !== "") Queue.offerUnsafe(queue, { _tag: stream, data: rest })
            }
            Queue.offerUnsafe(queue, { _tag: "exit", exitCode, timedOut, truncated })
            Queue.endUnsafe(queue)
          }
          const fail = (message: string) => {
            if (finished) return
            finished = true
            clearTimeout(timer)
            clearTimeout(forceTimer)
            Queue.failCauseUnsafe(queue, Cause.fail(new SandboxOperationFailed({ message })))
          }
          const kill = () =>
            Effect.runPromise(Effect.ignore(runToEnd(sandboxId, agentContainer, ["/bin/sh", "-c", execKiller, execId]))).catch(() => undefined)
          let forceTimer: ReturnType<typeof setTimeout> | undefined
          const timer = setTimeout(() => {
            timedOut = true
            void kill()
            // If the killed process left the stream open, end anyway.
            forceTimer = setTimeout(() => {
              socket.close()
              finish(137)
            }, 3000)
          }, request.timeoutMs)
          // Bounded input (never an ended stdin, which closes a v4 exec before its status arrives).
          const input = execInputOf(request.stdin)
          yield* Effect.addFinalizer(() => Effect.sync(input.close))
          yield* input.feed
          const socket = yield* execIn(sandboxId, agentContainer, wrappedCommand(execId, request.command, { ...request, input: input.mode }), {
            stdout: output("stdout"),
            stderr: output("stderr"),
            stdin: input.readable,
            status: (status) => {
              const code = exitCodeOfStatus(status)
              if (code === undefined) fail(`an exec in sandbox ${sandboxId} failed: ${status.message ?? status.reason ?? "no exit status"}; check that the image has /bin/sh`)
              else finish(code)
            }
          }).pipe(Effect.tapError(() => Effect.sync(() => clearTimeout(timer))))
          const onClose = () =>
            setTimeout(() => {
              if (timedOut) finish(137)
              else fail(`the exec stream of sandbox ${sandboxId} closed without an exit status; the Pod may have ended; run it again`)
            }, 100)
          socket.on("close", onClose)
          if (socket.readyState === socket.CLOSED) onClose()
          yield* Effect.addFinalizer(() =>
            Effect.sync(() => {
              clearTimeout(timer)
              clearTimeout(forceTimer)
              if (!finished) {
                finished = true
                socket.close()
                void kill()
              }
            })
          )
        })
      )

    const attach = (sandboxId: string): Effect.Effect<Attachment, SandboxError, Scope.Scope> =>
      Effect.gen(function* () {
        yield* checkId(sandboxId)
        const container = yield* waitForContainer(sandboxId, "run its agent container for attach")
        if (container !== agentContainer) {
          return yield* new SandboxOperationFailed({ message: `sandbox ${sandboxId} is not started; start it before attaching` })
        }
        const { attach: client } = yield* clients
        const queue = yield* Queue.unbounded<OutputLine, SandboxError | Cause.Done>()
        const splitter = (stream: "stdout" | "stderr") => {
          const decoder = new TextDecoder()
          let pending = ""
          return {
            push: (chunk: Buffer) => {
              pending += decoder.decode(chunk, { stream: true })
              let newline = pending.indexOf("\n")
              while (newline !== -1) {
                Queue.offerUnsafe(queue, { stream, line: pending.slice(0, newline) })
                pending = pending.slice(newline + 1)
                newline = pending.indexOf("\n")
              }
            },
            flush: () => {
              if (pending !== "") Queue.offerUnsafe(queue, { stream, line: pending })
              pending = ""
            }
          }
        }
        const out = splitter("stdout")
        const err = splitter("stderr")
        const stdin = new PassThrough()
        const socket = yield* Effect.acquireRelease(
          call(ctx(`attach to sandbox ${sandboxId}`, sandboxId), () => client.attach(namespace, sandboxId, agentContainer, sink(out.push), sink(err.push), stdin, false)),
          (s) =>
            Effect.sync(() => {
              // Closing the socket, not stdin: with stdinOnce false the program's stdin stays open for the next attach.
              s.close()
            })
        )
        const end = () => {
          out.flush()
          err.flush()
          Queue.endUnsafe(queue)
        }
        socket.on("close", end)
        if (socket.readyState === socket.CLOSED) end()
        return {
          write: (line: string) =>
            Effect.suspend(() => {
              if (socket.readyState !== socket.OPEN) {
                return Effect.fail(new SandboxOperationFailed({ message: `the attachment to sandbox ${sandboxId} is closed: its main program ended; attach again after a start` }))
              }
              stdin.write(`${line}\n`)
              return Effect.void
            }),
          output: Stream.fromQueue(queue)
        }
      })

    const ensureWatcher = () => {
      if (watcher !== undefined || kc === undefined || core === undefined) return
      const publish = (event: SandboxEvent) => PubSub.publishUnsafe(events, event)
      const see = (pod: V1Pod, initial: boolean) => {
        const name = pod.metadata?.name ?? ""
        const after = observe(pod)
        const before = observed.get(name)
        observed.set(name, after)
        const ids = { sandboxId: name, agentId: pod.metadata?.labels?.[OwnershipLabels.agentId] ?? "" }
        if (!initial) for (const event of eventsBetween(ids, before, after, expectedEnds.has(name), Date.now())) publish(event)
        wake(name)
      }
      const gone = (pod: V1Pod) => {
        const name = pod.metadata?.name ?? ""
        // Reported already when its deletion started (see eventsBetween).
        const reported = observed.get(name)?.status === "removed"
        observed.delete(name)
        if (!removing.has(name) && !reported) publish({ sandboxId: name, agentId: pod.metadata?.labels?.[OwnershipLabels.agentId] ?? "", type: "removed", at: Date.now() })
        removing.delete(name)
        expectedEnds.delete(name)
        wake(name)
      }
      watcher = startPodWatch({
        kubeConfig: kc,
        namespace,
        labelSelector: OwnershipLabels.agentId,
        retryMs: options.watchRetryMs,
        list: () => core.listNamespacedPod({ namespace, labelSelector: OwnershipLabels.agentId }),
        onList: (pods, initial) => {
          const names = new Set(pods.map((p) => p.metadata?.name ?? ""))
          for (const [name] of observed) if (!names.has(name)) gone({ metadata: { name } })
          for (const pod of pods) see(pod, initial)
          // First-seen Pods after the baseline are new: observed now so their later changes report.
        },
        onEvent: (type, pod) => {
          if (type === "DELETED") gone(pod)
          else see(pod, false)
        }
      })
    }

    const stats = (sandboxId: string): Effect.Effect<SandboxStats, SandboxError> =>
      Effect.gen(function* () {
        yield* readPod(sandboxId, `read the stats of sandbox ${sandboxId}`)
        const { custom } = yield* clients
        const metrics = (yield* callOptional(ctx(`read metrics.k8s.io for sandbox ${sandboxId}`), () =>
          custom.getNamespacedCustomObject({ group: "metrics.k8s.io", version: "v1beta1", namespace, plural: "pods", name: sandboxId })
        )) as { containers?: ReadonlyArray<{ name?: string; usage?: { cpu?: string; memory?: string } }> } | undefined
        const usage = metrics?.containers?.find((c) => c.name === agentContainer)?.usage
        const cores = usage?.cpu === undefined ? undefined : parseQuantity(usage.cpu)
        const bytes = usage?.memory === undefined ? undefined : parseQuantity(usage.memory)
        if (cores === undefined || bytes === undefined) {
          return yield* new SandboxOperationFailed({
            message: `no metrics for sandbox ${sandboxId}: the cluster does not serve metrics.k8s.io (install metrics-server) or has not sampled the Pod yet (retry in a minute)`
          })
        }
        return { cpuPercent: cores * 100, memoryBytes: Math.round(bytes) }
      })

    const exportWorkspace = (sandboxId: string) =>
      Effect.gen(function* () {
        yield* checkId(sandboxId)
        const container = yield* waitForContainer(sandboxId, "run a container to export the workspace from")
        const result = yield* runIdempotent(sandboxId, container, ["/bin/sh", "-c", exportScript])
        if (result.exitCode !== 0) {
          return yield* new SandboxOperationFailed({ message: `tar in sandbox ${sandboxId} failed (exit ${result.exitCode}: ${result.stderr.trim()}); the image needs tar` })
        }
        return yield* Effect.try({
          // Re-written in the runtime's own format: the image's tar may be GNU or busybox.
          try: () => writeTar(readTar(result.stdout)),
          catch: (error) => new SandboxOperationFailed({ message: `the workspace archive from sandbox ${sandboxId} is not a valid tar: ${error instanceof Error ? error.message : String(error)}` })
        })
      })

    const importWorkspace = (sandboxId: string, archive: Uint8Array) =>
      Effect.gen(function* () {
        yield* checkId(sandboxId)
        const checked = yield* Effect.try({
          try: () => writeTar(readTar(archive)),
          catch: (error) =>
            new SandboxOperationFailed({
              message: `cannot import the workspace into sandbox ${sandboxId}: ${error instanceof ArchiveInvalid || error instanceof Error ? error.message : String(error)}`
            })
        })
        const container = yield* waitForContainer(sandboxId, "run a container to import the workspace into")
        const result = yield* runIdempotent(sandboxId, container, ["/bin/sh", "-c", importScript], checked)
        if (result.exitCode !== 0) {
          return yield* new SandboxOperationFailed({ message: `tar in sandbox ${sandboxId} failed to extract the workspace (exit ${result.exitCode}: ${result.stderr.trim()})` })
        }
      })

    return {
      capabilities,
      provision,
      start,
      pause: (sandboxId) => refusePause(sandboxId, "pause"),
      unpause: (sandboxId) => refusePause(sandboxId, "unpause"),
      stop,
      remove,
      inspect,
      list,
      exec,
      attach,
      events: Stream.unwrap(
        Effect.sync(() => {
          ensureWatcher()
          return Stream.fromPubSub(events)
        })
      ),
      stats,
      exportWorkspace,
      importWorkspace
    } satisfies SandboxBackendShape
  })

/** The Kubernetes backend as a layer; the watch loop (started by the first `events` subscriber) ends with the layer. */
export const layer = (options: KubernetesBackendOptions = {}): Layer.Layer<SandboxBackend> => Layer.effect(SandboxBackend, make(options))

export type { WorkspaceVolume } from "./SandboxManifests.ts"
