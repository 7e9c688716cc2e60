/**
 * Host-wide claims of sandbox uids: each process sandbox runs as a uid of its own, taken from the
 * operator's range, so its process limit counts only its own processes and no other sandbox can
 * read its files or signal it. A claim is a file `<dir>/<uid>` naming its owner (the sandbox's
 * record file), created exclusively; every runtime on the host uses the same directory, so two
 * runtimes (even on different data directories) never hand out the same uid.
 *
 * A claim older than {@link staleLockMs} whose owner record is gone, or names another uid, is stale (its runtime was removed
 * without releasing it) and is taken over. Taking a uid happens under a short lock (a directory
 * made exclusively; one older than {@link staleLockMs} is broken), so two runtimes never take over
 * the same stale claim.
 */
import { closeSync, mkdirSync, openSync, readFileSync, rmdirSync, statSync, unlinkSync, writeFileSync, writeSync } from "node:fs"
import { join } from "node:path"
import type { UidRange } from "../../../domain/UidRange.ts"

/** A lock older than this was left by a process that died while holding it. */
export const staleLockMs = 10_000

/** The claims of one host. */
export interface UidClaims {
  /** Takes a free uid for `owner` (a record path); throws when every uid of the range is taken. */
  readonly claim: (owner: string) => number
  /** True when `uid` is claimed by `owner`. */
  readonly holds: (uid: number, owner: string) => boolean
  /**
   * Makes sure `owner` holds `uid` again (its claim may be gone: `/run` is emptied at boot); false
   * when another sandbox holds it now.
   */
  readonly ensure: (uid: number, owner: string) => boolean
  /** Gives `uid` back, if `owner` holds it. */
  readonly release: (uid: number, owner: string) => void
}

const readOwner = (path: string): string | undefined => {
  try {
    return readFileSync(path, "utf8").trim()
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined
    throw error
  }
}

const ageMs = (path: string): number => {
  try {
    return Date.now() - statSync(path).mtimeMs
  } catch {
    return 0
  }
}

/**
 * The claims kept in `dir` (created 0700 when missing); `ownsUid` tells whether a claim's owner (a
 * record path) still runs as that uid.
 */
export const makeUidClaims = (range: UidRange, dir: string, ownsUid: (owner: string, uid: number) => boolean): UidClaims => {
  mkdirSync(dir, { recursive: true, mode: 0o700 })
  const lockPath = join(dir, ".lock")
  const size = range.last - range.first + 1
  // Where the next search starts: spread over the range so concurrent runtimes rarely meet.
  let cursor = Math.floor(Math.random() * size)

  const withLock = <A>(f: () => A): A => {
    const deadline = Date.now() + staleLockMs * 2
    for (;;) {
      try {
        mkdirSync(lockPath)
        break
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error
        try {
          if (Date.now() - statSync(lockPath).mtimeMs > staleLockMs) rmdirSync(lockPath)
        } catch {
          // Released meanwhile.
        }
        if (Date.now() > deadline) throw new Error(`the uid claim lock ${lockPath} stayed taken for ${staleLockMs * 2} ms`)
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 2)
      }
    }
    try {
      return f()
    } finally {
      rmdirSync(lockPath)
    }
  }

  const tryCreate = (path: string, owner: string): boolean => {
    try {
      const fd = openSync(path, "wx", 0o600)
      try {
        writeSync(fd, `${owner}\n`)
      } finally {
        closeSync(fd)
      }
      return true
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "EEXIST") return false
      throw error
    }
  }

  /** Takes `uid` for `owner`: a free one, or one whose claim is stale. Only under the lock. */
  const take = (uid: number, owner: string): boolean => {
    const path = join(dir, String(uid))
    if (tryCreate(path, owner)) return true
    const current = readOwner(path)
    // A claim is written just before its owner's record: a young one is never stale.
    if (current === undefined || ageMs(path) <= staleLockMs || ownsUid(current, uid)) return false
    // Stale: its owner is gone. Under the lock nobody else takes it over meanwhile.
    writeFileSync(path, `${owner}\n`, { mode: 0o600 })
    return true
  }

  return {
    claim: (owner) =>
      withLock(() => {
        for (let i = 0; i < size; i++) {
          const uid = range.first + ((cursor + i) % size)
          if (take(uid, owner)) {
            cursor = (cursor + i + 1) % size
            return uid
          }
        }
        throw new Error(`every uid of ${range.first}-${range.last} is claimed by a sandbox on this host (claims in ${dir})`)
      }),
    holds: (uid, owner) => readOwner(join(dir, String(uid))) === owner,
    ensure: (uid, owner) => withLock(() => readOwner(join(dir, String(uid))) === owner || take(uid, owner)),
    release: (uid, owner) => {
      const path = join(dir, String(uid))
      if (readOwner(path) !== owner) return
      try {
        unlinkSync(path)
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error
      }
    }
  }
}
