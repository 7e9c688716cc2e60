/**
 * Whether an unprivileged sandbox user can reach a host path: every directory above it must let
 * that user search it (x), and the path itself grant the access asked for. Mode bits only (owner,
 * group, others), the way the kernel decides for a user with no supplementary groups and no ACLs.
 */
import { accessSync, constants, statSync } from "node:fs"
import { delimiter, dirname, join } from "node:path"

/** The PATH a sandbox gets, and the one host tools are looked up in when the host has none. */
export const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

/** Finds an executable on the host PATH. */
export const which = (name: string): string | undefined => {
  for (const dir of (process.env["PATH"] ?? defaultPath).split(delimiter)) {
    const candidate = join(dir, name)
    try {
      accessSync(candidate, constants.X_OK)
      return candidate
    } catch {
      continue
    }
  }
  return undefined
}

const allows = (stat: { mode: number; uid: number; gid: number }, uid: number, gid: number, bits: number): boolean => {
  const shift = stat.uid === uid ? 6 : stat.gid === gid ? 3 : 0
  return ((stat.mode >> shift) & bits) === bits
}

const modeOf = (mode: number) => `0${(mode & 0o7777).toString(8)}`

/**
 * Returns why `uid`/`gid` cannot reach `path` with `access` ("read" or "execute" a file, "search" a directory),
 * or undefined when it can (or when the path does not exist: that is reported where it is used).
 */
export const unreachable = (path: string, uid: number, gid: number, access: "read" | "search" | "execute"): string | undefined => {
  let stat
  try {
    stat = statSync(path)
  } catch {
    return undefined
  }
  const ancestors: Array<string> = []
  for (let dir = dirname(path); ; dir = dirname(dir)) {
    ancestors.unshift(dir)
    if (dirname(dir) === dir) break
  }
  for (const dir of ancestors) {
    const s = statSync(dir)
    if (!allows(s, uid, gid, 0o1)) return `${dir} (mode ${modeOf(s.mode)}, owner ${s.uid}) does not let uid ${uid} search it`
  }
  if (access === "read" && !allows(stat, uid, gid, 0o4)) return `${path} (mode ${modeOf(stat.mode)}, owner ${stat.uid}) is not readable by uid ${uid}`
  if (access !== "read" && !allows(stat, uid, gid, 0o1)) return `${path} (mode ${modeOf(stat.mode)}, owner ${stat.uid}) does not let uid ${uid} ${access} it`
  return undefined
}
