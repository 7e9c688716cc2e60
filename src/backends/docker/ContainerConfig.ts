/**
 * The hardened container a sandbox spec becomes: pure data, so tests and the bench can read exactly
 * what the backend asks the engine for (the bench creates raw containers with this same config).
 */
import type Docker from "dockerode"
import type { SandboxSpec } from "../../services/SandboxBackend.ts"

/** Where the agent's workspace volume is mounted, and the value of `L02_WORKSPACE`. */
export const workspacePath = "/workspace"

/** Label holding what the backend did stricter than asked, so `inspect` can report it after a restart. */
export const notesLabel = "l02.dev/sandbox-notes"

/** The network a sandbox gets: none at all, a per-agent internal network, or the default bridge. */
export type SandboxNetwork =
  | { readonly mode: "none" }
  | { readonly mode: "internal"; readonly name: string }
  | { readonly mode: "bridge" }

/** The resolved inputs of a container: everything decided before the engine is asked. */
export interface ContainerPlan {
  readonly name: string
  readonly image: string
  readonly runtimeName: string
  readonly network: SandboxNetwork
  readonly volumeName: string
  readonly labels: Readonly<Record<string, string>>
}

const safe = (value: string): string => value.replace(/[^a-zA-Z0-9_.-]/g, "_").slice(0, 80)

/**
 * The Docker name of an agent's container; the volume and network names derive from it.
 * Why a fixed name: the engine refuses a second container of the same name, which makes
 * `provision` idempotent by agent id even when two calls race.
 */
export const containerNameOf = (spec: Pick<SandboxSpec, "runtimeId" | "agentId">): string =>
  `l02-${safe(spec.runtimeId === "" ? "default" : spec.runtimeId)}-${safe(spec.agentId)}`

/** The workspace volume of a container name. */
export const volumeNameOf = (containerName: string): string => `${containerName}-workspace`

/** The per-agent internal network of a container name. */
export const networkNameOf = (containerName: string): string => `${containerName}-net`

/** Size of the /tmp tmpfs. */
export const tmpfsSize = "64m"

/**
 * The create options of a sandbox: user 65534, read-only root (unless the security context says
 * otherwise, as for TRUSTED), tmpfs /tmp, the workspace volume, all capabilities dropped,
 * no-new-privileges, the engine's default seccomp profile, pids/memory/CPU limits, the network,
 * the runtime, stdin open for attach.
 */
export const containerCreateOptions = (spec: SandboxSpec, plan: ContainerPlan): Docker.ContainerCreateOptions => {
  const { securityContext: security, resources } = spec.sandbox
  const securityOpt = [
    ...(security.allowPrivilegeEscalation ? [] : ["no-new-privileges:true"]),
    ...(security.seccompProfile === "Unconfined" ? ["seccomp=unconfined"] : [])
  ]
  const networkMode = plan.network.mode === "none" ? "none" : plan.network.mode === "internal" ? plan.network.name : "bridge"
  return {
    name: plan.name,
    Image: plan.image,
    ...(spec.command === undefined ? {} : { Cmd: [...spec.command] }),
    Env: Object.entries({ ...spec.env, L02_WORKSPACE: workspacePath, L02_AGENT_ID: spec.agentId }).map(([k, v]) => `${k}=${v}`),
    Labels: { ...plan.labels },
    User: `${security.runAsUser}:${security.runAsGroup}`,
    WorkingDir: workspacePath,
    AttachStdin: true,
    AttachStdout: true,
    AttachStderr: true,
    OpenStdin: true,
    StdinOnce: false,
    Tty: false,
    // Skips the engine's network setup entirely (about 120 ms) and still gives an empty namespace.
    ...(plan.network.mode === "none" ? { NetworkDisabled: true } : {}),
    HostConfig: {
      Runtime: plan.runtimeName,
      NetworkMode: networkMode,
      ReadonlyRootfs: security.readOnlyRootFilesystem,
      Tmpfs: { "/tmp": `rw,nosuid,nodev,noexec,size=${tmpfsSize}` },
      Mounts: [
        {
          Type: "volume",
          Source: plan.volumeName,
          Target: workspacePath,
          VolumeOptions: { Labels: { ...plan.labels } }
        } as Docker.MountSettings
      ],
      CapDrop: [...security.dropCapabilities],
      SecurityOpt: securityOpt,
      PidsLimit: resources.pids,
      Memory: resources.memoryBytes,
      // Equal to Memory: no swap, so the memory limit is the limit.
      MemorySwap: resources.memoryBytes,
      NanoCpus: resources.cpuMillis * 1_000_000
    }
  }
}
