/**
 * The process sandbox backend: each agent is a child process group on this host, for TRUSTED
 * agents only (runtime class `runc`, network `allow_egress`).
 *
 * A sandbox outlives the runtime that started it: the process is detached in its own group, its
 * stdin is a FIFO and its output goes to log files in `<dataDir>/sandboxes/<sandboxId>/`, and a
 * JSON record there (pid plus /proc start time, labels, status) lets a later layer instance
 * re-adopt it. What is and is not enforced is written down in ./README.md.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { randomUUID } from "node:crypto"
import {
  chmodSync,
  chownSync,
  closeSync,
  lchownSync,
  constants,
  existsSync,
  fstatSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  rmSync,
  statSync,
  writeFileSync
} from "node:fs"
import { constants as osConstants } from "node:os"
import { dirname, isAbsolute, join, resolve } from "node:path"
import { StringDecoder } from "node:string_decoder"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as PubSub from "effect/PubSub"
import * as Queue from "effect/Queue"
import * as Schedule from "effect/Schedule"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import {
  NetworkPolicyUnsupported,
  ResourceLimitsInvalid,
  RuntimeClassUnavailable,
  SandboxConfigInvalid,
  SandboxNotFound,
  SandboxOperationFailed,
  SandboxProcessLimit,
  SecurityContextViolation,
  type SandboxError
} from "../../domain/Errors.ts"
import { OwnershipLabels } from "../../domain/Ids.ts"
import {
  type Attachment,
  type ExecChunk,
  type OutputLine,
  SandboxBackend,
  type SandboxBackendShape,
  type SandboxEvent,
  type SandboxInfo,
  type SandboxSpec,
  sandboxLabels
} from "../../services/SandboxBackend.ts"
import { pipeStdin } from "../../services/ExecStdin.ts"
import { readTar, type WorkspaceEntry, writeTar } from "../../services/WorkspaceArchive.ts"
import { defaultPath, unreachable, which } from "./internal/hostAccess.ts"
import { clockTicksPerSecond, isAlive, processGroups, readRssBytes, readStat } from "./internal/procfs.ts"
import { readAllRecords, readRecord, type SandboxPaths, type SandboxRecord, sandboxPaths, writeRecord } from "./internal/sandboxFiles.ts"
import type { UidRange } from "../../domain/UidRange.ts"
import { makeFifoPool } from "./internal/fifoPool.ts"
import { makeFifoWriter } from "./internal/fifoWriter.ts"
import { tailLogs } from "./internal/logTail.ts"
import { makeUidClaims } from "./internal/uidClaims.ts"
import { killAllAs, sweepUid } from "./internal/uidSweep.ts"

/** Options of the process backend. */
export interface ProcessBackendOptions {
  /** Where sandboxes and workspaces live; the same directory after a restart re-adopts them. */
  readonly dataDir: string
  /** When set, only this runtime's sandboxes are watched for events (several runtimes may share a data dir). */
  readonly runtimeId?: string | undefined
  /** How often adopted processes are checked for exit and memory use. Default 250 ms. */
  readonly pollIntervalMs?: number | undefined
  /**
   * When the host is root: every sandbox runs as a uid (and gid) of its own from this range, so its
   * process limit counts its own processes only and no other sandbox can read its files or signal it
   * (config `process.uid_range`). Unset: every sandbox runs as its `runAsUser`.
   */
  readonly uidRange?: UidRange | undefined
  /** Where the host's uid claims live, shared by every runtime on the host. Default `/run/l02/uids`. */
  readonly uidClaimsDir?: string | undefined
}

/** Where uid claims live unless configured: host-wide, so runtimes on other data directories never share a uid. */
export const defaultUidClaimsDir = "/run/l02/uids"

// The main program runs under this shell wrapper: it records the program's exit code in a file
// (a re-adopted process is no child of ours, so its code cannot be waited for). The TERM trap has
// a handler, not "ignore", so the program gets the default disposition back on exec.
const wrapperScript = 'exit_file=$1; shift; trap : TERM INT HUP; "$@"; code=$?; echo "$code" > "$exit_file"; exit "$code"'

const safeId = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/

const hostingAdvice: Readonly<Record<string, string>> = {
  gvisor: "use the docker backend with runsc (gVisor), or kubernetes with RuntimeClass gvisor",
  runsc: "use the docker backend with runsc (gVisor), or kubernetes with RuntimeClass gvisor",
  kata: "use kubernetes with RuntimeClass kata (Kata Containers)",
  "kata-cc": "use kubernetes with RuntimeClass kata-cc on confidential-computing nodes"
}

const signalNumber = (signal: NodeJS.Signals | null): number => (signal === null ? 0 : (osConstants.signals[signal] ?? 0))

/** Sends a signal to a process group, ignoring "no such process". */
const signalGroup = (pgid: number, signal: NodeJS.Signals): void => {
  try {
    process.kill(-pgid, signal)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ESRCH") throw error
  }
}

const describeError = (error: unknown): string => (error instanceof Error ? error.message : String(error))

// What shells, libc and Node print when the kernel refuses a fork or a thread (EAGAIN under RLIMIT_NPROC or pids.max).
const forkRefusal = /(cannot|can't|could not|unable to) fork|fork: (retry|Resource temporarily unavailable)|spawn EAGAIN|pthread_create.*(EAGAIN|Resource temporarily unavailable)|(fork|clone|vfork)\b.*Resource temporarily unavailable/i

/** Whether a program's last stderr lines say it was refused a new process. */
export const saysForkRefused = (text: string): boolean => forkRefusal.test(text)

/** Whether the record at `owner` is a sandbox running as `uid`: a uid claim of a removed sandbox is not. */
const ownsUid = (owner: string, uid: number): boolean => {
  try {
    return (JSON.parse(readFileSync(owner, "utf8")) as Partial<SandboxRecord>).uid === uid
  } catch (error) {
    // Missing: the sandbox is gone. Unreadable otherwise: count it as owned rather than share a uid.
    return (error as NodeJS.ErrnoException).code !== "ENOENT"
  }
}

/** This process's hard limit on processes per user (`/proc/self/limits`); undefined when unlimited or unknown. */
const hostProcessLimit = (): number | undefined => {
  try {
    const line = /^Max processes\s+\S+\s+(\S+)/m.exec(readFileSync("/proc/self/limits", "utf8"))
    return line === null || line[1] === "unlimited" ? undefined : Number(line[1])
  } catch {
    return undefined
  }
}

/** The last 4 KB of a file ("" when it cannot be read). */
const tailOf = (path: string): string => {
  try {
    const fd = openSync(path, "r")
    try {
      const size = fstatSync(fd).size
      const length = Math.min(size, 4096)
      const buffer = Buffer.alloc(length)
      readSync(fd, buffer, 0, length, size - length)
      return buffer.toString("utf8")
    } finally {
      closeSync(fd)
    }
  } catch {
    return ""
  }
}

/**
 * Builds the process backend's service. Closing the scope stops watching but leaves every
 * sandbox process running, to be re-adopted by the next instance on the same data directory.
 */
export const make = (options: ProcessBackendOptions): Effect.Effect<SandboxBackendShape, SandboxError, Scope.Scope> =>
  Effect.gen(function* () {
    const dataDir = resolve(options.dataDir)
    const backendScope = yield* Scope.Scope
    const pollIntervalMs = options.pollIntervalMs ?? 250
    const prlimit = which("prlimit")
    const setpriv = which("setpriv")
    const hostIsRoot = process.getuid?.() === 0
    const hardLimit = hostProcessLimit()
    const claimsDir = options.uidClaimsDir ?? defaultUidClaimsDir
    const uidClaims = hostIsRoot && options.uidRange !== undefined ? yield* Effect.try({
      try: () => makeUidClaims(options.uidRange!, claimsDir, ownsUid),
      catch: (error) => new SandboxOperationFailed({ message: `cannot keep uid claims in ${claimsDir} (process.uid_claims_dir): ${describeError(error)}` })
    }) : undefined
    const events = yield* PubSub.unbounded<SandboxEvent>()
    const children = new Map<string, ChildProcess>()
    const childExits = new Map<string, number>()
    const execs = new Map<string, Set<number>>()
    const reported = new Set<string>()
    /** Sandbox users (`uid:gid`) known to reach the data directory. */
    const reachesDataDir = new Set<string>()
    let closed = false

    const fail = (message: string, agentId?: string) =>
      new SandboxOperationFailed({ message, ...(agentId === undefined ? {} : { agentId }) })

    const processLimit = (record: SandboxRecord, what: string) =>
      new SandboxProcessLimit({
        message: `${what}: the sandbox reached its process limit (resources.pids ${record.pidsLimit}, counted over ${
          record.ownUid === true ? `its own uid ${record.uid}` : record.uid === undefined ? "the host user" : `uid ${record.uid}, which other sandboxes and programs on the host share`
        }); raise resources.pids in the agent config or sandbox.default_pids${record.ownUid === true ? "" : ", or set process.uid_range"}`,
        agentId: record.agentId,
        key: "resources.pids"
      })

    /** Runs synchronous file and process work, translating Node errors into E2046. */
    const stdinWriter = makeFifoWriter()
    const attempt = <A>(what: string, f: () => A, agentId?: string): Effect.Effect<A, SandboxOperationFailed> =>
      Effect.try({ try: f, catch: (error) => fail(`${what}: ${describeError(error)}`, agentId) })

    yield* attempt(`cannot create the data directory ${dataDir}`, () => {
      mkdirSync(join(dataDir, "sandboxes"), { recursive: true })
      mkdirSync(join(dataDir, "workspaces"), { recursive: true })
      // Sandboxes run as an unprivileged user who must reach its workspace and exit-code file:
      // let others traverse (not list) the data directory and the two directories holding them.
      if (hostIsRoot) {
        chmodSync(dataDir, (statSync(dataDir).mode & 0o7777) | 0o001)
        for (const sub of ["sandboxes", "workspaces"]) chmodSync(join(dataDir, sub), 0o711)
      }
    })

    const pathsOf = (record: SandboxRecord): SandboxPaths => sandboxPaths(dataDir, record.sandboxId, record.agentId)
    const fifos = yield* Effect.acquireRelease(
      attempt(`cannot prepare FIFOs in ${dataDir}`, () => makeFifoPool(join(dataDir, "fifos"))),
      (pool) => Effect.sync(() => pool.close())
    )

    // The sandboxes of each agent id, read once at start and kept as this instance creates and removes
    // them: a provision or remove looks up its agent instead of reading every record.
    const byAgent = new Map<string, Set<string>>()
    const index = (record: Pick<SandboxRecord, "agentId" | "sandboxId">) => {
      const set = byAgent.get(record.agentId) ?? new Set<string>()
      set.add(record.sandboxId)
      byAgent.set(record.agentId, set)
    }
    const unindex = (record: Pick<SandboxRecord, "agentId" | "sandboxId">) => {
      const set = byAgent.get(record.agentId)
      set?.delete(record.sandboxId)
      if (set?.size === 0) byAgent.delete(record.agentId)
    }
    const recordsOfAgent = (agentId: string): Array<SandboxRecord> =>
      [...(byAgent.get(agentId) ?? [])].flatMap((sandboxId) => {
        const record = readRecord(dataDir, sandboxId)
        if (record === undefined) unindex({ agentId, sandboxId })
        return record === undefined ? [] : [record]
      })
    yield* attempt("cannot read the sandbox records", () => readAllRecords(dataDir).forEach(index))

    const infoOf = (record: SandboxRecord): SandboxInfo => ({
      sandboxId: record.sandboxId,
      agentId: record.agentId,
      runtimeId: record.runtimeId,
      status: record.status,
      labels: record.labels,
      ...(record.exitCode === undefined ? {} : { exitCode: record.exitCode }),
      ...(record.oomKilled ? { oomKilled: true } : {}),
      ...(record.forkRefused ? { forkRefused: true } : {}),
      ...(record.notes.length === 0 ? {} : { notes: record.notes })
    })

    const isLive = (record: SandboxRecord) =>
      (record.status === "running" || record.status === "paused") &&
      record.pid !== undefined &&
      record.startTime !== undefined &&
      isAlive(record.pid, record.startTime)

    /**
     * Brings a record up to date with its process: a running or paused sandbox whose process is
     * gone becomes exited (code from the wrapper's file, else 128+signal, else 137), reported
     * once as an `exited` or `oom` event unless the runtime itself stopped it.
     */
    const refresh = (record: SandboxRecord): SandboxRecord => {
      if (record.status !== "running" && record.status !== "paused") return record
      if (isLive(record)) return record
      const paths = pathsOf(record)
      let exitCode = childExits.get(record.sandboxId)
      try {
        const text = readFileSync(paths.exitFile, "utf8").trim()
        if (/^\d+$/.test(text)) exitCode = Number(text)
      } catch {
        // No exit file: the wrapper itself was killed (SIGKILL), so the code is the signal's.
      }
      record.status = "exited"
      record.exitCode = exitCode ?? 137
      if (record.exitCode !== 0 && !record.stopRequested && saysForkRefused(tailOf(paths.stderr))) record.forkRefused = true
      writeRecord(dataDir, record)
      const key = `${record.sandboxId}:${record.startTime}`
      if (!record.stopRequested && !reported.has(key) && !closed) {
        reported.add(key)
        PubSub.publishUnsafe(events, {
          sandboxId: record.sandboxId,
          agentId: record.agentId,
          type: record.oomKilled ? "oom" : "exited",
          exitCode: record.exitCode,
          ...(record.forkRefused ? { forkRefused: true } : {}),
          at: Date.now()
        })
      }
      return record
    }

    const load = (sandboxId: string): Effect.Effect<SandboxRecord, SandboxError> =>
      Effect.flatMap(
        attempt(`cannot read sandbox ${sandboxId}`, () => (safeId.test(sandboxId) ? readRecord(dataDir, sandboxId) : undefined)),
        (record): Effect.Effect<SandboxRecord, SandboxError> =>
          record === undefined
            ? Effect.fail(new SandboxNotFound({ message: `no sandbox "${sandboxId}" in ${join(dataDir, "sandboxes")}; it was removed or never existed` }))
            : attempt(`cannot update sandbox ${sandboxId}`, () => refresh(record), record.agentId)
      )

    const refuse = (record: SandboxRecord, operation: string) =>
      fail(
        `cannot ${operation} sandbox ${record.sandboxId}: it is ${record.status}${
          record.exitCode === undefined ? "" : ` (exit code ${record.exitCode})`
        }; start it first`,
        record.agentId
      )

    const sandboxEnv = (record: SandboxRecord, extra: Readonly<Record<string, string>> = {}) => {
      const paths = pathsOf(record)
      return {
        PATH: defaultPath,
        HOME: paths.workspace,
        LANG: "C.UTF-8",
        ...record.env,
        ...extra,
        L02_WORKSPACE: paths.workspace,
        L02_AGENT_ID: record.agentId,
        L02_SANDBOX_ID: record.sandboxId
      }
    }

    /** The command prefix applying the OS limits the host can apply (see README). */
    const limitsPrefix = (record: SandboxRecord): Array<string> => [
      ...(prlimit === undefined ? [] : [prlimit, "--core=0", ...(record.uid === undefined ? [] : [`--nproc=${record.pidsLimit}`]), "--"]),
      ...(record.noNewPrivileges && setpriv !== undefined ? [setpriv, "--no-new-privs", "--"] : [])
    ]

    const ids = (record: SandboxRecord) => (record.uid === undefined ? {} : { uid: record.uid, gid: record.gid ?? record.uid })

    const chownForSandbox = (record: SandboxRecord, path: string) => {
      if (record.uid !== undefined) chownSync(path, record.uid, record.gid ?? record.uid)
    }

    /** Chowns a directory and everything below it (symbolic links themselves, never what they point to). */
    const chownTree = (record: SandboxRecord, root: string) => {
      if (record.uid === undefined) return
      const uid = record.uid
      const gid = record.gid ?? record.uid
      const walk = (path: string) => {
        lchownSync(path, uid, gid)
        if (!lstatSync(path).isDirectory()) return
        for (const name of readdirSync(path)) walk(join(path, name))
      }
      walk(root)
    }

    /** Gives a sandbox's own uid back (at remove). */
    const releaseUid = (record: SandboxRecord) => {
      if (record.ownUid === true && record.uid !== undefined) uidClaims?.release(record.uid, pathsOf(record).record)
    }

    /** Starts the main program, detached in its own process group, wired to the FIFO and log files. */
    const launch = (record: SandboxRecord): SandboxRecord => {
      const paths = pathsOf(record)
      if (record.ownUid === true && record.uid !== undefined && uidClaims !== undefined && !uidClaims.ensure(record.uid, paths.record)) {
        throw new Error(`its uid ${record.uid} is claimed by another sandbox now (claims in ${claimsDir}); remove this sandbox and provision a new one`)
      }
      rmSync(paths.exitFile, { force: true })
      const fds: Array<number> = []
      let child: ChildProcess
      try {
        // Read-write, so the FIFO always has a writer: the program never sees end of input
        // when an attachment closes or the host dies.
        fds.push(openSync(paths.stdin, constants.O_RDWR))
        fds.push(openSync(paths.stdout, "a"), openSync(paths.stderr, "a"))
        const argv = [...limitsPrefix(record), "/bin/sh", "-c", wrapperScript, "l02-sandbox", paths.exitFile, ...record.command]
        child = spawn(argv[0]!, argv.slice(1), {
          cwd: paths.workspace,
          env: sandboxEnv(record),
          detached: true,
          stdio: [fds[0]!, fds[1]!, fds[2]!],
          ...ids(record)
        })
      } finally {
        for (const fd of fds) closeSync(fd)
      }
      const pid = child.pid
      if (pid === undefined) throw new Error(`the host could not start ${record.command[0]}`)
      child.on("error", () => {})
      child.unref()
      const stat = readStat(pid)
      record.pid = pid
      record.startTime = stat?.startTime ?? 0
      record.status = "running"
      record.exitCode = undefined
      record.oomKilled = undefined
      record.forkRefused = undefined
      record.stopRequested = undefined
      writeRecord(dataDir, record)
      children.set(record.sandboxId, child)
      childExits.delete(record.sandboxId)
      child.on("exit", (code, signal) => {
        if (children.get(record.sandboxId) === child) children.delete(record.sandboxId)
        if (closed) return
        childExits.set(record.sandboxId, code ?? 128 + signalNumber(signal))
        try {
          const current = readRecord(dataDir, record.sandboxId)
          if (current !== undefined && current.pid === pid) refresh(current)
        } catch {
          // The sandbox was removed meanwhile; nothing to report.
        }
      })
      return record
    }

    const killExecs = (sandboxId: string) => {
      for (const pgid of execs.get(sandboxId) ?? []) signalGroup(pgid, "SIGKILL")
    }

    const processAlive = (record: SandboxRecord) => record.pid !== undefined && record.startTime !== undefined && isAlive(record.pid, record.startTime)

    /**
     * Waits up to `ms` for the main process to end: a child of this host by its own exit event, an
     * adopted one (no child of ours, so nothing tells of its exit) by looking every 10 ms.
     */
    const waitUntilGone = (record: SandboxRecord, ms: number): Effect.Effect<boolean> => {
      const child = children.get(record.sandboxId)
      if (child !== undefined && child.pid === record.pid) {
        return Effect.callback<boolean>((resume) => {
          if (child.exitCode !== null || child.signalCode !== null) return resume(Effect.succeed(true))
          const done = () => {
            clearTimeout(timer)
            resume(Effect.succeed(true))
          }
          const timer = setTimeout(() => {
            child.off("exit", done)
            resume(Effect.succeed(!processAlive(record)))
          }, ms)
          child.once("exit", done)
          return Effect.sync(() => {
            clearTimeout(timer)
            child.off("exit", done)
          })
        })
      }
      return Effect.gen(function* () {
        const deadline = Date.now() + ms
        while (Date.now() < deadline && processAlive(record)) yield* Effect.sleep("10 millis")
        return !processAlive(record)
      })
    }

    /** SIGTERM to the group, SIGKILL after `graceMs`, then any straggler of the group. */
    const terminate = (record: SandboxRecord, graceMs: number) =>
      Effect.gen(function* () {
        killExecs(record.sandboxId)
        if (!isLive(record)) return
        const pgid = record.pid!
        record.stopRequested = true
        yield* attempt(`cannot stop sandbox ${record.sandboxId}`, () => {
          writeRecord(dataDir, record)
          if (graceMs > 0) {
            signalGroup(pgid, "SIGTERM")
            // A stopped process cannot handle SIGTERM until it runs again.
            if (record.status === "paused") signalGroup(pgid, "SIGCONT")
          }
        }, record.agentId)
        const gone = graceMs > 0 ? yield* waitUntilGone(record, graceMs) : false
        if (!gone) {
          yield* attempt(`cannot kill sandbox ${record.sandboxId}`, () => signalGroup(pgid, "SIGKILL"), record.agentId)
          if (!(yield* waitUntilGone(record, 5000))) {
            return yield* fail(`sandbox ${record.sandboxId} (pid ${pgid}) did not die after SIGKILL; it may be stuck in the kernel (state D)`, record.agentId)
          }
        }
        // A child of this instance reports how it died (e.g. SIGTERM before the wrapper set its trap).
        const deadline = Date.now() + 1000
        while (children.has(record.sandboxId) && Date.now() < deadline) yield* Effect.sleep("5 millis")
        // Children the program left behind in its group die with it (a group already gone is no error).
        yield* attempt(`cannot kill sandbox ${record.sandboxId}`, () => signalGroup(pgid, "SIGKILL"))
      })

    const ownUid = (record: SandboxRecord): number | undefined => (record.ownUid === true ? record.uid : undefined)

    /** With a uid of its own: every process /proc shows as that uid's ends, those that left the sandbox's groups too. */
    const sweep = (record: SandboxRecord): Effect.Effect<void, SandboxError> => {
      const uid = ownUid(record)
      return uid === undefined
        ? Effect.void
        : Effect.flatMap(sweepUid(uid, 5000), (clean) =>
          clean ? Effect.void : fail(`processes of sandbox ${record.sandboxId}'s uid ${uid} did not die after SIGKILL`, record.agentId))
    }

    /**
     * Gives a removed sandbox's uid back once no process of it is left, those /proc does not show
     * included (killed as that uid): in the background, so a remove does not wait for it; the uid
     * stays claimed until then (and for good when something of it does not die).
     */
    const releaseWhenClean = (record: SandboxRecord) => {
      const uid = ownUid(record)
      if (uid === undefined) return Effect.void
      return killAllAs(uid, record.gid ?? uid).pipe(
        Effect.andThen(sweepUid(uid, 5000)),
        Effect.flatMap((clean) => (clean ? Effect.sync(() => releaseUid(record)) : Effect.void)),
        Effect.forkIn(backendScope),
        Effect.asVoid
      )
    }

    const validate = (spec: SandboxSpec): Effect.Effect<void, SandboxError> =>
      Effect.suspend((): Effect.Effect<void, SandboxError> => {
        const { trustLevel, runtimeClass, networkPolicy, securityContext } = spec.sandbox
        if (trustLevel !== "TRUSTED" || runtimeClass !== "runc") {
          const advice = hostingAdvice[runtimeClass] ?? `use the docker or kubernetes backend with a runtime class "${runtimeClass}"`
          return Effect.fail(
            new RuntimeClassUnavailable({
              message: `the process backend runs TRUSTED agents on runtime class runc only; this ${trustLevel} agent needs "${runtimeClass}": ${advice}`,
              agentId: spec.agentId,
              runtimeClass
            })
          )
        }
        if (networkPolicy !== "allow_egress") {
          return Effect.fail(
            new NetworkPolicyUnsupported({
              message: `the process backend cannot restrict the network (policy "${networkPolicy}"); use the docker or kubernetes backend`,
              agentId: spec.agentId
            })
          )
        }
        if (securityContext.readOnlyRootFilesystem) {
          return Effect.fail(
            new SecurityContextViolation({
              message: "the process backend cannot make the root filesystem read-only; use the docker or kubernetes backend",
              agentId: spec.agentId
            })
          )
        }
        if (hostIsRoot && !securityContext.runAsNonRoot && securityContext.dropCapabilities.includes("ALL")) {
          return Effect.fail(
            new SecurityContextViolation({
              message: "the process backend cannot drop capabilities of a root process; set runAsNonRoot so it runs as runAsUser",
              agentId: spec.agentId
            })
          )
        }
        if (prlimit !== undefined && hostIsRoot && securityContext.runAsNonRoot && hardLimit !== undefined && spec.sandbox.resources.pids > hardLimit) {
          // The limit is set after the drop to the sandbox user, who cannot raise the hard limit.
          return Effect.fail(
            new ResourceLimitsInvalid({
              message: `resources.pids ${spec.sandbox.resources.pids} is above this host's process limit (hard RLIMIT_NPROC ${hardLimit}); ask for at most ${hardLimit}, or lower sandbox.default_pids`,
              agentId: spec.agentId,
              key: "resources.pids"
            })
          )
        }
        if (spec.command === undefined || spec.command.length === 0) {
          return Effect.fail(
            new SandboxConfigInvalid({ message: "the process backend needs a command to run (the agent config's command)", agentId: spec.agentId, key: "command" })
          )
        }
        if (hostIsRoot && securityContext.runAsNonRoot) {
          // The sandbox user must reach its data directory and the program files it is given by path.
          // A data directory found reachable stays so for that user (refusals are looked at again).
          // Every uid of the range is alike (no file is its own yet, its group is its own): its first stands for all.
          const representative = uidClaims === undefined ? undefined : options.uidRange!.first
          const uid = representative ?? securityContext.runAsUser
          const gid = representative ?? securityContext.runAsGroup
          const user = `${uid}:${gid}`
          const checks: Array<[string, "search" | "read" | "execute", string]> = reachesDataDir.has(user) ? [] : [[dataDir, "search", "runtime.data_dir"]]
          spec.command.forEach((part, i) => {
            if (isAbsolute(part)) checks.push([part, i === 0 ? "execute" : "read", "command"])
          })
          for (const [path, access, key] of checks) {
            const why = unreachable(path, uid, gid, access)
            if (why === undefined && path === dataDir) reachesDataDir.add(user)
            if (why !== undefined) {
              return Effect.fail(
                new SandboxConfigInvalid({
                  message: `the sandbox runs as uid ${uid}, which cannot reach ${path}: ${why}; make it reachable (e.g. chmod o+x on the directory) or move ${key === "command" ? "the program" : "runtime.data_dir"} elsewhere`,
                  agentId: spec.agentId,
                  key
                })
              )
            }
          }
        }
        if (!safeId.test(spec.agentId) || !safeId.test(spec.runtimeId)) {
          return Effect.fail(
            new SandboxConfigInvalid({ message: `agent id "${spec.agentId}" and runtime id "${spec.runtimeId}" must be plain names (letters, digits, . _ -)`, agentId: spec.agentId })
          )
        }
        return Effect.void
      })

    const create = (spec: SandboxSpec): SandboxRecord => {
      const { securityContext, resources } = spec.sandbox
      const notes: Array<string> = ["seccomp profile not applied: the process backend has no syscall filter"]
      let uid: number | undefined
      let gid: number | undefined
      let ownUid = false
      const sandboxId = `proc-${spec.agentId.slice(0, 8)}-${randomUUID().slice(0, 8)}`
      if (hostIsRoot && securityContext.runAsNonRoot && uidClaims !== undefined) {
        uid = uidClaims.claim(sandboxPaths(dataDir, sandboxId, spec.agentId).record)
        gid = uid
        ownUid = true
        notes.push(`runs as uid ${uid} of its own (process.uid_range), not the shared runAsUser ${securityContext.runAsUser}`)
      } else if (hostIsRoot && securityContext.runAsNonRoot) {
        uid = securityContext.runAsUser
        gid = securityContext.runAsGroup
      } else if (!hostIsRoot) {
        notes.push(`runs as the host user (uid ${process.getuid?.()}), not runAsUser ${securityContext.runAsUser}: the host is not root`)
      }
      const record: SandboxRecord = {
        version: 1,
        sandboxId,
        agentId: spec.agentId,
        runtimeId: spec.runtimeId,
        sessionId: spec.sessionId,
        labels: sandboxLabels(spec),
        command: [...spec.command!],
        env: { ...spec.env },
        uid,
        gid,
        ...(ownUid ? { ownUid: true } : {}),
        noNewPrivileges: !securityContext.allowPrivilegeEscalation,
        pidsLimit: resources.pids,
        memoryBytes: resources.memoryBytes,
        notes,
        status: "created"
      }
      const paths = pathsOf(record)
      try {
        // The sandbox's own directory: only the host (and the sandbox's group, to reach run/) may enter.
        mkdirSync(paths.dir, { recursive: true, mode: 0o710 })
        mkdirSync(paths.run, { recursive: true, mode: 0o700 })
        const fresh = mkdirSync(paths.workspace, { recursive: true, mode: 0o700 }) !== undefined
        fifos.take(paths.stdin)
        writeFileSync(paths.stdout, "", { mode: 0o600 })
        writeFileSync(paths.stderr, "", { mode: 0o600 })
        if (record.uid !== undefined) {
          chownSync(paths.dir, 0, record.gid ?? record.uid)
          chmodSync(paths.dir, 0o710)
          chownForSandbox(record, paths.run)
          // A workspace kept from an earlier sandbox of the agent becomes this sandbox user's, all of it.
          if (fresh) chownForSandbox(record, paths.workspace)
          else chownTree(record, paths.workspace)
          chmodSync(paths.workspace, 0o700)
        }
        writeRecord(dataDir, record)
        index(record)
      } catch (error) {
        releaseUid(record)
        throw error
      }
      return record
    }

    /** Watches live sandboxes of this runtime: exits of adopted processes and the memory limit. */
    const monitor = Effect.sync(() => {
      const live = readAllRecords(dataDir).filter(
        (r) => (r.status === "running" || r.status === "paused") && (options.runtimeId === undefined || r.runtimeId === options.runtimeId)
      )
      if (live.length === 0) return
      const groups = processGroups()
      for (const record of live) {
        if (isLive(record)) {
          const rss = (groups.get(record.pid!) ?? []).reduce((sum, p) => sum + readRssBytes(p.pid), 0)
          if (rss > record.memoryBytes) {
            record.oomKilled = true
            writeRecord(dataDir, record)
            signalGroup(record.pid!, "SIGKILL")
          }
          continue
        }
        refresh(record)
      }
    }).pipe(Effect.catchCause(() => Effect.void))

    yield* monitor.pipe(Effect.repeat(Schedule.spaced(`${pollIntervalMs} millis`)), Effect.forkScoped)
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        closed = true
        for (const pgids of execs.values()) for (const pgid of pgids) signalGroup(pgid, "SIGKILL")
      })
    )

    /** The main program's output from `offsets` (its log files' sizes at attach time) until it exits. */
    const readOutput = (record: SandboxRecord, offsets: { stdout: number; stderr: number }): Stream.Stream<OutputLine, SandboxError> => {
      const paths = pathsOf(record)
      const child = children.get(record.sandboxId)
      return tailLogs({
        stdout: paths.stdout,
        stderr: paths.stderr,
        offsets,
        // A child of this host is alive until its exit event; an adopted program is looked up.
        alive: child === undefined
          ? () => {
            const current = readRecord(dataDir, record.sandboxId)
            return current !== undefined && isLive(current)
          }
          : () => child.exitCode === null && child.signalCode === null,
        onExit: child === undefined ? undefined : (notify) => {
          child.once("exit", notify)
          return () => child.off("exit", notify)
        },
        livenessPollMs: pollIntervalMs,
        failure: (error) => fail(`cannot read the output of sandbox ${record.sandboxId}: ${describeError(error)}`, record.agentId)
      })
    }

    const shape: SandboxBackendShape = {
      capabilities: Effect.succeed({ name: "process", runtimeClasses: ["runc"], networkPolicies: ["allow_egress"], workspaceArchive: true }),

      provision: (spec) =>
        Effect.gen(function* () {
          yield* validate(spec)
          const existing = yield* attempt("cannot read the sandbox records", () =>
            recordsOfAgent(spec.agentId).find((r) => r.runtimeId === spec.runtimeId)
          )
          if (existing !== undefined) return infoOf(existing)
          const record = yield* attempt(`cannot create a sandbox for agent ${spec.agentId}`, () => create(spec), spec.agentId)
          return infoOf(record)
        }),

      start: (sandboxId) =>
        Effect.gen(function* () {
          const record = yield* load(sandboxId)
          if (record.status === "running" || record.status === "paused") return infoOf(record)
          return infoOf(yield* attempt(`cannot start sandbox ${sandboxId}`, () => launch(record), record.agentId))
        }),

      pause: (sandboxId) =>
        Effect.gen(function* () {
          const record = yield* load(sandboxId)
          if (record.status === "paused") return
          if (record.status !== "running") return yield* refuse(record, "pause")
          yield* attempt(`cannot pause sandbox ${sandboxId}`, () => {
            signalGroup(record.pid!, "SIGSTOP")
            record.status = "paused"
            writeRecord(dataDir, record)
          }, record.agentId)
        }),

      unpause: (sandboxId) =>
        Effect.gen(function* () {
          const record = yield* load(sandboxId)
          if (record.status === "running") return
          if (record.status !== "paused") return yield* refuse(record, "unpause")
          yield* attempt(`cannot unpause sandbox ${sandboxId}`, () => {
            signalGroup(record.pid!, "SIGCONT")
            record.status = "running"
            writeRecord(dataDir, record)
          }, record.agentId)
        }),

      stop: (sandboxId, { graceMs }) =>
        Effect.gen(function* () {
          const record = yield* load(sandboxId)
          if (record.status === "created") {
            record.status = "exited"
            return yield* attempt(`cannot stop sandbox ${sandboxId}`, () => writeRecord(dataDir, record), record.agentId)
          }
          yield* terminate(record, graceMs)
          yield* sweep(record)
          yield* attempt(`cannot update sandbox ${sandboxId}`, () => refresh(record), record.agentId)
        }),

      remove: (sandboxId) =>
        Effect.gen(function* () {
          if (!safeId.test(sandboxId)) return
          const record = yield* attempt(`cannot read sandbox ${sandboxId}`, () => readRecord(dataDir, sandboxId))
          if (record === undefined) return
          record.stopRequested = true
          yield* terminate(record, 0)
          yield* attempt(`cannot remove sandbox ${sandboxId}`, () => {
            const paths = pathsOf(record)
            rmSync(paths.dir, { recursive: true, force: true })
            unindex(record)
            const shared = recordsOfAgent(record.agentId).length > 0
            if (!shared) rmSync(paths.workspace, { recursive: true, force: true })
            execs.delete(sandboxId)
          }, record.agentId)
          yield* releaseWhenClean(record)
        }),

      inspect: (sandboxId) => Effect.map(load(sandboxId), infoOf),

      list: (labels) =>
        attempt("cannot read the sandbox records", () =>
          // Asked for one agent's sandboxes (as a stop does): only its records are read.
          (labels[OwnershipLabels.agentId] === undefined ? readAllRecords(dataDir) : recordsOfAgent(labels[OwnershipLabels.agentId]!))
            .filter((r) => Object.entries(labels).every(([key, value]) => r.labels[key] === value))
            .map((r) => infoOf(refresh(r)))
        ),

      exec: (sandboxId, request) =>
        Stream.callback<ExecChunk, SandboxError>((queue) =>
          Effect.gen(function* () {
            const record = yield* load(sandboxId)
            if (record.status !== "running") return yield* refuse(record, "exec in")
            const paths = pathsOf(record)
            const cwd = request.workingDir === undefined ? paths.workspace : resolve(paths.workspace, request.workingDir)
            const argv = [...limitsPrefix(record), ...request.command]
            let bytes = 0
            let truncated = false
            let timedOut = false
            const child = yield* attempt(`cannot run ${request.command[0]} in sandbox ${sandboxId}`, () =>
              spawn(argv[0]!, argv.slice(1), {
                cwd,
                env: sandboxEnv(record, request.env),
                detached: true,
                stdio: [request.stdin === undefined ? "ignore" : "pipe", "pipe", "pipe"],
                ...ids(record)
              }), record.agentId)
            const pgid = child.pid
            if (pgid !== undefined) {
              const set = execs.get(sandboxId) ?? new Set<number>()
              set.add(pgid)
              execs.set(sandboxId, set)
            }
            yield* Effect.addFinalizer(() =>
              Effect.sync(() => {
                if (pgid !== undefined) {
                  execs.get(sandboxId)?.delete(pgid)
                  if (child.exitCode === null && child.signalCode === null) signalGroup(pgid, "SIGKILL")
                }
              })
            )
            // The end of stderr, kept to tell a command refused a fork from one that failed otherwise.
            let stderrTail = ""
            const emit = (stream: "stdout" | "stderr", decoder: StringDecoder) => (data: Buffer) => {
              if (stream === "stderr") stderrTail = (stderrTail + data.subarray(Math.max(0, data.length - 4096)).toString("utf8")).slice(-4096)
              if (truncated) return
              const room = request.maxOutputBytes - bytes
              let chunk = data
              if (chunk.length > room) {
                truncated = true
                chunk = chunk.subarray(0, Math.max(0, room))
              }
              bytes += chunk.length
              const text = decoder.write(chunk) + (truncated ? decoder.end() : "")
              if (text !== "") Queue.offerUnsafe(queue, { _tag: stream, data: text })
            }
            const outDecoder = new StringDecoder("utf8")
            const errDecoder = new StringDecoder("utf8")
            child.stdout!.on("data", emit("stdout", outDecoder))
            child.stderr!.on("data", emit("stderr", errDecoder))
            if (child.stdin) {
              child.stdin.on("error", () => {})
              const stdin = child.stdin
              yield* pipeStdin(request.stdin, { write: (data) => stdin.write(data), end: (data) => (data === undefined ? stdin.end() : stdin.end(data)) })
            }
            const exitCode = yield* Effect.callback<number, SandboxError>((resume) => {
              const timer = setTimeout(() => {
                timedOut = true
                if (pgid !== undefined) signalGroup(pgid, "SIGKILL")
              }, request.timeoutMs)
              child.on("error", (error) => {
                clearTimeout(timer)
                resume(Effect.fail(
                  (error as NodeJS.ErrnoException).code === "EAGAIN"
                    ? processLimit(record, `cannot run ${request.command[0]} in sandbox ${sandboxId}`)
                    : fail(`cannot run ${request.command[0]} in sandbox ${sandboxId}: ${error.message}`, record.agentId)
                ))
              })
              child.on("close", (code, signal) => {
                clearTimeout(timer)
                resume(Effect.succeed(code ?? 128 + signalNumber(signal)))
              })
              return Effect.sync(() => clearTimeout(timer))
            })
            for (const [stream, decoder] of [["stdout", outDecoder], ["stderr", errDecoder]] as const) {
              const rest = truncated ? "" : decoder.end()
              if (rest !== "") Queue.offerUnsafe(queue, { _tag: stream, data: rest })
            }
            const forkRefused = exitCode !== 0 && !timedOut && saysForkRefused(stderrTail)
            Queue.offerUnsafe(queue, { _tag: "exit", exitCode, timedOut, truncated, ...(forkRefused ? { forkRefused } : {}) })
            yield* Queue.end(queue)
          })
        ),

      attach: (sandboxId) =>
        Effect.gen(function* () {
          const record = yield* load(sandboxId)
          if (record.status !== "running" && record.status !== "paused") return yield* refuse(record, "attach to")
          const paths = pathsOf(record)
          const offsets = yield* attempt(`cannot attach to sandbox ${sandboxId}`, () => ({
            stdout: statSync(paths.stdout).size,
            stderr: statSync(paths.stderr).size
          }), record.agentId)
          const attachment: Attachment = {
            // The whole line, however long: a pipe takes 64 KiB at a time, the rest as the program reads.
            write: (line) => stdinWriter.write(paths.stdin, line).pipe(Effect.mapError((error) => fail(`cannot write to sandbox ${sandboxId}: ${describeError(error)}`, record.agentId))),
            // Lines written after the attach are read: the tail starts where the logs ended then.
            output: readOutput(record, offsets)
          }
          return attachment
        }),

      events: Stream.fromPubSub(events),

      stats: (sandboxId) =>
        Effect.gen(function* () {
          const record = yield* load(sandboxId)
          if (!isLive(record)) return { cpuPercent: 0, memoryBytes: 0, pids: 0 }
          const sample = () => processGroups().get(record.pid!) ?? []
          const before = yield* attempt(`cannot read the stats of sandbox ${sandboxId}`, sample)
          const sampleMs = 100
          yield* Effect.sleep(`${sampleMs} millis`)
          const after = yield* attempt(`cannot read the stats of sandbox ${sandboxId}`, sample)
          const ticks = (list: ReadonlyArray<{ cpuTicks: number }>) => list.reduce((sum, p) => sum + p.cpuTicks, 0)
          const cpuPercent = Math.max(0, ((ticks(after) - ticks(before)) / clockTicksPerSecond / (sampleMs / 1000)) * 100)
          return { cpuPercent, memoryBytes: after.reduce((sum, p) => sum + readRssBytes(p.pid), 0), pids: after.length }
        }),

      exportWorkspace: (sandboxId) =>
        Effect.gen(function* () {
          const record = yield* load(sandboxId)
          const root = pathsOf(record).workspace
          return yield* attempt(`cannot archive the workspace of sandbox ${sandboxId}`, () => {
            const entries: Array<WorkspaceEntry> = []
            const walk = (relative: string) => {
              for (const name of readdirSync(join(root, relative)).sort()) {
                const path = relative === "" ? name : `${relative}/${name}`
                const stat = lstatSync(join(root, path))
                if (stat.isDirectory()) {
                  entries.push({ path, type: "directory", data: new Uint8Array(0), mode: stat.mode & 0o7777 })
                  walk(path)
                } else if (stat.isFile()) {
                  entries.push({ path, type: "file", data: readFileSync(join(root, path)), mode: stat.mode & 0o7777 })
                }
              }
            }
            if (existsSync(root)) walk("")
            return writeTar(entries)
          }, record.agentId)
        }),

      importWorkspace: (sandboxId, archive) =>
        Effect.gen(function* () {
          const record = yield* load(sandboxId)
          const root = pathsOf(record).workspace
          yield* attempt(`cannot import the workspace of sandbox ${sandboxId}`, () => {
            for (const entry of readTar(archive)) {
              const target = join(root, entry.path)
              if (entry.type === "directory") {
                mkdirSync(target, { recursive: true })
                chownForSandbox(record, target)
                continue
              }
              const parent = dirname(target)
              if (!existsSync(parent)) {
                mkdirSync(parent, { recursive: true })
                chownForSandbox(record, parent)
              }
              writeFileSync(target, entry.data, { mode: entry.mode ?? 0o644 })
              chownForSandbox(record, target)
            }
          }, record.agentId)
        })
    }
    return shape
  })

/**
 * The process backend as a layer.
 *
 * @example
 * ```ts
 * Effect.provide(program, ProcessBackend.layer({ dataDir: ".l02", runtimeId: "rt-1" }))
 * ```
 */
export const layer = (options: ProcessBackendOptions): Layer.Layer<SandboxBackend, SandboxError> =>
  Layer.effect(SandboxBackend, make(options))
