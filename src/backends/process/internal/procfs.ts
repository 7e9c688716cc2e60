/**
 * Reads process facts from Linux /proc: state, process group, start time, CPU ticks, resident memory.
 * Every read tolerates the process vanishing between two reads (it answers undefined).
 */
import { readdirSync, readFileSync } from "node:fs"

/** One process as /proc/<pid>/stat describes it. */
export interface ProcStat {
  readonly pid: number
  /** R running, S sleeping, T stopped, Z zombie... */
  readonly state: string
  readonly pgrp: number
  /** Clock ticks since boot at which the process started: with the pid, a process's identity. */
  readonly startTime: number
  /** User plus system CPU time, in clock ticks. */
  readonly cpuTicks: number
}

/** Clock ticks per second of /proc times (USER_HZ, 100 on every Linux architecture Node supports). */
export const clockTicksPerSecond = 100

/** Parses /proc/<pid>/stat; undefined when the process does not exist. */
export const readStat = (pid: number): ProcStat | undefined => {
  let text: string
  try {
    text = readFileSync(`/proc/${pid}/stat`, "utf8")
  } catch {
    return undefined
  }
  // The command name (field 2) may hold spaces and parentheses: fields resume after the last ")".
  const fields = text.slice(text.lastIndexOf(")") + 2).split(" ")
  return {
    pid,
    state: fields[0]!,
    pgrp: Number(fields[2]),
    cpuTicks: Number(fields[11]) + Number(fields[12]),
    startTime: Number(fields[19])
  }
}

/** True when `pid` is alive (not a zombie) and is the same process that started at `startTime`. */
export const isAlive = (pid: number, startTime: number): boolean => {
  const stat = readStat(pid)
  return stat !== undefined && stat.startTime === startTime && stat.state !== "Z" && stat.state !== "X"
}

/** Resident memory of a process in bytes (VmRSS), 0 when unknown or gone. */
export const readRssBytes = (pid: number): number => {
  try {
    const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))
    return match === null ? 0 : Number(match[1]) * 1024
  } catch {
    return 0
  }
}

/** Every live process, grouped by process group id: one scan of /proc serves all sandboxes. */
export const processGroups = (): Map<number, Array<ProcStat>> => {
  const groups = new Map<number, Array<ProcStat>>()
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue
    const stat = readStat(Number(name))
    if (stat === undefined || stat.state === "Z" || stat.state === "X") continue
    const members = groups.get(stat.pgrp)
    if (members === undefined) groups.set(stat.pgrp, [stat])
    else members.push(stat)
  }
  return groups
}
