/**
 * The on-disk form of a process sandbox: where its files live and its JSON record, written
 * atomically so a host dying mid-write never leaves a torn record behind.
 */
import { mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from "node:fs"
import { join } from "node:path"

/** What the backend remembers about one sandbox, enough to find and re-adopt its process after a restart. */
export interface SandboxRecord {
  readonly version: 1
  readonly sandboxId: string
  readonly agentId: string
  readonly runtimeId: string
  readonly sessionId: string
  readonly labels: Readonly<Record<string, string>>
  readonly command: ReadonlyArray<string>
  readonly env: Readonly<Record<string, string>>
  /** The uid/gid the processes run as, when the backend drops privileges. */
  readonly uid?: number | undefined
  readonly gid?: number | undefined
  /** The uid is the sandbox's own, claimed from the range (released at remove). */
  readonly ownUid?: boolean | undefined
  readonly noNewPrivileges: boolean
  readonly pidsLimit: number
  readonly memoryBytes: number
  readonly notes: ReadonlyArray<string>
  status: "created" | "running" | "paused" | "exited"
  /** The main process (the process group leader) and its start time, which guards against pid reuse. */
  pid?: number | undefined
  startTime?: number | undefined
  exitCode?: number | undefined
  oomKilled?: boolean | undefined
  /** The program's last words said a fork was refused (its process limit). */
  forkRefused?: boolean | undefined
  /** Set before the runtime's own stop, so the exit that follows is not reported as an event. */
  stopRequested?: boolean | undefined
}

/** The paths of one sandbox under the backend's data directory. */
export interface SandboxPaths {
  readonly dir: string
  readonly record: string
  /** FIFO connected to the main program's stdin. */
  readonly stdin: string
  readonly stdout: string
  readonly stderr: string
  /** Directory the sandbox user may write: holds the exit-code file. */
  readonly run: string
  readonly exitFile: string
  readonly workspace: string
}

/** Paths of a sandbox; the workspace is per agent, `<dataDir>/workspaces/<agentId>`. */
export const sandboxPaths = (dataDir: string, sandboxId: string, agentId: string): SandboxPaths => {
  const dir = join(dataDir, "sandboxes", sandboxId)
  return {
    dir,
    record: join(dir, "record.json"),
    stdin: join(dir, "stdin"),
    stdout: join(dir, "stdout.log"),
    stderr: join(dir, "stderr.log"),
    run: join(dir, "run"),
    exitFile: join(dir, "run", "exit"),
    workspace: join(dataDir, "workspaces", agentId)
  }
}

/** Reads a record; undefined when the sandbox directory or record does not exist. */
export const readRecord = (dataDir: string, sandboxId: string): SandboxRecord | undefined => {
  try {
    return JSON.parse(readFileSync(join(dataDir, "sandboxes", sandboxId, "record.json"), "utf8")) as SandboxRecord
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined
    throw error
  }
}

/** Writes a record atomically (temporary file, then rename). */
export const writeRecord = (dataDir: string, record: SandboxRecord): void => {
  const dir = join(dataDir, "sandboxes", record.sandboxId)
  mkdirSync(dir, { recursive: true })
  const temporary = join(dir, `record.json.${process.pid}.tmp`)
  writeFileSync(temporary, JSON.stringify(record))
  renameSync(temporary, join(dir, "record.json"))
}

/** Every sandbox record under the data directory; directories without a record (half-removed) are skipped. */
export const readAllRecords = (dataDir: string): Array<SandboxRecord> => {
  let names: Array<string>
  try {
    names = readdirSync(join(dataDir, "sandboxes"))
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return []
    throw error
  }
  return names.flatMap((name) => {
    const record = readRecord(dataDir, name)
    return record === undefined ? [] : [record]
  })
}
