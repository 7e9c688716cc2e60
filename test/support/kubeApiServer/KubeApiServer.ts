// A Kubernetes API server simulator for tests, over node:http, that behaves like the real one for
// what the Kubernetes backend uses: CRUD of namespaces, pods, persistentvolumeclaims,
// networkpolicies and runtimeclasses; label selectors; a resourceVersion on every object and 409 on a
// stale one; watches resuming from a resourceVersion, with BOOKMARK events and 410 Gone for compacted
// versions; Pods moving Pending -> Running -> Succeeded/Failed (init containers first,
// activeDeadlineSeconds, graceful deletion); exec and attach over WebSocket with the v4/v5 channel
// protocol; metrics.k8s.io pod metrics. Each container is a real local process (its command run
// directly, volumes as temp directories, env values under a mount path rewritten to the directory),
// so exec and attach run for real. Security contexts and network policies are stored, not enforced.
import { type ChildProcess, spawn } from "node:child_process"
import { randomUUID } from "node:crypto"
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs"
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http"
import type { AddressInfo, Socket } from "node:net"
import { constants, tmpdir } from "node:os"
import { join } from "node:path"
import { type WebSocket, WebSocketServer } from "ws"
import { dns1123SubdomainProblem, labelsProblem } from "../../../src/backends/kubernetes/KubernetesNames.ts"
import { parseQuantity } from "../../../src/domain/Quantity.ts"
import { parseLabelSelector } from "./labelSelector.ts"

/** How the simulator starts. */
export interface KubeApiServerOptions {
  /** A bearer token every request must carry; undefined accepts any. */
  readonly token?: string | undefined
  /** Namespaces that exist from the start. Default ["default"]. */
  readonly namespaces?: ReadonlyArray<string> | undefined
  /**
   * RuntimeClasses that exist from the start: a name (its handler the same), or a name with a handler
   * and the node labels its scheduling.nodeSelector asks for (merged into a Pod's nodeSelector at
   * admission, as the RuntimeClass admission plugin does).
   */
  readonly runtimeClasses?: ReadonlyArray<string | { readonly name: string; readonly handler: string; readonly nodeSelector?: Readonly<Record<string, string>> }> | undefined
  /** The labels of the one node, node-1. Default its hostname label. */
  readonly nodeLabels?: Readonly<Record<string, string>> | undefined
  /**
   * Runtime handlers the node's container runtime lacks: a Pod of a RuntimeClass with one stays
   * Pending in ContainerCreating with FailedCreatePodSandBox events, as dockershim does for `runsc`.
   */
  readonly unsupportedHandlers?: ReadonlyArray<string> | undefined
  /** What node-1 can give Pods (allocatable cpu and memory). Default 4 cores and 16Gi. */
  readonly allocatable?: { readonly cpu: string; readonly memory: string } | undefined
  /** How long after its creation a Pod is scheduled. Default 20 ms. */
  readonly schedulingDelayMs?: number | undefined
  /** Whether metrics.k8s.io is served. Default true. */
  readonly metrics?: boolean | undefined
  /** How often watches with allowWatchBookmarks get a BOOKMARK. Default 1000 ms. */
  readonly bookmarkIntervalMs?: number | undefined
  /** How many events are kept for resuming watches; older versions answer 410. Default 1000. */
  readonly historyLimit?: number | undefined
  /** Images whose pull fails (ErrImagePull). */
  readonly unpullableImages?: ReadonlyArray<string> | undefined
  /**
   * The exec/attach protocols offered, best first. Default v5 then v4; `["v4.channel.k8s.io"]` is an API
   * server before about 1.30: no close frame for stdin, so a client ends stdin only by closing the
   * WebSocket, and an exec's status is then lost.
   */
  readonly execProtocols?: ReadonlyArray<"v4.channel.k8s.io" | "v5.channel.k8s.io"> | undefined
}

// The simulator stores the API's JSON objects as they come.
type Obj = Record<string, any>

interface WatchEvent {
  readonly rv: number
  readonly resource: string
  readonly namespace: string | undefined
  readonly type: "ADDED" | "MODIFIED" | "DELETED"
  readonly object: Obj
}

interface Watcher {
  readonly resource: string
  readonly namespace: string | undefined
  readonly matches: (labels: Record<string, string>) => boolean
  readonly res: ServerResponse
}

interface ContainerRun {
  proc?: ChildProcess | undefined
  oom: boolean
  readonly attached: Set<WebSocket>
}

interface PodRun {
  readonly dirs: Map<string, string>
  readonly containers: Map<string, ContainerRun>
  readonly execs: Set<ChildProcess>
  deleted: boolean
  deadlineExceeded?: boolean
  timers: Array<ReturnType<typeof setTimeout>>
}

/** A running simulator and its test hooks. */
export interface KubeApiServer {
  readonly url: string
  readonly token: string | undefined
  /** Every request, as "METHOD path" without the query ("?watch" marks watches, "UPGRADE" exec and attach). */
  readonly requests: Array<string>
  readonly stats: { watches: number; bookmarks: number; gone: number }
  /** The stored object, if any (a copy). */
  readonly get: (resource: string, namespace: string | undefined, name: string) => Obj | undefined
  /** Kills a container's process as the kernel's OOM killer would: terminated, reason OOMKilled, exit 137. */
  readonly oomKill: (namespace: string, pod: string, container?: string) => void
  /** Kills a container's process with SIGKILL: terminated, reason Error, exit 137. */
  readonly crash: (namespace: string, pod: string, container?: string) => void
  /** Puts a container in a waiting state (CrashLoopBackOff, ImagePullBackOff...). */
  readonly setWaiting: (namespace: string, pod: string, reason: string, container?: string) => void
  /** The next `count` execs into `container` are accepted, then dropped without a status (a lost connection). */
  readonly dropExecs: (container: string, count: number) => void
  /**
   * The next `count` execs into `container` end at once with exit code 126 and no output, as a
   * kubelet answers an exec that reaches a container instance being replaced.
   */
  readonly replacedExecs: (container: string, count: number) => void
  /** The next `count` exec upgrades into `container` are refused with 500, as a busy kubelet's are: nothing runs. */
  readonly refusedExecs: (container: string, count: number) => void
  /** Cuts every open watch connection; returns how many. */
  readonly dropWatches: () => number
  /** Forgets the event history: watches from any earlier resourceVersion get 410 Gone. */
  readonly compact: () => void
  readonly close: () => Promise<void>
}

const resourceKinds: Readonly<Record<string, { kind: string; apiVersion: string; namespaced: boolean }>> = {
  namespaces: { kind: "Namespace", apiVersion: "v1", namespaced: false },
  pods: { kind: "Pod", apiVersion: "v1", namespaced: true },
  persistentvolumeclaims: { kind: "PersistentVolumeClaim", apiVersion: "v1", namespaced: true },
  networkpolicies: { kind: "NetworkPolicy", apiVersion: "networking.k8s.io/v1", namespaced: true },
  runtimeclasses: { kind: "RuntimeClass", apiVersion: "node.k8s.io/v1", namespaced: false },
  nodes: { kind: "Node", apiVersion: "v1", namespaced: false },
  events: { kind: "Event", apiVersion: "v1", namespaced: true }
}

const clone = <T>(value: T): T => structuredClone(value)

/** JSON with object keys sorted, so two equal objects compare equal whatever order their keys came in. */
const canonical = (value: unknown): string =>
  JSON.stringify(value, (_key, v: unknown) =>
    v !== null && typeof v === "object" && !Array.isArray(v) ? Object.fromEntries(Object.entries(v as Obj).filter(([, x]) => x !== undefined).sort(([a], [b]) => (a < b ? -1 : 1))) : v
  )
const now = () => new Date().toISOString()

const statusBody = (code: number, reason: string, message: string, details?: Obj): Obj => ({
  kind: "Status",
  apiVersion: "v1",
  metadata: {},
  status: "Failure",
  message,
  reason,
  ...(details === undefined ? {} : { details }),
  code
})

class HttpError extends Error {
  readonly code: number
  readonly reason: string
  constructor(code: number, reason: string, message: string) {
    super(message)
    this.code = code
    this.reason = reason
  }
}

const readBody = (req: IncomingMessage): Promise<string> =>
  new Promise((resolve, reject) => {
    const chunks: Array<Buffer> = []
    req.on("data", (c: Buffer) => chunks.push(c))
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")))
    req.on("error", reject)
  })

const pointer = (path: string): Array<string> =>
  path
    .split("/")
    .slice(1)
    .map((p) => p.replaceAll("~1", "/").replaceAll("~0", "~"))

/** RFC 6902 JSON patch (add, replace, remove, test). */
const jsonPatch = (target: Obj, ops: ReadonlyArray<Obj>): Obj => {
  const doc = clone(target)
  for (const op of ops) {
    const parts = pointer(String(op.path))
    const last = parts.pop()!
    let parent: Obj = doc
    for (const part of parts) {
      if (parent[part] === undefined) {
        if (op.op === "add") parent[part] = {}
        else throw new HttpError(422, "Invalid", `the path ${op.path} does not exist`)
      }
      parent = parent[part]
    }
    switch (op.op) {
      case "add":
      case "replace":
        if (Array.isArray(parent) && last === "-") (parent as Array<unknown>).push(op.value)
        else (parent as Obj)[last] = op.value
        break
      case "remove":
        delete parent[last]
        break
      case "test":
        if (JSON.stringify(parent[last]) !== JSON.stringify(op.value)) throw new HttpError(422, "Invalid", `the test of ${op.path} failed`)
        break
      default:
        throw new HttpError(415, "UnsupportedMediaType", `unsupported patch op ${op.op}`)
    }
  }
  return doc
}

/** RFC 7386 merge patch. */
const mergePatch = (target: unknown, patch: unknown): unknown => {
  if (typeof patch !== "object" || patch === null || Array.isArray(patch)) return patch
  const result: Obj = typeof target === "object" && target !== null && !Array.isArray(target) ? clone(target as Obj) : {}
  for (const [k, v] of Object.entries(patch as Obj)) {
    if (v === null) delete result[k]
    else result[k] = mergePatch(result[k], v)
  }
  return result
}

/** A field selector of `path=value` terms joined by commas (what the API server offers for events' involvedObject). */
const parseFieldSelector = (selector: string | undefined): ((object: Obj) => boolean) => {
  const terms = (selector ?? "").split(",").filter((t) => t !== "").map((t) => t.split("=") as [string, string])
  return (object) => terms.every(([path, value]) => String(path.split(".").reduce<any>((o, k) => o?.[k], object) ?? "") === value)
}

const processStats = (pid: number): { cpuSeconds: number; rssBytes: number } | undefined => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8")
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
    const ticks = Number(fields[11]) + Number(fields[12])
    const rss = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))
    return { cpuSeconds: ticks / 100, rssBytes: rss === null ? 0 : Number(rss[1]) * 1024 }
  } catch {
    return undefined
  }
}

const exitCodeOf = (code: number | null, signal: NodeJS.Signals | null): number =>
  code ?? (signal === null ? 1 : 128 + (constants.signals[signal] ?? 9))

/** Starts a simulator on a free loopback port. */
export const startKubeApiServer = async (options: KubeApiServerOptions = {}): Promise<KubeApiServer> => {
  const root = mkdtempSync(join(tmpdir(), "l02-kube-sim-"))
  const objects = new Map<string, Obj>()
  const history: Array<WatchEvent> = []
  const watchers = new Set<Watcher>()
  const runs = new Map<string, PodRun>()
  const sockets = new Set<Socket>()
  const historyLimit = options.historyLimit ?? 1000
  const nodeName = "node-1"
  const unsupportedHandlers = new Set(options.unsupportedHandlers ?? [])

  /** Records an event about a Pod, as the scheduler and the kubelet do. */
  const recordEvent = (pod: Obj, type: "Normal" | "Warning", reason: string, message: string, component: string) => {
    create("events", pod.metadata.namespace, {
      metadata: { name: `${pod.metadata.name}.${randomUUID().replaceAll("-", "").slice(0, 16)}` },
      involvedObject: { kind: "Pod", apiVersion: "v1", namespace: pod.metadata.namespace, name: pod.metadata.name, uid: pod.metadata.uid },
      type,
      reason,
      message,
      source: { component },
      count: 1,
      firstTimestamp: now(),
      lastTimestamp: now()
    })
  }
  const unpullable = new Set(options.unpullableImages ?? [])
  const stats = { watches: 0, bookmarks: 0, gone: 0 }
  const requests: Array<string> = []
  let rv = 0
  let compactedRv = 0

  const keyOf = (resource: string, namespace: string | undefined, name: string) => `${resource}/${namespace ?? ""}/${name}`

  const record = (resource: string, type: WatchEvent["type"], object: Obj) => {
    const event: WatchEvent = { rv, resource, namespace: object.metadata?.namespace, type, object: clone(object) }
    history.push(event)
    while (history.length > historyLimit) compactedRv = history.shift()!.rv
    for (const w of watchers) {
      if (w.resource === resource && (w.namespace === undefined || w.namespace === event.namespace) && w.matches(object.metadata?.labels ?? {})) {
        w.res.write(`${JSON.stringify({ type, object: event.object })}\n`)
      }
    }
  }

  const write = (resource: string, object: Obj, type: "ADDED" | "MODIFIED") => {
    rv += 1
    object.metadata.resourceVersion = String(rv)
    objects.set(keyOf(resource, object.metadata.namespace, object.metadata.name), object)
    record(resource, type, object)
    return object
  }

  const erase = (resource: string, object: Obj) => {
    rv += 1
    object.metadata.resourceVersion = String(rv)
    objects.delete(keyOf(resource, object.metadata.namespace, object.metadata.name))
    record(resource, "DELETED", object)
  }

  const create = (resource: string, namespace: string | undefined, given: Obj): Obj => {
    let body = given
    const info = resourceKinds[resource]!
    const name = body.metadata?.name
    if (typeof name !== "string") throw new HttpError(422, "Invalid", `${info.kind} is invalid: metadata.name: Required value: name is required`)
    const nameProblem = dns1123SubdomainProblem(name)
    if (nameProblem !== undefined) throw new HttpError(422, "Invalid", `${info.kind} "${name}" is invalid: metadata.name: Invalid value: "${name}": ${nameProblem}`)
    const labelProblem = labelsProblem(body.metadata?.labels ?? {})
    if (labelProblem !== undefined) throw new HttpError(422, "Invalid", `${info.kind} "${name}" is invalid: metadata.labels: ${labelProblem}`)
    if (info.namespaced && !objects.has(keyOf("namespaces", undefined, namespace!))) throw new HttpError(404, "NotFound", `namespaces "${namespace}" not found`)
    if (objects.has(keyOf(resource, namespace, name))) throw new HttpError(409, "AlreadyExists", `${resource} "${name}" already exists`)
    if (resource === "pods") {
      const rc = body.spec?.runtimeClassName
      const runtimeClass = rc === undefined ? undefined : objects.get(keyOf("runtimeclasses", undefined, rc))
      if (rc !== undefined && runtimeClass === undefined) {
        throw new HttpError(403, "Forbidden", `pods "${name}" is forbidden: pod rejected: RuntimeClass "${rc}" not found`)
      }
      // The RuntimeClass admission plugin: its scheduling.nodeSelector joins the Pod's.
      const selector = runtimeClass?.scheduling?.nodeSelector
      if (selector !== undefined) body = { ...body, spec: { ...body.spec, nodeSelector: { ...(body.spec.nodeSelector ?? {}), ...selector } } }
      if (!Array.isArray(body.spec?.containers) || body.spec.containers.length === 0) {
        throw new HttpError(422, "Invalid", `Pod "${name}" is invalid: spec.containers: Required value`)
      }
    }
    const object: Obj = {
      ...clone(body),
      apiVersion: info.apiVersion,
      kind: info.kind,
      metadata: { ...clone(body.metadata), ...(info.namespaced ? { namespace } : {}), uid: randomUUID(), creationTimestamp: now() }
    }
    if (resource === "pods") object.status = { phase: "Pending", qosClass: "Guaranteed" }
    if (resource === "namespaces") object.status = { phase: "Active" }
    if (resource === "persistentvolumeclaims") object.status = { phase: "Bound" }
    if (resource === "nodes") object.status = clone(body.status)
    write(resource, object, "ADDED")
    if (resource === "pods") schedule(object)
    return object
  }

  const current = (resource: string, namespace: string | undefined, name: string) => {
    const found = objects.get(keyOf(resource, namespace, name))
    if (found === undefined) throw new HttpError(404, "NotFound", `${resource} "${name}" not found`)
    return found
  }

  /** Applies an update (PUT body or patched object) with optimistic concurrency and the Pod update rules. */
  const update = (resource: string, namespace: string | undefined, name: string, next: Obj): Obj => {
    const existing = current(resource, namespace, name)
    const asked = next.metadata?.resourceVersion
    if (asked !== undefined && asked !== existing.metadata.resourceVersion) {
      throw new HttpError(
        409,
        "Conflict",
        `Operation cannot be fulfilled on ${resource} "${name}": the object has been modified; please apply your changes to the latest version and try again`
      )
    }
    if (next.metadata?.name !== name) throw new HttpError(422, "Invalid", `metadata.name: Invalid value: "${next.metadata?.name}": field is immutable`)
    const labelProblem = labelsProblem(next.metadata?.labels ?? {})
    if (labelProblem !== undefined) throw new HttpError(422, "Invalid", `metadata.labels: ${labelProblem}`)
    if (resource === "pods") {
      const before = { ...existing.spec, activeDeadlineSeconds: undefined }
      const after = { ...next.spec, activeDeadlineSeconds: undefined }
      if (canonical(before) !== canonical(after)) {
        throw new HttpError(422, "Invalid", `Pod "${name}" is invalid: spec: Forbidden: pod updates may not change fields other than spec.containers[*].image, spec.activeDeadlineSeconds, spec.tolerations`)
      }
      const oldDeadline = existing.spec.activeDeadlineSeconds
      const newDeadline = next.spec.activeDeadlineSeconds
      if (newDeadline !== oldDeadline && (typeof newDeadline !== "number" || newDeadline < 1 || (oldDeadline !== undefined && newDeadline > oldDeadline))) {
        throw new HttpError(422, "Invalid", `Pod "${name}" is invalid: spec.activeDeadlineSeconds: Invalid value: ${newDeadline}: must be a positive integer no greater than the current value`)
      }
    }
    const object: Obj = {
      ...clone(next),
      apiVersion: existing.apiVersion,
      kind: existing.kind,
      metadata: { ...clone(next.metadata), namespace: existing.metadata.namespace, uid: existing.metadata.uid, creationTimestamp: existing.metadata.creationTimestamp },
      ...(existing.status === undefined ? {} : { status: existing.status })
    }
    if (existing.metadata.deletionTimestamp !== undefined) object.metadata.deletionTimestamp = existing.metadata.deletionTimestamp
    write(resource, object, "MODIFIED")
    if (resource === "pods") armDeadline(object)
    return object
  }

  /** Changes a Pod's status as the kubelet would, bumping its resourceVersion. */
  const setStatus = (namespace: string, name: string, change: (status: Obj, pod: Obj) => void) => {
    const pod = objects.get(keyOf("pods", namespace, name))
    if (pod === undefined) return
    const next = clone(pod)
    change(next.status, next)
    write("pods", next, "MODIFIED")
  }

  const containerStatus = (pod: Obj, name: string): Obj | undefined =>
    [...(pod.status.initContainerStatuses ?? []), ...(pod.status.containerStatuses ?? [])].find((c: Obj) => c.name === name)

  // ---- the kubelet ----

  const runOf = (namespace: string, name: string) => runs.get(`${namespace}/${name}`)

  const remap = (run: PodRun, container: Obj, value: string): string => {
    for (const mount of container.volumeMounts ?? []) {
      const dir = run.dirs.get(mount.name)
      if (dir !== undefined && (value === mount.mountPath || value.startsWith(`${mount.mountPath}/`))) return dir + value.slice(mount.mountPath.length)
    }
    return value
  }

  const processEnv = (run: PodRun, container: Obj): Record<string, string> => {
    const env: Record<string, string> = { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: run.dirs.get("tmp") ?? root }
    for (const e of container.env ?? []) env[e.name] = remap(run, container, String(e.value ?? ""))
    return env
  }

  const cwdOf = (run: PodRun, container: Obj) => (container.workingDir === undefined ? root : remap(run, container, container.workingDir))

  const killGroup = (proc: ChildProcess | undefined, signal: NodeJS.Signals) => {
    if (proc?.pid === undefined || proc.exitCode !== null || proc.signalCode !== null) return
    try {
      process.kill(-proc.pid, signal)
    } catch {
      // already gone
    }
  }

  /** Runs one container; resolves with its exit code when it ends. */
  const runContainer = (namespace: string, podName: string, run: PodRun, container: Obj, isInit: boolean): Promise<number> =>
    new Promise((resolve) => {
      const slot: ContainerRun = run.containers.get(container.name) ?? { oom: false, attached: new Set() }
      run.containers.set(container.name, slot)
      const command: Array<string> = [...(container.command ?? []), ...(container.args ?? [])]
      if (command.length === 0) {
        setStatus(namespace, podName, (_s, pod) => {
          containerStatus(pod, container.name)!.state = { waiting: { reason: "CreateContainerError", message: "the simulator needs an explicit command" } }
        })
        return
      }
      const proc = spawn(command[0]!, command.slice(1), { cwd: cwdOf(run, container), env: processEnv(run, container), detached: true, stdio: ["pipe", "pipe", "pipe"] })
      slot.proc = proc
      proc.stdin.on("error", () => undefined)
      const forward = (channel: number) => (data: Buffer) => {
        for (const ws of slot.attached) ws.send(Buffer.concat([Buffer.from([channel]), data]))
      }
      proc.stdout.on("data", forward(1))
      proc.stderr.on("data", forward(2))
      let started = false
      proc.on("spawn", () => {
        started = true
        setStatus(namespace, podName, (status, pod) => {
          const cs = containerStatus(pod, container.name)!
          cs.state = { running: { startedAt: now() } }
          cs.started = true
          cs.ready = !isInit
          if (!isInit) status.phase = "Running"
        })
      })
      proc.on("error", (error) => {
        if (started) return
        setStatus(namespace, podName, (status, pod) => {
          containerStatus(pod, container.name)!.state = { terminated: { exitCode: 128, reason: "StartError", message: error.message, finishedAt: now() } }
          status.phase = "Failed"
        })
        resolve(128)
      })
      proc.on("close", (code, signal) => {
        const exitCode = exitCodeOf(code, signal)
        for (const ws of slot.attached) ws.close(1000)
        slot.attached.clear()
        setStatus(namespace, podName, (_s, pod) => {
          const cs = containerStatus(pod, container.name)!
          cs.ready = false
          cs.state = {
            terminated: { exitCode, reason: slot.oom ? "OOMKilled" : exitCode === 0 ? "Completed" : "Error", startedAt: cs.state?.running?.startedAt, finishedAt: now() }
          }
        })
        resolve(exitCode)
      })
    })

  const allProcesses = (run: PodRun) => [...[...run.containers.values()].map((c) => c.proc), ...run.execs]

  /** Ends every process of a Pod: SIGTERM, then SIGKILL after the grace period. */
  const terminate = (run: PodRun, graceSeconds: number) => {
    for (const proc of allProcesses(run)) killGroup(proc, graceSeconds === 0 ? "SIGKILL" : "SIGTERM")
    if (graceSeconds > 0) run.timers.push(setTimeout(() => allProcesses(run).forEach((p) => killGroup(p, "SIGKILL")), graceSeconds * 1000))
  }

  const armDeadline = (pod: Obj) => {
    const seconds = pod.spec.activeDeadlineSeconds
    const run = runOf(pod.metadata.namespace, pod.metadata.name)
    if (typeof seconds !== "number" || run === undefined || pod.status.startTime === undefined) return
    const due = new Date(pod.status.startTime).getTime() + seconds * 1000
    run.timers.push(
      setTimeout(() => {
        const latest = objects.get(keyOf("pods", pod.metadata.namespace, pod.metadata.name))
        if (latest === undefined || latest.status.phase === "Succeeded" || latest.status.phase === "Failed") return
        setStatus(pod.metadata.namespace, pod.metadata.name, (status) => {
          status.reason = "DeadlineExceeded"
          status.message = `Pod was active on the node longer than the specified deadline`
        })
        run.deadlineExceeded = true
        terminate(run, latest.spec.terminationGracePeriodSeconds ?? 30)
      }, Math.max(0, due - Date.now()))
    )
  }

  const schedule = (pod: Obj) => {
    const namespace: string = pod.metadata.namespace
    const name: string = pod.metadata.name
    const run: PodRun = { dirs: new Map(), containers: new Map(), execs: new Set(), deleted: false, timers: [] }
    runs.set(`${namespace}/${name}`, run)
    const initContainers: Array<Obj> = pod.spec.initContainers ?? []
    const containers: Array<Obj> = pod.spec.containers
    const waitingAll = (status: Obj) => {
      status.initContainerStatuses = initContainers.map((c) => ({ name: c.name, image: c.image, ready: false, restartCount: 0, state: { waiting: { reason: "PodInitializing" } } }))
      status.containerStatuses = containers.map((c) => ({ name: c.name, image: c.image, ready: false, restartCount: 0, started: false, state: { waiting: { reason: "PodInitializing" } } }))
    }
    const tryStart = () => {
      if (run.deleted) return
      const latest = objects.get(keyOf("pods", namespace, name))
      if (latest === undefined) return
      for (const volume of latest.spec.volumes ?? []) {
        const claim = volume.persistentVolumeClaim?.claimName
        if (claim !== undefined && !objects.has(keyOf("persistentvolumeclaims", namespace, claim))) {
          setStatus(namespace, name, (status) => {
            status.conditions = [{ type: "PodScheduled", status: "False", reason: "Unschedulable", message: `persistentvolumeclaim "${claim}" not found` }]
          })
          run.timers.push(setTimeout(tryStart, 200))
          return
        }
      }
      for (const volume of latest.spec.volumes ?? []) {
        const claim = volume.persistentVolumeClaim?.claimName
        const dir = claim === undefined ? mkdtempSync(join(root, `${name}-${volume.name}-`)) : join(root, "claims", namespace, claim)
        mkdirSync(dir, { recursive: true })
        run.dirs.set(volume.name, dir)
      }
      // The scheduler: the one node must carry every label the Pod's nodeSelector asks for.
      const node = objects.get(keyOf("nodes", undefined, nodeName))!
      const unmatched = Object.entries(latest.spec.nodeSelector ?? {}).some(([k, v]) => node.metadata.labels?.[k] !== v)
      // A Pod's effective request: its containers' sum, or its largest init container's when larger.
      const requestOf = (c: Obj, resource: "cpu" | "memory") => parseQuantity(String(c.resources?.requests?.[resource] ?? "0")) ?? 0
      const requested = (resource: "cpu" | "memory") =>
        Math.max(containers.reduce((sum, c) => sum + requestOf(c, resource), 0), ...initContainers.map((c) => requestOf(c, resource)))
      const short = (["cpu", "memory"] as const).filter((r) => requested(r) > (parseQuantity(String(node.status.allocatable[r])) ?? 0))
      if (unmatched || short.length > 0) {
        const message = unmatched ? "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity." : `0/1 nodes are available: ${short.map((r) => `1 Insufficient ${r}`).join(", ")}.`
        setStatus(namespace, name, (status) => {
          status.conditions = [{ type: "PodScheduled", status: "False", reason: "Unschedulable", message }]
        })
        recordEvent(latest, "Warning", "FailedScheduling", message, "default-scheduler")
        run.timers.push(setTimeout(tryStart, 1000))
        return
      }
      const handler = latest.spec.runtimeClassName === undefined ? undefined : objects.get(keyOf("runtimeclasses", undefined, latest.spec.runtimeClassName))?.handler
      if (handler !== undefined && unsupportedHandlers.has(handler)) {
        const placed = clone(latest)
        placed.spec.nodeName = nodeName
        placed.status = { ...placed.status, phase: "Pending", hostIP: "127.0.0.1", startTime: now(), conditions: [{ type: "PodScheduled", status: "True" }] }
        waitingAll(placed.status)
        for (const cs of [...placed.status.initContainerStatuses, ...placed.status.containerStatuses]) cs.state = { waiting: { reason: "ContainerCreating" } }
        write("pods", placed, "MODIFIED")
        // The kubelet tries again and again, as it does: one event per try.
        const fail = () => {
          if (run.deleted) return
          recordEvent(placed, "Warning", "FailedCreatePodSandBox", `Failed to create pod sandbox: rpc error: code = Unknown desc = RuntimeHandler "${handler}" not supported`, "kubelet")
          run.timers.push(setTimeout(fail, 2000))
        }
        run.timers.push(setTimeout(fail, 300))
        return
      }
      const badImage = [...initContainers, ...containers].find((c) => unpullable.has(c.image))
      const scheduled = objects.get(keyOf("pods", namespace, name))!
      if (scheduled.spec.nodeName === undefined) {
        const placed = clone(scheduled)
        placed.spec.nodeName = nodeName
        write("pods", placed, "MODIFIED")
      }
      setStatus(namespace, name, (status) => {
        status.conditions = [{ type: "PodScheduled", status: "True" }]
        status.startTime = now()
        status.hostIP = "127.0.0.1"
        waitingAll(status)
        if (badImage !== undefined) {
          const cs = [...status.initContainerStatuses, ...status.containerStatuses].find((c: Obj) => c.name === badImage.name)
          cs.state =
            badImage.imagePullPolicy === "Never"
              ? { waiting: { reason: "ErrImageNeverPull", message: `Container image "${badImage.image}" is not present with pull policy of Never` } }
              : { waiting: { reason: "ErrImagePull", message: `failed to pull image "${badImage.image}": not found` } }
        }
      })
      if (badImage !== undefined) return
      armDeadline(objects.get(keyOf("pods", namespace, name))!)
      void (async () => {
        for (const container of initContainers) {
          if (run.deleted || run.deadlineExceeded === true) break
          const code = await runContainer(namespace, name, run, container, true)
          if (code !== 0) {
            setStatus(namespace, name, (status) => (status.phase = "Failed"))
            return
          }
        }
        if (run.deleted || run.deadlineExceeded === true) {
          setStatus(namespace, name, (status) => (status.phase = "Failed"))
          return
        }
        const codes = await Promise.all(containers.map((c) => runContainer(namespace, name, run, c, false)))
        setStatus(namespace, name, (status) => (status.phase = codes.every((c) => c === 0) && run.deadlineExceeded !== true ? "Succeeded" : "Failed"))
      })()
    }
    run.timers.push(setTimeout(tryStart, options.schedulingDelayMs ?? 20))
  }

  const deletePod = (pod: Obj, graceSeconds: number) => {
    const run = runOf(pod.metadata.namespace, pod.metadata.name)
    const finish = () => {
      if (run !== undefined) {
        run.deleted = true
        run.timers.forEach(clearTimeout)
        for (const proc of allProcesses(run)) killGroup(proc, "SIGKILL")
        for (const c of run.containers.values()) for (const ws of c.attached) ws.close(1000)
        for (const dir of [...run.dirs.entries()].filter(([volume]) => !(pod.spec.volumes ?? []).some((v: Obj) => v.name === volume && v.persistentVolumeClaim))) {
          rmSync(dir[1], { recursive: true, force: true })
        }
        runs.delete(`${pod.metadata.namespace}/${pod.metadata.name}`)
      }
      const latest = objects.get(keyOf("pods", pod.metadata.namespace, pod.metadata.name))
      if (latest !== undefined) erase("pods", latest)
    }
    if (graceSeconds === 0 || run === undefined) {
      finish()
      return
    }
    const next = clone(pod)
    next.metadata.deletionTimestamp = new Date(Date.now() + graceSeconds * 1000).toISOString()
    next.metadata.deletionGracePeriodSeconds = graceSeconds
    write("pods", next, "MODIFIED")
    run.deleted = true
    terminate(run, graceSeconds)
    const live = [...run.containers.values()].map((c) => c.proc).filter((p) => p !== undefined && p.exitCode === null && p.signalCode === null)
    void Promise.all(live.map((p) => new Promise((r) => p!.once("close", r)))).then(finish)
  }

  // ---- HTTP ----

  const send = (res: ServerResponse, code: number, body: Obj) => {
    res.writeHead(code, { "content-type": "application/json" })
    res.end(JSON.stringify(body))
  }

  const authorized = (req: IncomingMessage) => options.token === undefined || req.headers.authorization === `Bearer ${options.token}`

  interface Route {
    readonly resource: string
    readonly namespace: string | undefined
    readonly name: string | undefined
    readonly sub: string | undefined
  }

  const route = (path: string): Route | { readonly metrics: { namespace: string; name: string } } | undefined => {
    const p = path.split("/").filter((s) => s !== "")
    const m = /^apis\/metrics\.k8s\.io\/v1beta1\/namespaces\/([^/]+)\/pods\/([^/]+)$/.exec(p.join("/"))
    if (m !== null) return { metrics: { namespace: m[1]!, name: m[2]! } }
    let rest: Array<string>
    if (p[0] === "api" && p[1] === "v1") rest = p.slice(2)
    else if (p[0] === "apis" && p[1] === "networking.k8s.io" && p[2] === "v1") rest = p.slice(3)
    else if (p[0] === "apis" && p[1] === "node.k8s.io" && p[2] === "v1") rest = p.slice(3)
    else return undefined
    if (rest[0] === "namespaces" && rest.length >= 3) {
      const resource = rest[2]!
      if (!resourceKinds[resource]?.namespaced) return undefined
      return { resource, namespace: rest[1], name: rest[3], sub: rest[4] }
    }
    const resource = rest[0]
    if (resource === undefined || resourceKinds[resource] === undefined || resourceKinds[resource].namespaced) return undefined
    return { resource, namespace: undefined, name: rest[1], sub: undefined }
  }

  const matching = (resource: string, namespace: string | undefined, selector: ReturnType<typeof parseLabelSelector>) =>
    [...objects.values()].filter(
      (o) => o.kind === resourceKinds[resource]!.kind && (namespace === undefined || o.metadata.namespace === namespace) && selector(o.metadata.labels ?? {})
    )

  const startWatch = (req: IncomingMessage, res: ServerResponse, r: Route, query: URLSearchParams) => {
    const selector = parseLabelSelector(query.get("labelSelector") ?? undefined)
    const from = query.get("resourceVersion")
    stats.watches += 1
    res.writeHead(200, { "content-type": "application/json", "transfer-encoding": "chunked" })
    if (from !== null && from !== "" && from !== "0" && Number(from) < compactedRv) {
      stats.gone += 1
      res.end(`${JSON.stringify({ type: "ERROR", object: statusBody(410, "Expired", `too old resource version: ${from} (${compactedRv})`) })}\n`)
      return
    }
    if (from === null || from === "" || from === "0") {
      for (const o of matching(r.resource, r.namespace, selector)) res.write(`${JSON.stringify({ type: "ADDED", object: o })}\n`)
    } else {
      for (const e of history) {
        if (e.rv > Number(from) && e.resource === r.resource && (r.namespace === undefined || e.namespace === r.namespace) && selector(e.object.metadata?.labels ?? {})) {
          res.write(`${JSON.stringify({ type: e.type, object: e.object })}\n`)
        }
      }
    }
    const watcher: Watcher = { resource: r.resource, namespace: r.namespace, matches: selector, res }
    watchers.add(watcher)
    const timers: Array<ReturnType<typeof setTimeout>> = []
    if (query.get("allowWatchBookmarks") === "true") {
      const interval = setInterval(() => {
        stats.bookmarks += 1
        res.write(`${JSON.stringify({ type: "BOOKMARK", object: { kind: resourceKinds[r.resource]!.kind, apiVersion: resourceKinds[r.resource]!.apiVersion, metadata: { resourceVersion: String(rv) } } })}\n`)
      }, options.bookmarkIntervalMs ?? 1000)
      timers.push(interval)
    }
    const timeout = Number(query.get("timeoutSeconds") ?? "0")
    if (timeout > 0) timers.push(setTimeout(() => res.end(), timeout * 1000))
    const cleanup = () => {
      watchers.delete(watcher)
      timers.forEach((t) => clearTimeout(t))
    }
    res.on("close", cleanup)
    req.on("close", cleanup)
  }

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? "/", "http://localhost")
    requests.push(`${req.method} ${url.pathname}${url.searchParams.get("watch") === null ? "" : "?watch"}`)
    if (!authorized(req)) return send(res, 401, statusBody(401, "Unauthorized", "Unauthorized"))
    const r = route(url.pathname)
    if (r === undefined) return send(res, 404, statusBody(404, "NotFound", "the server could not find the requested resource"))
    if ("metrics" in r) {
      if (options.metrics === false) return send(res, 404, statusBody(404, "NotFound", "the server could not find the requested resource"))
      const pod = current("pods", r.metrics.namespace, r.metrics.name)
      const run = runOf(r.metrics.namespace, r.metrics.name)
      const containers = [...(run?.containers.entries() ?? [])]
        .filter(([, c]) => c.proc?.pid !== undefined && c.proc.exitCode === null)
        .map(([name, c]) => {
          const s = processStats(c.proc!.pid!) ?? { cpuSeconds: 0, rssBytes: 0 }
          const elapsed = Math.max(0.001, (Date.now() - new Date(pod.status.startTime ?? Date.now()).getTime()) / 1000)
          return { name, usage: { cpu: `${Math.round((s.cpuSeconds / elapsed) * 1e9)}n`, memory: `${Math.round(s.rssBytes / 1024)}Ki` } }
        })
      if (containers.length === 0) throw new HttpError(404, "NotFound", `podmetrics.metrics.k8s.io "${r.metrics.name}" not found`)
      return send(res, 200, { kind: "PodMetrics", apiVersion: "metrics.k8s.io/v1beta1", metadata: { name: r.metrics.name, namespace: r.metrics.namespace }, timestamp: now(), window: "10s", containers })
    }
    if (r.sub !== undefined) return send(res, 400, statusBody(400, "BadRequest", `${r.sub} needs a WebSocket upgrade`))
    const method = req.method ?? "GET"
    const query = url.searchParams
    if (r.name === undefined) {
      if (method === "GET") {
        if (query.get("watch") === "true" || query.get("watch") === "1") return startWatch(req, res, r, query)
        const selector = parseLabelSelector(query.get("labelSelector") ?? undefined)
        const fields = parseFieldSelector(query.get("fieldSelector") ?? undefined)
        return send(res, 200, {
          kind: `${resourceKinds[r.resource]!.kind}List`,
          apiVersion: resourceKinds[r.resource]!.apiVersion,
          metadata: { resourceVersion: String(rv) },
          items: matching(r.resource, r.namespace, selector).filter(fields)
        })
      }
      if (method === "POST") return send(res, 201, create(r.resource, r.namespace, JSON.parse(await readBody(req)) as Obj))
      return send(res, 405, statusBody(405, "MethodNotAllowed", `${method} is not allowed on a collection`))
    }
    switch (method) {
      case "GET":
        return send(res, 200, current(r.resource, r.namespace, r.name))
      case "PUT":
        return send(res, 200, update(r.resource, r.namespace, r.name, JSON.parse(await readBody(req)) as Obj))
      case "PATCH": {
        const existing = current(r.resource, r.namespace, r.name)
        const body = JSON.parse(await readBody(req)) as unknown
        const type = req.headers["content-type"] ?? ""
        const patched = type.includes("json-patch") ? jsonPatch(existing, body as Array<Obj>) : (mergePatch(existing, body) as Obj)
        if (type.includes("json-patch") && patched.metadata.resourceVersion === existing.metadata.resourceVersion) delete patched.metadata.resourceVersion
        return send(res, 200, update(r.resource, r.namespace, r.name, patched))
      }
      case "DELETE": {
        const existing = current(r.resource, r.namespace, r.name)
        const text = await readBody(req)
        const body = (text === "" ? {} : JSON.parse(text)) as Obj
        if (r.resource === "pods") {
          const grace = Number(query.get("gracePeriodSeconds") ?? body.gracePeriodSeconds ?? existing.spec.terminationGracePeriodSeconds ?? 30)
          deletePod(existing, grace)
        } else erase(r.resource, existing)
        return send(res, 200, existing)
      }
      default:
        return send(res, 405, statusBody(405, "MethodNotAllowed", `${method} is not allowed`))
    }
  }

  // ---- exec and attach ----

  const wss = new WebSocketServer({
    noServer: true,
    handleProtocols: (protocols) => (options.execProtocols ?? ["v5.channel.k8s.io", "v4.channel.k8s.io"]).find((p) => protocols.has(p)) ?? false
  })

  const refuseUpgrade = (socket: Socket, code: number, message: string) => {
    const body = JSON.stringify(statusBody(code, code === 404 ? "NotFound" : code === 500 ? "InternalError" : "BadRequest", message))
    socket.end(`HTTP/1.1 ${code} ${code === 404 ? "Not Found" : code === 401 ? "Unauthorized" : code === 500 ? "Internal Server Error" : "Bad Request"}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`)
  }

  const execDrops = new Map<string, number>()
  const execReplaced = new Map<string, number>()
  const execRefusals = new Map<string, number>()

  const channel = (n: number, data: Buffer | string) => Buffer.concat([Buffer.from([n]), Buffer.isBuffer(data) ? data : Buffer.from(data)])

  const onUpgrade = (req: IncomingMessage, socket: Socket, head: Buffer) => {
    const url = new URL(req.url ?? "/", "http://localhost")
    requests.push(`UPGRADE ${url.pathname}`)
    if (!authorized(req)) return refuseUpgrade(socket, 401, "Unauthorized")
    const r = route(url.pathname)
    if (r === undefined || "metrics" in r || r.resource !== "pods" || r.name === undefined || (r.sub !== "exec" && r.sub !== "attach")) {
      return refuseUpgrade(socket, 404, "the server could not find the requested resource")
    }
    const pod = objects.get(keyOf("pods", r.namespace, r.name))
    if (pod === undefined) return refuseUpgrade(socket, 404, `pods "${r.name}" not found`)
    const containerName = url.searchParams.get("container") ?? pod.spec.containers[0].name
    const container = [...(pod.spec.initContainers ?? []), ...pod.spec.containers].find((c: Obj) => c.name === containerName)
    const run = runOf(r.namespace!, r.name)
    const slot = run?.containers.get(containerName)
    if (container === undefined || run === undefined || slot?.proc === undefined || slot.proc.exitCode !== null || slot.proc.signalCode !== null) {
      return refuseUpgrade(socket, 400, `container ${containerName} is not running in pod ${r.name}`)
    }
    const refusals = execRefusals.get(containerName) ?? 0
    if (r.sub === "exec" && refusals > 0) {
      execRefusals.set(containerName, refusals - 1)
      return refuseUpgrade(socket, 500, "error dialing backend: the kubelet is busy")
    }
    if (r.sub === "attach" && container.stdin !== true && url.searchParams.get("stdin") === "true") {
      return refuseUpgrade(socket, 400, `stdin is not enabled for container ${containerName}; set stdin: true`)
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      if (r.sub === "attach") {
        slot.attached.add(ws)
        ws.on("message", (data: Buffer) => {
          if (data[0] === 0) slot.proc?.stdin?.write(data.subarray(1))
          if (data[0] === 255 && data[1] === 0 && ws.protocol === "v5.channel.k8s.io" && container.stdinOnce === true) slot.proc?.stdin?.end()
        })
        ws.on("close", () => slot.attached.delete(ws))
        return
      }
      const drops = execDrops.get(containerName) ?? 0
      if (drops > 0) {
        execDrops.set(containerName, drops - 1)
        ws.close()
        return
      }
      const replaced = execReplaced.get(containerName) ?? 0
      if (replaced > 0) {
        execReplaced.set(containerName, replaced - 1)
        ws.send(channel(3, JSON.stringify({ metadata: {}, status: "Failure", reason: "NonZeroExitCode", message: "command terminated with non-zero exit code: exit code 126", details: { causes: [{ reason: "ExitCode", message: "126" }] } })))
        ws.close(1000)
        return
      }
      const command = url.searchParams.getAll("command")
      const proc = spawn(command[0] ?? "", command.slice(1), { cwd: cwdOf(run, container), env: processEnv(run, container), detached: true, stdio: ["pipe", "pipe", "pipe"] })
      run.execs.add(proc)
      proc.stdin.on("error", () => undefined)
      if (url.searchParams.get("stdin") !== "true") proc.stdin.end()
      proc.stdout.on("data", (d: Buffer) => ws.readyState === ws.OPEN && ws.send(channel(1, d)))
      proc.stderr.on("data", (d: Buffer) => ws.readyState === ws.OPEN && ws.send(channel(2, d)))
      ws.on("message", (data: Buffer) => {
        if (data[0] === 0) proc.stdin.write(data.subarray(1))
        // The close frame exists from v5 on; a v4 server reads a 255 as nothing it knows.
        if (data[0] === 255 && data[1] === 0 && ws.protocol === "v5.channel.k8s.io") proc.stdin.end()
      })
      let spawnError: Error | undefined
      proc.on("error", (error) => (spawnError = error))
      proc.on("close", (code, signal) => {
        run.execs.delete(proc)
        if (ws.readyState !== ws.OPEN) return
        const exitCode = exitCodeOf(code, signal)
        const status =
          spawnError !== undefined
            ? statusBody(500, "InternalError", `OCI runtime exec failed: exec failed: unable to start container process: exec: "${command[0]}": ${spawnError.message}`)
            : exitCode === 0
              ? { metadata: {}, status: "Success" }
              : {
                  metadata: {},
                  status: "Failure",
                  message: `command terminated with non-zero exit code: error executing command [${command.join(" ")}], exit code ${exitCode}`,
                  reason: "NonZeroExitCode",
                  details: { causes: [{ reason: "ExitCode", message: String(exitCode) }] }
                }
        ws.send(channel(3, JSON.stringify(status)))
        ws.close(1000)
      })
    })
  }

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      if (error instanceof HttpError) send(res, error.code, statusBody(error.code, error.reason, error.message))
      else send(res, 500, statusBody(500, "InternalError", error instanceof Error ? error.message : String(error)))
    })
  })
  server.on("upgrade", onUpgrade)
  server.on("connection", (socket) => {
    sockets.add(socket)
    socket.on("close", () => sockets.delete(socket))
  })

  for (const ns of options.namespaces ?? ["default"]) create("namespaces", undefined, { metadata: { name: ns } })
  for (const rc of options.runtimeClasses ?? []) {
    const { name, handler, nodeSelector } = typeof rc === "string" ? { name: rc, handler: rc, nodeSelector: undefined } : rc
    create("runtimeclasses", undefined, { metadata: { name }, handler, ...(nodeSelector === undefined ? {} : { scheduling: { nodeSelector } }) })
  }
  create("nodes", undefined, {
    metadata: { name: nodeName, labels: options.nodeLabels ?? { "kubernetes.io/hostname": nodeName } },
    status: { conditions: [{ type: "Ready", status: "True", reason: "KubeletReady" }], allocatable: { cpu: "4", memory: "16Gi", ...options.allocatable } }
  })

  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  const port = (server.address() as AddressInfo).port

  const podContainer = (namespace: string, pod: string, container: string | undefined) => {
    const run = runOf(namespace, pod)
    const slot = run?.containers.get(container ?? "agent") ?? [...(run?.containers.values() ?? [])].at(-1)
    if (slot?.proc === undefined) throw new Error(`pod ${namespace}/${pod} has no running container ${container ?? ""}`)
    return slot
  }

  return {
    url: `http://127.0.0.1:${port}`,
    token: options.token,
    requests,
    stats,
    get: (resource, namespace, name) => {
      const found = objects.get(keyOf(resource, namespace, name))
      return found === undefined ? undefined : clone(found)
    },
    oomKill: (namespace, pod, container) => {
      const slot = podContainer(namespace, pod, container)
      slot.oom = true
      killGroup(slot.proc, "SIGKILL")
    },
    crash: (namespace, pod, container) => killGroup(podContainer(namespace, pod, container).proc, "SIGKILL"),
    setWaiting: (namespace, pod, reason, container) =>
      setStatus(namespace, pod, (_s, p) => {
        const cs = containerStatus(p, container ?? "agent")
        if (cs !== undefined) cs.state = { waiting: { reason, message: `simulated ${reason}` } }
      }),
    dropExecs: (container, count) => {
      execDrops.set(container, count)
    },
    replacedExecs: (container, count) => {
      execReplaced.set(container, count)
    },
    refusedExecs: (container, count) => {
      execRefusals.set(container, count)
    },
    dropWatches: () => {
      const open = [...watchers]
      for (const w of open) w.res.destroy()
      return open.length
    },
    compact: () => {
      // As etcd's revision moves on with writes elsewhere: every version read before is now too old.
      rv += 1
      compactedRv = rv
      history.length = 0
    },
    close: async () => {
      for (const run of runs.values()) {
        run.deleted = true
        run.timers.forEach(clearTimeout)
        for (const proc of allProcesses(run)) killGroup(proc, "SIGKILL")
      }
      for (const w of watchers) w.res.destroy()
      for (const client of wss.clients) client.terminate()
      for (const socket of sockets) socket.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
      rmSync(root, { recursive: true, force: true })
    }
  }
}
