/**
 * The port every sandbox backend implements: process (embedded), Docker and Kubernetes.
 *
 * A backend owns sandboxes it can find again by label: every sandbox carries the ownership labels
 * (`OwnershipLabels`), so a restarted runtime can adopt what it owns and reap what nobody owns.
 * Backends translate their foreign errors at the edge; callers only ever see {@link SandboxError}.
 *
 * Semantics every implementation must honour (the contract suite in test/services checks them):
 * - `provision` is idempotent by agent id: provisioning an agent that already has a sandbox of this
 *   runtime returns that sandbox instead of creating a second one.
 * - `provision` fails closed: a runtime class, network policy or security context the backend cannot
 *   give is refused with E2041/E2043/E2044 and leaves nothing behind.
 * - `stop` is graceful for `graceMs`, then forced; `remove` of an unknown id succeeds (idempotent).
 * - `pause` stops every process of the sandbox from running; `unpause` lets them run again.
 */
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import type * as Stream from "effect/Stream"
import type { SandboxError } from "../domain/Errors.ts"
import { OwnershipLabels } from "../domain/Ids.ts"
import type { SandboxConfiguration } from "../domain/SandboxConfiguration.ts"
import { makeMemorySandbox, type MemorySandboxOptions } from "./internal/memorySandbox.ts"

/** What to build: the agent's identity, its program and its sandbox configuration. */
export interface SandboxSpec {
  readonly agentId: string
  readonly sessionId: string
  readonly runtimeId: string
  readonly name: string
  readonly image?: string | undefined
  readonly command?: ReadonlyArray<string> | undefined
  readonly env: Readonly<Record<string, string>>
  readonly labels: Readonly<Record<string, string>>
  readonly sandbox: SandboxConfiguration
  /**
   * Nothing goes into the sandbox between provision and start (no workspace import): a backend that
   * holds a provisioned program until `start` (Kubernetes' start gate, an init container opened by an
   * exec) may let it start at once instead. Default false: held until start.
   */
  readonly startImmediately?: boolean | undefined
}

/** Coarse status of a sandbox, the same words on every backend. */
export type SandboxStatus = "created" | "running" | "paused" | "exited" | "removed"

/** What a backend reports about one sandbox. */
export interface SandboxInfo {
  readonly sandboxId: string
  readonly agentId: string
  readonly runtimeId: string
  readonly status: SandboxStatus
  readonly labels: Readonly<Record<string, string>>
  readonly exitCode?: number | undefined
  readonly oomKilled?: boolean | undefined
  /** The main program ended after the kernel refused it a new process: the sandbox reached its process limit. */
  readonly forkRefused?: boolean | undefined
  /** Where the backend ran the sandbox stricter than asked, it says so here. */
  readonly notes?: ReadonlyArray<string> | undefined
}

/** Something that happened to a sandbox outside of the runtime's own calls. */
export interface SandboxEvent {
  readonly sandboxId: string
  readonly agentId: string
  readonly type: "exited" | "oom" | "paused" | "unpaused" | "started" | "removed" | "health"
  readonly exitCode?: number | undefined
  /** With `exited`: the program ended after a fork was refused (its process limit); see {@link SandboxInfo.forkRefused}. */
  readonly forkRefused?: boolean | undefined
  readonly healthy?: boolean | undefined
  readonly at: number
}

/** A command to run inside a running sandbox. */
export interface ExecRequest {
  readonly command: ReadonlyArray<string>
  /**
   * The command's input: all of it as a string (then end of input), or a stream written as it comes,
   * with end of input when the stream ends (a long-lived program such as a stdio MCP server).
   */
  readonly stdin?: string | Stream.Stream<string> | undefined
  readonly workingDir?: string | undefined
  readonly env?: Readonly<Record<string, string>> | undefined
  readonly timeoutMs: number
  /** Output beyond this many bytes (stdout and stderr together) is dropped and `truncated` set. */
  readonly maxOutputBytes: number
}

/** One piece of an exec's output, then exactly one `exit`. */
export type ExecChunk =
  | { readonly _tag: "stdout"; readonly data: string }
  | { readonly _tag: "stderr"; readonly data: string }
  | {
    readonly _tag: "exit"
    readonly exitCode: number
    readonly timedOut: boolean
    readonly truncated: boolean
    /** The command failed after the kernel refused it a new process: the sandbox is at its process limit (E2050). */
    readonly forkRefused?: boolean | undefined
  }

/** A line written by the agent's main process. */
export interface OutputLine {
  readonly stream: "stdout" | "stderr"
  readonly line: string
}

/** A live connection to the agent's main process: write lines to its stdin, read its output lines. */
export interface Attachment {
  readonly write: (line: string) => Effect.Effect<void, SandboxError>
  readonly output: Stream.Stream<OutputLine, SandboxError>
}

/** Live resource usage of a sandbox. */
export interface SandboxStats {
  readonly cpuPercent: number
  readonly memoryBytes: number
  readonly pids?: number | undefined
}

/** What a backend can host, for fail-closed checks and helpful errors. */
export interface BackendCapabilities {
  readonly name: string
  readonly runtimeClasses: ReadonlyArray<string>
  readonly networkPolicies: ReadonlyArray<"allow_egress" | "restricted" | "isolated">
  /** Whether `exportWorkspace`/`importWorkspace` are supported. */
  readonly workspaceArchive: boolean
  /** False when sandboxes cannot be paused (Kubernetes): a suspend then always checkpoints. Default true. */
  readonly pause?: boolean | undefined
  /**
   * What the built-in file and shell tools run in its sandboxes: POSIX utilities (`sh`, `cat`, ...;
   * the default) or the in-memory backend's programs (`l02-read`, `l02-write`, ...).
   */
  readonly toolDialect?: "posix" | "memory" | undefined
}

/** The shape of a sandbox backend. */
export interface SandboxBackendShape {
  readonly capabilities: Effect.Effect<BackendCapabilities, SandboxError>
  readonly provision: (spec: SandboxSpec) => Effect.Effect<SandboxInfo, SandboxError>
  readonly start: (sandboxId: string) => Effect.Effect<SandboxInfo, SandboxError>
  readonly pause: (sandboxId: string) => Effect.Effect<void, SandboxError>
  readonly unpause: (sandboxId: string) => Effect.Effect<void, SandboxError>
  readonly stop: (sandboxId: string, options: { readonly graceMs: number }) => Effect.Effect<void, SandboxError>
  readonly remove: (sandboxId: string) => Effect.Effect<void, SandboxError>
  readonly inspect: (sandboxId: string) => Effect.Effect<SandboxInfo, SandboxError>
  readonly list: (labels: Readonly<Record<string, string>>) => Effect.Effect<ReadonlyArray<SandboxInfo>, SandboxError>
  readonly exec: (sandboxId: string, request: ExecRequest) => Stream.Stream<ExecChunk, SandboxError>
  readonly attach: (sandboxId: string) => Effect.Effect<Attachment, SandboxError, Scope.Scope>
  readonly events: Stream.Stream<SandboxEvent, SandboxError>
  readonly stats: (sandboxId: string) => Effect.Effect<SandboxStats, SandboxError>
  readonly exportWorkspace: (sandboxId: string) => Effect.Effect<Uint8Array, SandboxError>
  readonly importWorkspace: (sandboxId: string, archive: Uint8Array) => Effect.Effect<void, SandboxError>
}

/** The sandbox backend port. Implementations: `ProcessBackend`, `DockerBackend`, `KubernetesBackend`, `MemoryBackend`. */
export class SandboxBackend extends Context.Service<SandboxBackend, SandboxBackendShape>()("l02/SandboxBackend") {}

/**
 * The labels a backend puts on a sandbox: the spec's labels plus the ownership labels, taken
 * from the spec's own fields so that a sandbox can always be found by agent and runtime id.
 */
export const sandboxLabels = (spec: SandboxSpec): Readonly<Record<string, string>> => ({
  ...spec.labels,
  [OwnershipLabels.managedBy]: spec.labels[OwnershipLabels.managedBy] ?? "l02",
  [OwnershipLabels.agentId]: spec.agentId,
  [OwnershipLabels.runtimeId]: spec.runtimeId,
  [OwnershipLabels.sessionId]: spec.sessionId
})

export type { MemoryProgram, MemoryProgramContext, MemorySandboxOptions } from "./internal/memorySandbox.ts"

/**
 * The in-memory backend: real sandbox state and lifecycle, programs run in-process.
 *
 * Programs are looked up by the command's first element: `l02-echo` (the default main program:
 * echoes stdin lines; the line `exit N` exits with N), `l02-agent` (answers the runtime's
 * `{"type":"input"}` lines with an output and a `done` line), and exec programs `l02-print OUT ERR
 * CODE`, `l02-sleep SECONDS`, `l02-flood BYTES`, `l02-write PATH CONTENT`, `l02-read PATH` on an
 * in-memory workspace, and `l02-mcp`, a stdio MCP server (tools `echo` and `read_workspace`). `options.programs` adds more. It publishes `exited` events when a main
 * program ends by itself (not when stopped or removed). Each build starts empty.
 *
 * @example
 * ```ts
 * Effect.provide(program, layerMemory({ runtimeClasses: ["runc", "runsc"] }))
 * ```
 */
export const layerMemory = (options: MemorySandboxOptions = {}): Layer.Layer<SandboxBackend> =>
  Layer.effect(SandboxBackend, makeMemorySandbox(options))
