/**
 * What the process backend enforces on this host, in words: the answer `l02 config` prints, so an
 * operator sees which limits are in force before the first spawn (see ./README.md).
 */
import type { UidRange } from "../../domain/UidRange.ts"
import { which } from "./internal/hostAccess.ts"

/** Which user, process limit, memory limit and cgroup a process sandbox gets here. */
export interface ProcessIsolation {
  readonly user: string
  readonly processes: string
  readonly memory: string
  readonly cgroups: string
}

/** Describes the isolation a process sandbox gets with these settings on this host. */
export const describeProcessIsolation = (settings: { readonly uidRange: UidRange | undefined; readonly uidClaimsDir: string }): ProcessIsolation => {
  const root = process.getuid?.() === 0
  const prlimit = which("prlimit") !== undefined
  const own = root && settings.uidRange !== undefined
  return {
    user: !root
      ? `the host user (uid ${process.getuid?.()}): the supervisor is not root, so it cannot switch users`
      : own
      ? `a uid of its own per sandbox from ${settings.uidRange!.first}-${settings.uidRange!.last} (process.uid_range), claimed in ${settings.uidClaimsDir}`
      : "the trust profile's runAsUser (65534), shared by every sandbox (process.uid_range is empty)",
    processes: !root || !prlimit
      ? `not limited (${!root ? "the supervisor is not root" : "prlimit is not installed"})`
      : own
      ? "RLIMIT_NPROC = resources.pids, counting the sandbox's own processes only"
      : "RLIMIT_NPROC = resources.pids, counting every process of uid 65534 on the host",
    memory: "resources.memory by a watchdog summing the group's RSS every 250 ms (a poll, not a cgroup)",
    cgroups: "not used by the process backend (use docker or kubernetes for kernel-enforced limits)"
  }
}
