// The lock that keeps an embedded database to one runtime process.
import { open, readFile, rm } from "node:fs/promises"
import * as Effect from "effect/Effect"
import { ConnectionError, SqlError } from "effect/sql/SqlError"

/** An embedded database that cannot be opened: `what failed: why`, as a connection error. */
export const connectFailed = (what: string) => (cause: unknown): SqlError =>
  new SqlError({
    reason: new ConnectionError({ cause, message: `${what}: ${cause instanceof Error ? cause.message : String(cause)}`, operation: "connect" })
  })

const isAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as { code?: unknown }).code === "EPERM"
  }
}

/**
 * Takes `<path>.lock` for this process: an embedded database is one runtime process's (PGlite files
 * opened by two instances at once get corrupted; two runtimes on one SQLite file would both adopt
 * its sandboxes). A lock left by a process that is gone is taken over.
 */
export const lockDataDir = (dataDir: string, what: string) =>
  Effect.acquireRelease(
    Effect.tryPromise({
      try: async () => {
        const path = `${dataDir}.lock`
        for (let attempt = 0; ; attempt++) {
          try {
            const file = await open(path, "wx")
            await file.writeFile(String(process.pid))
            await file.close()
            return path
          } catch (error) {
            if ((error as { code?: unknown }).code !== "EEXIST" || attempt > 0) throw error
            const holder = Number.parseInt(await readFile(path, "utf8").catch(() => ""), 10)
            if (Number.isInteger(holder) && isAlive(holder)) {
              throw new Error(
                `it is in use by ${holder === process.pid ? "this process" : `process ${holder}`} (lock file ${path}); stop that runtime, give this one another data directory, or share a PostgreSQL database (store.url)`
              )
            }
            await rm(path, { force: true })
          }
        }
      },
      catch: connectFailed(`cannot open ${what}`)
    }),
    (path) => Effect.promise(() => rm(path, { force: true })).pipe(Effect.ignore)
  )

