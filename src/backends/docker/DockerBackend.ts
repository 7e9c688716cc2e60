/**
 * The Docker sandbox backend: each agent is a hardened container on a real Docker engine (dockerode
 * over the engine's socket or DOCKER_HOST), with its own workspace volume and, for the restricted
 * policy, its own internal network. Runtime classes map to the engine's runtimes (gvisor -> runsc);
 * what the engine cannot give fails closed with a coded error, or, for the network where configured,
 * runs stricter and says so in `SandboxInfo.notes`.
 */
import { randomUUID } from "node:crypto"
import type { Duplex } from "node:stream"
// Before dockerode: defers its SSH and BuildKit transports until used (memory; see the module).
import "./internal/deferTransports.ts"
import Docker from "dockerode"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Queue from "effect/Queue"
import * as Schedule from "effect/Schedule"
import * as Stream from "effect/Stream"
import {
  NetworkPolicyUnsupported,
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
import type { NetworkPolicy } from "../../domain/SandboxConfiguration.ts"
import {
  type Attachment,
  type ExecChunk,
  type OutputLine,
  SandboxBackend,
  type SandboxBackendShape,
  type SandboxEvent,
  type SandboxInfo,
  sandboxLabels,
  type SandboxSpec,
  type SandboxStatus
} from "../../services/SandboxBackend.ts"
import { ArchiveInvalid, readTar, writeTar } from "../../services/WorkspaceArchive.ts"
import { defaultAgentImage } from "./AgentImage.ts"
import {
  containerCreateOptions,
  containerNameOf,
  type ContainerPlan,
  networkNameOf,
  notesLabel,
  type SandboxNetwork,
  volumeNameOf,
  workspacePath
} from "./ContainerConfig.ts"
import { pipeStdin } from "../../services/ExecStdin.ts"
import { Demuxer, LineSplitter, utf8Prefix } from "./internal/demux.ts"
import { call, engineMessage, statusOf, translate } from "./internal/dockerErrors.ts"
import { writeRootfsTar } from "./internal/tarWriter.ts"

/** Options of the Docker backend; every field has the default of config/default_config.yaml. */
export interface DockerBackendOptions {
  /** The engine's Unix socket; `DOCKER_HOST`, when set, wins. Default `/var/run/docker.sock`. */
  readonly socketPath?: string | undefined
  /** An existing client instead of one built from socketPath / DOCKER_HOST. */
  readonly docker?: Docker | undefined
  /** The image of agents that name none. Default `l02-agent:latest`. */
  readonly defaultImage?: string | undefined
  /** Runtime class -> Docker runtime name. Default runc, gvisor -> runsc, kata -> kata-runtime, kata-cc. */
  readonly runtimes?: Readonly<Record<string, string>> | undefined
  /** Where a runtime cannot give the asked network: run with no network and note it, or fail with E2043. */
  readonly networkFallback?: "stricter" | "fail" | undefined
}

/** The runtime class -> Docker runtime mapping of the seed. */
export const defaultRuntimes: Readonly<Record<string, string>> = {
  runc: "runc",
  gvisor: "runsc",
  kata: "kata-runtime",
  "kata-cc": "kata-cc"
}

/** The backend's options from the `docker:` section of the runtime configuration. */
export const optionsFromConfig = (config: RuntimeConfig["docker"]): DockerBackendOptions => ({
  socketPath: config.socket_path,
  defaultImage: config.default_image,
  runtimes: config.runtimes,
  networkFallback: config.network_fallback
})

/** A dockerode client for the options: DOCKER_HOST when set, else the socket path. */
export const dockerClient = (options: Pick<DockerBackendOptions, "socketPath" | "docker"> = {}): Docker =>
  options.docker ?? (process.env.DOCKER_HOST ? new Docker() : new Docker({ socketPath: options.socketPath ?? "/var/run/docker.sock" }))

/** What the engine says about one runtime. */
interface EngineRuntime {
  readonly path?: string
  readonly runtimeArgs?: ReadonlyArray<string>
}

const statusOfState = (state: { Status?: string; Paused?: boolean }): SandboxStatus => {
  if (state.Paused === true || state.Status === "paused") return "paused"
  switch (state.Status) {
    case "created":
      return "created"
    case "running":
    case "restarting":
      return "running"
    default:
      return "exited"
  }
}

const notesOf = (labels: Readonly<Record<string, string>>): ReadonlyArray<string> | undefined => {
  const notes = labels[notesLabel]
  return notes === undefined || notes === "" ? undefined : notes.split("\n")
}

const infoFromInspect = (c: Docker.ContainerInspectInfo): SandboxInfo => {
  const labels = c.Config.Labels ?? {}
  const status = statusOfState(c.State)
  const notes = notesOf(labels)
  return {
    sandboxId: c.Id,
    agentId: labels[OwnershipLabels.agentId] ?? "",
    runtimeId: labels[OwnershipLabels.runtimeId] ?? "",
    status,
    labels,
    ...(status === "exited" ? { exitCode: c.State.ExitCode, oomKilled: c.State.OOMKilled } : {}),
    ...(notes === undefined ? {} : { notes })
  }
}

const exitCodeOfStatus = (status: string): number | undefined => {
  const match = /^Exited \((-?\d+)\)/.exec(status)
  return match === null ? undefined : Number(match[1])
}

const infoFromSummary = (c: Docker.ContainerInfo): SandboxInfo => {
  const labels = c.Labels ?? {}
  const status = statusOfState({ Status: c.State })
  const exitCode = status === "exited" ? exitCodeOfStatus(c.Status) : undefined
  const notes = notesOf(labels)
  return {
    sandboxId: c.Id,
    agentId: labels[OwnershipLabels.agentId] ?? "",
    runtimeId: labels[OwnershipLabels.runtimeId] ?? "",
    status,
    labels,
    ...(exitCode === undefined ? {} : { exitCode }),
    ...(notes === undefined ? {} : { notes })
  }
}

/** Engine events the backend reports, by Docker action name. */
const eventActions = ["die", "oom", "pause", "unpause", "start", "destroy", "health_status"] as const

const eventType = (action: string): SandboxEvent["type"] | undefined => {
  if (action.startsWith("health_status")) return "health"
  switch (action) {
    case "die":
      return "exited"
    case "oom":
      return "oom"
    case "pause":
      return "paused"
    case "unpause":
      return "unpaused"
    case "start":
      return "started"
    case "destroy":
      return "removed"
    default:
      return undefined
  }
}

/**
 * Runs a command through a small sh wrapper that records its shell's pid in `$0` (a file on the
 * sandbox's tmpfs) and removes it at the end, so a timed-out exec can be killed from a second exec:
 * the engine has no API to kill an exec'd process.
 */
const execWrapper = 'echo $$ > "$0"; "$@"; code=$?; rm -f "$0"; exit $code'
const execKiller = [
  // Children from /proc (field 4 of stat is the parent pid): images need no pgrep.
  'kids() { for s in /proc/[0-9]*/stat; do read -r pid comm state ppid rest < "$s" 2>/dev/null && [ "$ppid" = "$1" ] && echo "$pid"; done; }',
  'kill_tree() { kill -STOP "$1" 2>/dev/null; for c in $(kids "$1"); do kill_tree "$c"; done; kill -KILL "$1" 2>/dev/null; }',
  'p=$(cat "$0" 2>/dev/null) && kill_tree "$p"; rm -f "$0"'
].join("\n")

/** The smallest memory limit the engine accepts (6 MiB). */
const minimumMemoryBytes = 6 * 1024 * 1024

const collect = (stream: NodeJS.ReadableStream): Promise<Buffer> =>
  new Promise((resolve, reject) => {
    const chunks: Array<Buffer> = []
    stream.on("data", (chunk: Buffer) => chunks.push(chunk))
    stream.on("end", () => resolve(Buffer.concat(chunks)))
    stream.on("error", reject)
  })

/** Builds the Docker backend's service. Nothing is asked of the engine until the first operation. */
export const make = (options: DockerBackendOptions = {}): Effect.Effect<SandboxBackendShape> =>
  Effect.sync(() => {
    const docker = dockerClient(options)
    const endpoint = process.env.DOCKER_HOST ?? (docker.modem as { socketPath?: string }).socketPath ?? options.socketPath ?? "/var/run/docker.sock"
    const runtimes = options.runtimes ?? defaultRuntimes
    const defaultImage = options.defaultImage ?? defaultAgentImage
    const networkFallback = options.networkFallback ?? "stricter"
    /** Sandboxes this backend stopped or removed itself: their `die` is not an unexpected exit. */
    const stopping = new Set<string>()
    /** The previous CPU sample per sandbox, for a CPU percentage over the interval between calls. */
    const cpuSamples = new Map<string, { total: number; system: number }>()
    /** What provision returned, by sandbox id, so `start` need not inspect again. */
    const known = new Map<string, SandboxInfo>()
    /** What a container this instance created brought with it (its workspace volume, its own network), for its removal. */
    const made = new Map<string, { readonly volume: string; readonly network: string | undefined }>()
    let engineRuntimes: { runtimes: Readonly<Record<string, EngineRuntime>> } | undefined

    const ctx = (operation: string, sandboxId?: string, agentId?: string) => ({ endpoint, operation, sandboxId, agentId })

    /**
     * The engine's runtimes, cached (`docker info` costs tens of milliseconds); `fresh` asks again,
     * which `runtimeFor` does before failing on a missing runtime, so a newly registered one is seen.
     */
    const loadRuntimes = (fresh: boolean) =>
      Effect.gen(function* () {
        if (!fresh && engineRuntimes !== undefined) return engineRuntimes.runtimes
        const info = yield* call(ctx("read the engine's runtimes (docker info)"), () => docker.info() as Promise<{ Runtimes?: Record<string, EngineRuntime> }>)
        engineRuntimes = { runtimes: info.Runtimes ?? {} }
        return engineRuntimes.runtimes
      })

    const runtimeFor = (spec: SandboxSpec) =>
      Effect.gen(function* () {
        const runtimeClass = spec.sandbox.runtimeClass
        const runtimeName = runtimes[runtimeClass]
        if (runtimeName === undefined) {
          return yield* new RuntimeClassUnavailable({
            message: `runtime class "${runtimeClass}" (trust level ${spec.sandbox.trustLevel}) has no Docker runtime mapped; add docker.runtimes.${runtimeClass} to the configuration (mapped: ${Object.keys(runtimes).join(", ")})`,
            agentId: spec.agentId,
            runtimeClass
          })
        }
        let available = yield* loadRuntimes(false)
        if (available[runtimeName] === undefined) available = yield* loadRuntimes(true)
        const runtime = available[runtimeName]
        if (runtime === undefined) {
          return yield* new RuntimeClassUnavailable({
            message: `runtime class "${runtimeClass}" (trust level ${spec.sandbox.trustLevel}) maps to the Docker runtime "${runtimeName}", which the engine at ${endpoint} does not have (it has ${Object.keys(available).join(", ")}); install ${runtimeName} and register it in /etc/docker/daemon.json "runtimes", or remap docker.runtimes.${runtimeClass} to an installed runtime. The runtime never downgrades to a weaker class.`,
            agentId: spec.agentId,
            runtimeClass
          })
        }
        return { runtimeName, runtime }
      })

    /** The network a policy gets on a runtime, never looser than asked. */
    const networkFor = (spec: SandboxSpec, runtimeName: string, runtime: EngineRuntime, name: string) =>
      Effect.gen(function* () {
        const policy: NetworkPolicy = spec.sandbox.networkPolicy
        if (policy === "isolated") return { network: { mode: "none" } as SandboxNetwork, notes: [] as Array<string> }
        if ((runtime.runtimeArgs ?? []).includes("--network=none")) {
          if (networkFallback === "fail") {
            return yield* new NetworkPolicyUnsupported({
              message: `network policy "${policy}" cannot be given on the Docker runtime "${runtimeName}": the engine runs it with --network=none; set docker.network_fallback to "stricter" to run such agents without a network, or remove --network=none from the runtime in /etc/docker/daemon.json`,
              agentId: spec.agentId
            })
          }
          return {
            network: { mode: "none" } as SandboxNetwork,
            notes: [`network policy "${policy}" asked, running isolated (no network): the Docker runtime "${runtimeName}" has --network=none`]
          }
        }
        // Until restricted egress goes through an allowlisting proxy, restricted means no network: an
        // internal Docker network still reaches the host through its gateway address (and docker0's).
        if (policy === "restricted") return { network: { mode: "none" } as SandboxNetwork, notes: [] as Array<string> }
        return { network: { mode: "bridge" } as SandboxNetwork, notes: [] as Array<string> }
      })

    const validate = (spec: SandboxSpec): Effect.Effect<void, SandboxError> =>
      Effect.suspend((): Effect.Effect<void, SandboxError> => {
        const { resources, securityContext } = spec.sandbox
        const agent = { agentId: spec.agentId }
        if (!Number.isInteger(resources.pids) || resources.pids < 1) {
          return Effect.fail(new ResourceLimitsInvalid({ message: `resources.pids must be a positive integer, got ${resources.pids}`, key: "resources.pids", ...agent }))
        }
        if (!Number.isFinite(resources.memoryBytes) || resources.memoryBytes < minimumMemoryBytes) {
          return Effect.fail(
            new ResourceLimitsInvalid({
              message: `resources.memory ${resources.memory} is below the Docker engine's minimum of 6Mi; ask for at least 6Mi`,
              key: "resources.memory",
              ...agent
            })
          )
        }
        if (!Number.isInteger(resources.cpuMillis) || resources.cpuMillis < 1) {
          return Effect.fail(new ResourceLimitsInvalid({ message: `resources.cpu must be at least 1m, got ${resources.cpu}`, key: "resources.cpu", ...agent }))
        }
        if (securityContext.runAsNonRoot && securityContext.runAsUser === 0) {
          return Effect.fail(
            new SecurityContextViolation({
              message: "the security context asks for runAsNonRoot with runAsUser 0; run as a non-root uid (65534)",
              key: "securityContext.runAsUser",
              ...agent
            })
          )
        }
        const name = spec.command?.[0]
        if (name !== undefined && name === "") {
          return Effect.fail(new SandboxConfigInvalid({ message: "the command's first element is empty; name a program", key: "command", ...agent }))
        }
        return Effect.void
      })

    const inspectContainer = (sandboxId: string) =>
      call(ctx(`inspect sandbox ${sandboxId}`, sandboxId), () => docker.getContainer(sandboxId).inspect())

    /** The container of this name, if the engine has one. */
    const findByName = (name: string) =>
      Effect.tryPromise({
        try: () => docker.getContainer(name).inspect(),
        catch: (error) => error
      }).pipe(
        Effect.map((info): Docker.ContainerInspectInfo | undefined => info),
        Effect.catch((error) => (statusOf(error) === 404 ? Effect.succeed(undefined) : Effect.fail(translate(error, ctx(`look up container ${name}`)))))
      )

    const removeNetwork = (name: string) =>
      Effect.tryPromise({ try: () => docker.getNetwork(name).remove(), catch: (error) => error }).pipe(
        Effect.catch((error) => (statusOf(error) === 404 ? Effect.void : Effect.fail(translate(error, ctx(`remove network ${name}`)))))
      )

    const removeVolume = (name: string) =>
      Effect.tryPromise({ try: () => docker.getVolume(name).remove(), catch: (error) => error }).pipe(
        // 409: still in use by a container whose removal the engine has not finished; retried briefly
        Effect.retry({ schedule: Schedule.exponential("50 millis", 2), times: 5, while: (error) => statusOf(error) === 409 }),
        Effect.catch((error) => (statusOf(error) === 404 ? Effect.void : Effect.fail(translate(error, ctx(`remove volume ${name}`)))))
      )

    const createNetwork = (name: string, labels: Readonly<Record<string, string>>, agentId: string) =>
      Effect.tryPromise({
        try: () => docker.createNetwork({ Name: name, Driver: "bridge", Internal: true, CheckDuplicate: true, Labels: { ...labels } }),
        catch: (error) => error
      }).pipe(
        Effect.asVoid,
        Effect.catch((error) => (statusOf(error) === 409 ? Effect.void : Effect.fail(translate(error, ctx(`create the internal network ${name}`, undefined, agentId)))))
      )

    const adopt = (existing: Docker.ContainerInspectInfo, spec: SandboxSpec) =>
      Effect.gen(function* () {
        const info = infoFromInspect(existing)
        if (info.agentId !== spec.agentId || info.runtimeId !== spec.runtimeId) {
          return yield* new SpawnFailed({
            message: `a container named ${existing.Name} exists but belongs to agent ${info.agentId || "(none)"} of runtime ${info.runtimeId || "(none)"}; remove it (docker rm -f ${existing.Id.slice(0, 12)})`,
            agentId: spec.agentId
          })
        }
        return info
      })

    const provision = (spec: SandboxSpec): Effect.Effect<SandboxInfo, SandboxError> =>
      Effect.gen(function* () {
        yield* validate(spec)
        const { runtimeName, runtime } = yield* runtimeFor(spec)
        const name = containerNameOf(spec)
        const { network, notes } = yield* networkFor(spec, runtimeName, runtime, name)
        const labels = { ...sandboxLabels(spec), ...(notes.length === 0 ? {} : { [notesLabel]: notes.join("\n") }) }
        const plan: ContainerPlan = { name, image: spec.image ?? defaultImage, runtimeName, network, volumeName: volumeNameOf(name), labels }
        if (network.mode === "internal") yield* createNetwork(network.name, labels, spec.agentId)
        const created = yield* Effect.tryPromise({ try: () => docker.createContainer(containerCreateOptions(spec, plan)), catch: (error) => error }).pipe(
          Effect.map((container): Docker.Container | undefined => container),
          Effect.catch((error): Effect.Effect<Docker.Container | undefined, SandboxError> => {
            if (statusOf(error) === 409) return Effect.succeed(undefined)
            // Leave nothing behind: the network and any volume the engine made before refusing.
            const cleanup = Effect.ignore(Effect.all([network.mode === "internal" ? removeNetwork(network.name) : Effect.void, removeVolume(plan.volumeName)]))
            const message = engineMessage(error)
            const failure: SandboxError =
              statusOf(error) === 404 && /image/i.test(message)
                ? new SpawnFailed({
                    message: `the image ${plan.image} is not on the Docker engine at ${endpoint} (${message}); build the default agent image with \`l02 image build\` or build/pull ${plan.image}`,
                    agentId: spec.agentId
                  })
                : statusOf(error) === undefined
                  ? translate(error, ctx(`create the sandbox of agent ${spec.agentId}`, undefined, spec.agentId))
                  : new SpawnFailed({ message: `the Docker engine refused the sandbox of agent ${spec.agentId}: ${message}`, agentId: spec.agentId })
            return Effect.andThen(cleanup, Effect.fail(failure))
          })
        )
        // The name is taken: the agent already has its container (provisioned before, or concurrently).
        const info = created === undefined ? yield* findByName(name) : undefined
        if (created === undefined) {
          if (info === undefined) return yield* new SpawnFailed({ message: `container ${name} was created and removed concurrently; provision again`, agentId: spec.agentId })
          return yield* adopt(info, spec)
        }
        const provisioned: SandboxInfo = {
          sandboxId: created.id,
          agentId: spec.agentId,
          runtimeId: spec.runtimeId,
          status: "created",
          labels,
          ...(notes.length === 0 ? {} : { notes })
        }
        known.set(created.id, provisioned)
        made.set(created.id, { volume: plan.volumeName, network: network.mode === "internal" ? network.name : undefined })
        return provisioned
      })

    const start = (sandboxId: string): Effect.Effect<SandboxInfo, SandboxError> =>
      Effect.gen(function* () {
        stopping.delete(sandboxId)
        yield* Effect.tryPromise({ try: () => docker.getContainer(sandboxId).start(), catch: (error) => error }).pipe(
          Effect.catch((error) => {
            if (statusOf(error) === 304) return Effect.void
            if (statusOf(error) === 404 || statusOf(error) === undefined) return Effect.fail(translate(error, ctx(`start sandbox ${sandboxId}`, sandboxId)))
            return Effect.fail(new SpawnFailed({ message: `the Docker engine could not start sandbox ${sandboxId}: ${engineMessage(error)}` }))
          })
        )
        // Saves a round trip on the spawn path; an immediate exit still arrives as an event.
        const cached = known.get(sandboxId)
        return cached === undefined ? infoFromInspect(yield* inspectContainer(sandboxId)) : { ...cached, status: "running" as const }
      })

    const simple = (sandboxId: string, verb: string, f: (c: Docker.Container) => Promise<unknown>, okStatus?: number) =>
      Effect.tryPromise({ try: () => f(docker.getContainer(sandboxId)), catch: (error) => error }).pipe(
        Effect.asVoid,
        Effect.catch((error) => (okStatus !== undefined && statusOf(error) === okStatus ? Effect.void : Effect.fail(translate(error, ctx(`${verb} sandbox ${sandboxId}`, sandboxId)))))
      )

    /** Turns a refused pause (unpause) into success when the container is paused (running) already. */
    const alreadyAs =
      (sandboxId: string, paused: boolean) =>
      <A>(effect: Effect.Effect<A, SandboxError>): Effect.Effect<A | void, SandboxError> =>
        effect.pipe(
          Effect.catch((error) =>
            Effect.tryPromise({ try: () => docker.getContainer(sandboxId).inspect(), catch: () => error }).pipe(
              Effect.flatMap((info) => (info.State.Running && info.State.Paused === paused ? Effect.void : Effect.fail(error)))
            )
          )
        )

    /**
     * Force-removes a container. The engine can refuse transiently (409 while another removal of the
     * same container is in progress, 500 while containerd has not yet reported a kill, a dropped
     * socket while it restarts): those are retried with backoff for a few seconds, and a 409 is over
     * once the container is gone. Only a container that is still there afterwards fails the call.
     */
    const removeContainer = (id: string) =>
      Effect.tryPromise({ try: () => docker.getContainer(id).remove({ force: true, v: true }), catch: (error) => error }).pipe(
        Effect.asVoid,
        Effect.catch((error) => (statusOf(error) === 404 ? Effect.void : Effect.fail(error))),
        Effect.retry({ schedule: Schedule.exponential("100 millis", 2), times: 6 }),
        Effect.catch((error) =>
          // still failing: if the container is gone (a concurrent removal won), the removal succeeded
          Effect.tryPromise({ try: () => docker.getContainer(id).inspect(), catch: (e) => e }).pipe(
            Effect.matchEffect({
              onFailure: (e) => (statusOf(e) === 404 ? Effect.void : Effect.fail(translate(error, ctx(`remove sandbox ${id}`, id)))),
              onSuccess: () => Effect.fail(translate(error, ctx(`remove sandbox ${id}`, id)))
            })
          )
        )
      )

    const remove = (sandboxId: string): Effect.Effect<void, SandboxError> =>
      Effect.gen(function* () {
        // A container this instance made: its volume and network are known, so no inspect first.
        const own = made.get(sandboxId)
        if (own !== undefined) {
          stopping.add(sandboxId)
          cpuSamples.delete(sandboxId)
          known.delete(sandboxId)
          yield* removeContainer(sandboxId)
          made.delete(sandboxId)
          yield* removeVolume(own.volume)
          if (own.network !== undefined) yield* removeNetwork(own.network)
          return
        }
        const existing = yield* Effect.tryPromise({ try: () => docker.getContainer(sandboxId).inspect(), catch: (error) => error }).pipe(
          Effect.map((info): Docker.ContainerInspectInfo | undefined => info),
          Effect.catch((error) => (statusOf(error) === 404 ? Effect.succeed(undefined) : Effect.fail(translate(error, ctx(`remove sandbox ${sandboxId}`, sandboxId)))))
        )
        if (existing === undefined) return
        stopping.add(existing.Id)
        cpuSamples.delete(existing.Id)
        known.delete(existing.Id)
        yield* removeContainer(existing.Id)
        const managed = existing.Config.Labels?.[OwnershipLabels.managedBy] !== undefined
        if (!managed) return
        const volume = (existing.Mounts ?? []).find((m) => m.Destination === workspacePath && m.Type === "volume")?.Name
        if (volume !== undefined && volume !== "") yield* removeVolume(volume)
        const networkMode = existing.HostConfig.NetworkMode ?? ""
        if (networkMode === networkNameOf(existing.Name.replace(/^\//, ""))) yield* removeNetwork(networkMode)
      })

    const list = (labels: Readonly<Record<string, string>>) =>
      call(ctx("list sandboxes"), () =>
        docker.listContainers({ all: true, filters: { label: Object.entries(labels).map(([k, v]) => `${k}=${v}`) } })
      ).pipe(Effect.map((containers) => containers.map(infoFromSummary)))

    const exec = (sandboxId: string, request: Parameters<SandboxBackendShape["exec"]>[1]): Stream.Stream<ExecChunk, SandboxError> =>
      Stream.callback<ExecChunk, SandboxError>((queue) =>
        Effect.gen(function* () {
          const container = docker.getContainer(sandboxId)
          const pidFile = `/tmp/.l02-exec-${randomUUID()}`
          const hasStdin = request.stdin !== undefined
          const execution = yield* call(ctx(`exec in sandbox ${sandboxId}`, sandboxId), () =>
            container.exec({
              Cmd: ["/bin/sh", "-c", execWrapper, pidFile, ...request.command],
              AttachStdin: hasStdin,
              AttachStdout: true,
              AttachStderr: true,
              Tty: false,
              ...(request.workingDir === undefined ? {} : { WorkingDir: request.workingDir }),
              ...(request.env === undefined ? {} : { Env: Object.entries(request.env).map(([k, v]) => `${k}=${v}`) })
            })
          )
          const socket = (yield* call(ctx(`exec in sandbox ${sandboxId}`, sandboxId), () =>
            execution.start({ hijack: true, stdin: hasStdin })
          )) as unknown as Duplex
          let used = 0
          let truncated = false
          let timedOut = false
          let finished = false
          const decoders = { stdout: new TextDecoder(), stderr: new TextDecoder() }
          const demuxer = new Demuxer((stream, payload) => {
            if (truncated) return
            const room = request.maxOutputBytes - used
            let part = payload
            if (part.length > room) {
              part = utf8Prefix(payload, room)
              truncated = true
            }
            used += part.length
            const data = decoders[stream].decode(part, { stream: !truncated })
            if (data !== "") Queue.offerUnsafe(queue, { _tag: stream, data })
          })
          const kill = () =>
            container
              .exec({ Cmd: ["/bin/sh", "-c", execKiller, pidFile], AttachStdout: true, AttachStderr: true })
              .then((killer) => killer.start({}))
              .then((output) => collect(output))
              .catch(() => undefined)
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
          let forceTimer: ReturnType<typeof setTimeout> | undefined
          const timer = setTimeout(() => {
            timedOut = true
            void kill()
            // If the killed process left the output open (an orphan holding the pipe), end anyway.
            forceTimer = setTimeout(() => {
              socket.destroy()
              finish(137)
            }, 3000)
          }, request.timeoutMs)
          socket.on("data", (chunk: Buffer) => demuxer.push(chunk))
          socket.on("error", (error) => {
            if (finished) return
            finished = true
            clearTimeout(timer)
            clearTimeout(forceTimer)
            Queue.failCauseUnsafe(
              queue,
              Cause.fail(new SandboxOperationFailed({ message: `the output of an exec in sandbox ${sandboxId} broke off: ${error.message}; run it again` }))
            )
          })
          socket.on("end", () => {
            execution
              .inspect()
              .then((state) => finish(typeof state.ExitCode === "number" ? state.ExitCode : 137))
              .catch(() => finish(timedOut ? 137 : 1))
          })
          yield* pipeStdin(request.stdin, { write: (data) => socket.write(data), end: (data) => (data === undefined ? socket.end() : socket.end(data)) })
          yield* Effect.addFinalizer(() =>
            Effect.sync(() => {
              clearTimeout(timer)
              clearTimeout(forceTimer)
              if (!finished) {
                finished = true
                socket.destroy()
                void kill()
              }
            })
          )
        })
      )

    const attach = (sandboxId: string) =>
      Effect.gen(function* () {
        const socket = (yield* Effect.acquireRelease(
          call(ctx(`attach to sandbox ${sandboxId}`, sandboxId), () =>
            docker.getContainer(sandboxId).attach({ stream: true, stdin: true, stdout: true, stderr: true, hijack: true })
          ),
          (s) => Effect.sync(() => (s as unknown as Duplex).destroy())
        )) as unknown as Duplex
        const queue = yield* Queue.unbounded<OutputLine, SandboxError | Cause.Done>()
        const lines = new LineSplitter((stream, line) => Queue.offerUnsafe(queue, { stream, line }))
        const demuxer = new Demuxer((stream, payload) => lines.push(stream, payload))
        socket.on("data", (chunk: Buffer) => demuxer.push(chunk))
        const end = () => {
          lines.flush()
          Queue.endUnsafe(queue)
        }
        socket.on("end", end)
        socket.on("close", end)
        socket.on("error", end)
        const attachment: Attachment = {
          write: (line) =>
            Effect.callback<void, SandboxError>((resume) => {
              if (socket.destroyed || !socket.writable) {
                resume(Effect.fail(new SandboxOperationFailed({ message: `the attachment to sandbox ${sandboxId} is closed: its main program ended; attach again after a start` })))
                return
              }
              socket.write(`${line}\n`, (error) =>
                resume(
                  error === undefined || error === null
                    ? Effect.void
                    : Effect.fail(new SandboxOperationFailed({ message: `writing to sandbox ${sandboxId} failed: ${error.message}; attach again` }))
                )
              )
            }),
          output: Stream.fromQueue(queue)
        }
        return attachment
      })

    const events: Stream.Stream<SandboxEvent, SandboxError> = Stream.callback<SandboxEvent, SandboxError>((queue) =>
      Effect.gen(function* () {
        const stream = yield* Effect.acquireRelease(
          call(ctx("follow the engine's events"), () =>
            docker.getEvents({ filters: { type: ["container"], label: [OwnershipLabels.managedBy], event: [...eventActions] } })
          ),
          (s) => Effect.sync(() => (s as unknown as Duplex).destroy())
        )
        let buffer = ""
        stream.on("data", (chunk: Buffer) => {
          buffer += chunk.toString("utf8")
          const lines = buffer.split("\n")
          buffer = lines.pop()!
          for (const line of lines) {
            if (line.trim() === "") continue
            const raw = JSON.parse(line) as {
              Action?: string
              id?: string
              timeNano?: number
              time?: number
              Actor?: { ID?: string; Attributes?: Record<string, string> }
            }
            const action = raw.Action ?? ""
            const type = eventType(action)
            const sandboxId = raw.Actor?.ID ?? raw.id ?? ""
            if (type === undefined || sandboxId === "") continue
            if (type === "exited" && stopping.has(sandboxId)) continue
            const attributes = raw.Actor?.Attributes ?? {}
            const exitCode = type === "exited" && attributes.exitCode !== undefined ? Number(attributes.exitCode) : undefined
            Queue.offerUnsafe(queue, {
              sandboxId,
              agentId: attributes[OwnershipLabels.agentId] ?? "",
              type,
              ...(exitCode === undefined ? {} : { exitCode }),
              ...(type === "health" ? { healthy: action.endsWith(": healthy") } : {}),
              at: raw.timeNano !== undefined ? Math.floor(raw.timeNano / 1e6) : (raw.time ?? 0) * 1000
            })
          }
        })
        stream.on("end", () => Queue.endUnsafe(queue))
        stream.on("error", () => Queue.endUnsafe(queue))
      })
    )

    interface RawStats {
      readonly cpu_stats?: { cpu_usage?: { total_usage?: number; percpu_usage?: Array<number> }; system_cpu_usage?: number; online_cpus?: number }
      readonly precpu_stats?: { cpu_usage?: { total_usage?: number }; system_cpu_usage?: number }
      readonly memory_stats?: { usage?: number; stats?: Record<string, number> }
      readonly pids_stats?: { current?: number }
    }

    const stats = (sandboxId: string) =>
      Effect.gen(function* () {
        const previous = cpuSamples.get(sandboxId)
        // The first call lets the engine take two samples (about a second); later calls are one-shot
        // and measure against the previous call's sample.
        const raw = (yield* call(ctx(`read the stats of sandbox ${sandboxId}`, sandboxId), () =>
          docker.getContainer(sandboxId).stats(previous === undefined ? { stream: false } : { stream: false, "one-shot": true })
        )) as RawStats
        const total = raw.cpu_stats?.cpu_usage?.total_usage ?? 0
        const system = raw.cpu_stats?.system_cpu_usage ?? 0
        const base = previous ?? { total: raw.precpu_stats?.cpu_usage?.total_usage ?? 0, system: raw.precpu_stats?.system_cpu_usage ?? 0 }
        const cpus = raw.cpu_stats?.online_cpus ?? raw.cpu_stats?.cpu_usage?.percpu_usage?.length ?? 1
        const systemDelta = system - base.system
        const cpuDelta = total - base.total
        const cpuPercent = systemDelta > 0 && cpuDelta > 0 && base.system > 0 ? (cpuDelta / systemDelta) * cpus * 100 : 0
        if (system > 0) cpuSamples.set(sandboxId, { total, system })
        const memory = raw.memory_stats
        const inactive = memory?.stats?.inactive_file ?? memory?.stats?.total_inactive_file ?? 0
        const memoryBytes = Math.max(0, (memory?.usage ?? 0) - inactive)
        const pids = raw.pids_stats?.current
        return { cpuPercent, memoryBytes, ...(pids === undefined || pids === 0 ? {} : { pids }) }
      })

    const exportWorkspace = (sandboxId: string) =>
      Effect.gen(function* () {
        const bytes = yield* call(ctx(`export the workspace of sandbox ${sandboxId}`, sandboxId), async () =>
          collect(await docker.getContainer(sandboxId).getArchive({ path: `${workspacePath}/.` }))
        )
        // The engine names entries after the directory (`./`, `workspace/...`); the archive format wants them relative to it.
        return yield* Effect.try({
          try: () => {
            const entries = readTar(new Uint8Array(bytes))
            const top = entries.every((e) => e.path === "workspace" || e.path.startsWith("workspace/"))
            return writeTar(
              entries
                .map((e) => ({ ...e, path: top ? e.path.slice("workspace".length).replace(/^\//, "") : e.path }))
                .filter((e) => e.path !== "")
            )
          },
          catch: (error) => new SandboxOperationFailed({ message: `the workspace archive of sandbox ${sandboxId} could not be read: ${(error as Error).message}` })
        })
      })

    const importWorkspace = (sandboxId: string, archive: Uint8Array) =>
      Effect.gen(function* () {
        const container = yield* inspectContainer(sandboxId)
        const [uid = 0, gid = uid] = (container.Config.User ?? "").split(":").map((part) => Number(part)).filter((n) => Number.isInteger(n))
        // Re-written from parsed entries: only relative paths of files and directories reach the engine,
        // owned by the sandbox's user so the agent can write them.
        const clean = yield* Effect.try({
          try: () =>
            writeRootfsTar(
              readTar(archive).map((e) => ({ path: e.path, type: e.type, data: e.data, mode: e.mode ?? (e.type === "directory" ? 0o755 : 0o644), uid, gid }))
            ),
          catch: (error) =>
            new SandboxConfigInvalid({
              message: `the workspace archive cannot be imported into sandbox ${sandboxId}: ${error instanceof ArchiveInvalid ? error.message : String(error)}`,
              key: "archive"
            })
        })
        yield* call(ctx(`import the workspace into sandbox ${sandboxId}`, sandboxId), () =>
          docker.getContainer(sandboxId).putArchive(Buffer.from(clean), { path: workspacePath })
        )
      })

    const shape: SandboxBackendShape = {
      capabilities: Effect.map(loadRuntimes(false), (available) => ({
        name: "docker",
        runtimeClasses: Object.entries(runtimes)
          .filter(([, runtimeName]) => available[runtimeName] !== undefined)
          .map(([runtimeClass]) => runtimeClass),
        networkPolicies: ["allow_egress", "restricted", "isolated"] as const,
        workspaceArchive: true
      })),
      provision,
      start,
      // Idempotent (a runtime recovering from a crash may repeat either): the engine refuses to pause a
      // paused container or unpause a running one; when it did, the container is already as asked.
      pause: (sandboxId) => simple(sandboxId, "pause", (c) => c.pause()).pipe(alreadyAs(sandboxId, true)),
      unpause: (sandboxId) => simple(sandboxId, "unpause", (c) => c.unpause()).pipe(alreadyAs(sandboxId, false)),
      stop: (sandboxId, { graceMs }) =>
        Effect.suspend(() => {
          stopping.add(sandboxId)
          return simple(sandboxId, "stop", (c) => c.stop({ t: Math.max(0, Math.ceil(graceMs / 1000)) }), 304)
        }),
      remove,
      inspect: (sandboxId) => Effect.map(inspectContainer(sandboxId), infoFromInspect),
      list,
      exec,
      attach,
      events,
      stats,
      exportWorkspace,
      importWorkspace
    }
    return shape
  })

/**
 * The Docker backend as a layer. Building it does not contact the engine; an engine that is down
 * makes each operation fail with BackendUnavailable (E2047) naming the socket.
 *
 * @example
 * ```ts
 * Effect.provide(program, DockerBackend.layer({ socketPath: "/var/run/docker.sock" }))
 * ```
 */
export const layer = (options: DockerBackendOptions = {}): Layer.Layer<SandboxBackend> => Layer.effect(SandboxBackend, make(options))
