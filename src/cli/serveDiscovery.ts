/**
 * How one-shot commands find an `l02 serve` that holds their data directory: the server writes
 * `<data_dir>/serve.json` (its URL and process id, mode 0600) while it runs, and a command without
 * --url talks to it instead of failing on the embedded store's lock. A file left by a server that is
 * gone (nothing answers at its URL) is ignored.
 */
import { readFileSync, rmSync, writeFileSync } from "node:fs"
import { join, resolve } from "node:path"

/** Where a serving process announces itself in a data directory. */
export const serveFileOf = (dataDir: string): string => join(resolve(dataDir), "serve.json")

/** Announces this process's server for `dataDir`; returns the function that withdraws it. */
export const announceServe = (dataDir: string, url: string): (() => void) => {
  const file = serveFileOf(dataDir)
  writeFileSync(file, `${JSON.stringify({ url, pid: process.pid })}\n`, { mode: 0o600 })
  return () => {
    try {
      const current = JSON.parse(readFileSync(file, "utf8")) as { pid?: unknown }
      if (current.pid === process.pid) rmSync(file, { force: true })
    } catch {
      // already gone
    }
  }
}

/** The URL of a live `l02 serve` holding `dataDir` (it answers /healthz within a second), if there is one. */
export const servingAt = async (dataDir: string): Promise<string | undefined> => {
  let url: unknown
  try {
    url = (JSON.parse(readFileSync(serveFileOf(dataDir), "utf8")) as { url?: unknown }).url
  } catch {
    return undefined
  }
  if (typeof url !== "string") return undefined
  try {
    const answer = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(1000) })
    return answer.ok ? url : undefined
  } catch {
    return undefined
  }
}
