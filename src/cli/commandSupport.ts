/**
 * What every `l02` command shares: the global flags, the runtime a command works with (the server of
 * --url / L02_URL / the `l02 serve` holding the data directory, or one embedded in this process), and
 * the printers for people and for scripts.
 */
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { Flag } from "effect/cli"
import type { BackendName } from "../domain/RuntimeConfig.ts"
import { createRuntime, type RuntimeOptions } from "../runtime/createRuntime.ts"
import { loadConfigSync } from "../runtime/loadConfig.ts"
import { withProgress } from "./progress.ts"
import { type CliRuntime, remoteRuntime } from "./remote.ts"
import { servingAt } from "./serveDiscovery.ts"

/** The flags every command takes. */
export const global = {
  config: Flag.String("config").pipe(Flag.withDescription("YAML file with configuration overrides"), Flag.optional),
  backend: Flag.Literals("backend", ["process", "docker", "kubernetes", "memory"] as const).pipe(
    Flag.withDescription("sandbox backend (default: runtime.backend)"),
    Flag.optional
  ),
  dataDir: Flag.String("data-dir").pipe(Flag.withDescription("data directory (default: runtime.data_dir)"), Flag.optional),
  json: Flag.Boolean("json").pipe(Flag.withDescription("print JSON for scripts"), Flag.withDefault(false)),
  url: Flag.String("url").pipe(Flag.withDescription("work against a running `l02 serve` at this URL instead of embedding (default: env L02_URL)"), Flag.optional),
  apiKey: Flag.String("api-key").pipe(Flag.withDescription("API key for --url (prefer env L02_API_KEY: arguments are visible to other users)"), Flag.optional)
}

/** The parsed global flags. */
export type Global = {
  readonly config: Option.Option<string>
  readonly backend: Option.Option<BackendName>
  readonly dataDir: Option.Option<string>
  readonly json: boolean
  readonly url: Option.Option<string>
  readonly apiKey: Option.Option<string>
}

/** The runtime options the global flags give. */
export const optionsOf = (g: Global): RuntimeOptions => ({
  configFile: Option.getOrUndefined(g.config),
  backend: Option.getOrUndefined(g.backend),
  dataDir: Option.getOrUndefined(g.dataDir)
})

/** A one-shot command's runtime: it claims warm sandboxes but leaves filling the pools to `l02 serve`. */
export const oneShotOptionsOf = (g: Global): RuntimeOptions => ({ ...optionsOf(g), fillWarmPools: false })

/**
 * The server to work against: --url, else L02_URL, else an `l02 serve` that holds the data directory;
 * none means embedded.
 */
export const serverOf = async (g: Global): Promise<{ readonly url: string; readonly apiKey: string | undefined } | undefined> => {
  const apiKey = Option.getOrUndefined(g.apiKey) ?? process.env.L02_API_KEY
  const url = Option.getOrUndefined(g.url) ?? process.env.L02_URL
  if (url !== undefined && url !== "") return { url, apiKey }
  const dataDir = Option.getOrUndefined(g.dataDir) ?? dataDirOf(g)
  const serving = dataDir === undefined ? undefined : await servingAt(dataDir)
  if (serving === undefined) return undefined
  if (!g.json) console.error(`l02 serve holds ${dataDir}: talking to it at ${serving}`)
  return { url: serving, apiKey }
}

/** The configured data directory (file and environment), when no --data-dir is given. */
const dataDirOf = (g: Global): string | undefined => {
  try {
    return loadConfigSync({ file: Option.getOrUndefined(g.config), env: process.env }).runtime.data_dir
  } catch {
    return undefined
  }
}

/**
 * Runs `f` with a runtime: the server of --url / L02_URL, or one embedded in this process. A coded error
 * prints as `CODE: message` and fails the command, the same either way.
 */
export const withRuntime = <A>(g: Global, f: (runtime: CliRuntime) => Promise<A>) =>
  Effect.acquireUseRelease(
    Effect.tryPromise({
      try: async (): Promise<CliRuntime> => {
        const server = await serverOf(g)
        return server === undefined ? createRuntime(oneShotOptionsOf(g)) : remoteRuntime(server.url, server.apiKey)
      },
      catch: (e) => e
    }),
    (runtime) => Effect.tryPromise({ try: () => f(runtime), catch: (e) => e }),
    (runtime) => Effect.promise(() => runtime.shutdown())
  )

/** Shows a progress indicator on stderr while `work` runs, for people (a terminal, not --json). */
export const progress = <A>(g: Global, label: string, work: () => Promise<A>) => withProgress(label, work, { enabled: !g.json })

/** Prints `value` as JSON with --json, else what `human` writes. */
export const print = (g: Global, value: unknown, human: () => string) => Console.log(g.json ? JSON.stringify(value, null, 2) : human())

/** Rows as a table of padded columns (the first row is the header). */
export const table = (rows: ReadonlyArray<ReadonlyArray<string>>): string => {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length))) ?? []
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i] ?? 0)).join("  ").trimEnd()).join("\n")
}
