/**
 * FIFOs made ahead, a batch at a time: Node has no mkfifo, and running `mkfifo` from a large host
 * process costs milliseconds per call (the fork), so one call makes a batch and each sandbox takes
 * one by an atomic rename into place.
 */
import { execFileSync } from "node:child_process"
import { chmodSync, mkdirSync, readdirSync, renameSync, rmSync } from "node:fs"
import { randomUUID } from "node:crypto"
import { join } from "node:path"

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM"
  }
}

/**
 * A pool of FIFOs of this host process in a directory of its own under `parent` (on the same
 * filesystem as where they are taken to). Pools of host processes that are gone are removed.
 */
export const makeFifoPool = (parent: string, batch = 16) => {
  mkdirSync(parent, { recursive: true, mode: 0o700 })
  for (const name of readdirSync(parent)) {
    const pid = Number(name.split("-")[0])
    if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && !alive(pid)) rmSync(join(parent, name), { recursive: true, force: true })
  }
  const dir = join(parent, `${process.pid}-${randomUUID().slice(0, 8)}`)
  mkdirSync(dir, { mode: 0o700 })
  let spare: Array<string> = []
  let made = 0
  const refill = () => {
    const names = Array.from({ length: batch }, () => join(dir, `fifo-${made++}`))
    execFileSync("mkfifo", ["-m", "600", ...names])
    spare = names
  }
  return {
    /** Moves a fresh FIFO (mode 0600, owned by this host's user) to `path`. */
    take: (path: string): void => {
      if (spare.length === 0) refill()
      renameSync(spare.pop()!, path)
      chmodSync(path, 0o600)
    },
    /** Removes the spare FIFOs (when the backend's scope closes). */
    close: (): void => rmSync(dir, { recursive: true, force: true })
  }
}
