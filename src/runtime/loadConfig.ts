/**
 * Loads the runtime configuration: config/default_config.yaml, then a user file, then an override
 * object, then environment variables `L02_<SECTION>__<KEY>`; the result is decoded with the
 * RuntimeConfig schema. Any unknown key, wrong type or out-of-range value fails with E2000 naming it.
 */
import { readFileSync } from "node:fs"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import { parse } from "yaml"
import { ConfigInvalid } from "../domain/Errors.ts"
import { RuntimeConfig } from "../domain/RuntimeConfig.ts"
import { packagePath } from "./internal/packageRoot.ts"

/** Path of the packaged default configuration. */
export const defaultConfigPath: string = packagePath("config/default_config.yaml")

/** A partial configuration: any subset of sections and keys. */
export type ConfigOverrides = { readonly [section: string]: { readonly [key: string]: unknown } | undefined }

/** Where configuration comes from, in increasing precedence. */
export interface ConfigSources {
  readonly file?: string | undefined
  readonly overrides?: ConfigOverrides | undefined
  readonly env?: Readonly<Record<string, string | undefined>> | undefined
}

const isRecord = (u: unknown): u is Record<string, unknown> => typeof u === "object" && u !== null && !Array.isArray(u)

const merge = (base: Record<string, unknown>, layer: unknown, origin: string): Record<string, unknown> => {
  if (layer === undefined || layer === null) return base
  if (!isRecord(layer)) throw new ConfigInvalid({ message: `${origin} must be a mapping of sections`, key: "" })
  const out: Record<string, unknown> = { ...base }
  for (const [section, values] of Object.entries(layer)) {
    if (values === undefined) continue
    out[section] = deepMerge(out[section], values)
  }
  return out
}

/** Mappings merge key by key at every depth (`telemetry.traces.exporter` alone keeps the other keys); anything else replaces. */
const deepMerge = (base: unknown, over: unknown): unknown => {
  if (!isRecord(base) || !isRecord(over)) return over
  const out: Record<string, unknown> = { ...base }
  for (const [key, value] of Object.entries(over)) if (value !== undefined) out[key] = deepMerge(base[key], value)
  return out
}

const fromEnv = (env: Readonly<Record<string, string | undefined>>): Record<string, Record<string, unknown>> => {
  const out: Record<string, Record<string, unknown>> = {}
  for (const [name, raw] of Object.entries(env)) {
    const match = /^L02_([A-Z0-9]+)__([A-Z0-9_]+)$/.exec(name)
    if (match === null || raw === undefined) continue
    const section = match[1]!.toLowerCase()
    const key = match[2]!.toLowerCase()
    let value: unknown = raw
    try {
      value = parse(raw)
    } catch {
      value = raw
    }
    ;(out[section] ??= {})[key] = value ?? ""
  }
  return out
}

const readYaml = (path: string, what: string): unknown => {
  let text: string
  try {
    text = readFileSync(path, "utf8")
  } catch (error) {
    throw new ConfigInvalid({ message: `cannot read ${what} ${path}: ${(error as Error).message}`, key: path })
  }
  try {
    return parse(text)
  } catch (error) {
    throw new ConfigInvalid({ message: `${what} ${path} is not valid YAML: ${(error as Error).message}`, key: path })
  }
}

/** The cluster keys that only make sense together with others. */
const checkCluster = (config: RuntimeConfig): RuntimeConfig => {
  const { cluster, store } = config
  if (!cluster.enabled) return config
  if (!/^postgres(ql)?:\/\//.test(store.url)) {
    throw new ConfigInvalid({
      message: "cluster.enabled needs a PostgreSQL store that every runner shares: set store.url to postgres://... (the embedded store belongs to one process)",
      key: "cluster.enabled"
    })
  }
  if (cluster.lease_refresh_seconds >= cluster.lease_seconds) {
    throw new ConfigInvalid({
      message: `cluster.lease_refresh_seconds (${cluster.lease_refresh_seconds}) must be below cluster.lease_seconds (${cluster.lease_seconds}), or leases lapse between refreshes`,
      key: "cluster.lease_refresh_seconds"
    })
  }
  return config
}

/** Loads and validates the configuration, synchronously. Throws {@link ConfigInvalid} (E2000). */
export const loadConfigSync = (sources: ConfigSources = {}): RuntimeConfig => {
  let merged = merge({}, readYaml(defaultConfigPath, "default configuration"), "default configuration")
  if (sources.file !== undefined) merged = merge(merged, readYaml(sources.file, "configuration file"), `configuration file ${sources.file}`)
  merged = merge(merged, sources.overrides, "configuration overrides")
  if (sources.env !== undefined) merged = merge(merged, fromEnv(sources.env), "environment")
  const result = Schema.decodeUnknownExit(RuntimeConfig)(merged, { errors: "all", onExcessProperty: "error" })
  if (result._tag === "Success") return checkCluster(result.value)
  const error = result.cause.reasons.find((r) => r._tag === "Fail")
  const issue = error?._tag === "Fail" ? String((error.error as { message?: unknown }).message ?? error.error) : "invalid configuration"
  const key = /at \["([^"]+)"\]\["([^"]+)"\]/.exec(issue) ?? /at \["([^"]+)"\]/.exec(issue)
  const keyName = key === null ? "" : key.slice(1).filter((k) => k !== undefined).join(".")
  throw new ConfigInvalid({
    message: `configuration key ${keyName || "(root)"} is invalid: ${issue.split("\n")[0]}; see config/default_config.yaml for the keys and their types`,
    key: keyName
  })
}

/** Loads and validates the configuration as an Effect failing with {@link ConfigInvalid}. */
export const loadConfig = (sources: ConfigSources = {}): Effect.Effect<RuntimeConfig, ConfigInvalid> =>
  Effect.try({
    try: () => loadConfigSync(sources),
    catch: (error) => (error instanceof ConfigInvalid ? error : new ConfigInvalid({ message: String(error), key: "" }))
  })
