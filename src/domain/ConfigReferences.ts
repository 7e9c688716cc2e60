/**
 * The trust boundary of an agent config: what it may name on the supervisor's side.
 *
 * An agent config names host-side resources **by name**: a model endpoint (`model.endpoint`) and MCP
 * servers (`mcp[].server`) the operator declared in the configuration. A config from outside the
 * process (the HTTP API, `l02 --url`) may not name a file path, an environment variable of the
 * supervisor, or a URL that `execution.allowed_urls` does not list; embedding code (trusted, in the
 * same process) still may. Every check here is pure: it runs before anything is created.
 */
import type { AgentConfig } from "./AgentConfig.ts"
import { ConfigInvalid, HostReferenceRefused, ReferenceUnknown } from "./Errors.ts"
import type { HostMcpServerConfig, ModelEndpointConfig, RuntimeConfig } from "./RuntimeConfig.ts"

/** Where an agent config came from: the embedding code (trusted) or a client of the HTTP API (not). */
export type ConfigOrigin = "embedding" | "remote"

/** What the operator declared for agent configs to name. */
export interface DeclaredResources {
  readonly models: Readonly<Record<string, ModelEndpointConfig>>
  readonly mcpServers: Readonly<Record<string, HostMcpServerConfig>>
  readonly allowedUrls: ReadonlyArray<string>
}

/** The declared resources of a configuration. */
export const declaredResourcesOf = (config: RuntimeConfig): DeclaredResources => ({
  models: config.execution.models,
  mcpServers: config.execution.mcp_servers,
  allowedUrls: config.execution.allowed_urls
})

const parseIpv4 = (host: string): ReadonlyArray<number> | undefined => {
  const parts = host.split(".")
  if (parts.length !== 4 || parts.some((p) => !/^\d{1,3}$/.test(p))) return undefined
  const bytes = parts.map(Number)
  return bytes.every((b) => b <= 255) ? bytes : undefined
}

/**
 * Whether a URL's host is an address inside the host's own networks: loopback, unspecified,
 * link-local (169.254.169.254, the cloud metadata address), private (RFC 1918, CGNAT 100.64/10,
 * IPv6 unique-local) or `localhost`. Hostnames other than `localhost` are not resolved here.
 */
export const isInternalHost = (hostname: string): boolean => {
  const host = hostname.toLowerCase().replace(/^\[|\]$/g, "")
  if (host === "localhost" || host.endsWith(".localhost")) return true
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(host)?.[1] ?? /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(host)
  if (typeof mapped === "string") return isInternalHost(mapped)
  if (Array.isArray(mapped)) {
    const hi = parseInt(mapped[1]!, 16)
    const lo = parseInt(mapped[2]!, 16)
    return isInternalHost(`${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`)
  }
  const v4 = parseIpv4(host)
  if (v4 !== undefined) {
    const [a, b] = v4 as [number, number, number, number]
    return a === 0 || a === 10 || a === 127 || (a === 169 && b === 254) || (a === 172 && b >= 16 && b <= 31) ||
      (a === 192 && b === 168) || (a === 100 && b >= 64 && b <= 127)
  }
  if (host.includes(":")) {
    return host === "::" || host === "::1" || /^f[cd][0-9a-f]{0,2}:/.test(host) || /^fe[89ab][0-9a-f]?:/.test(host)
  }
  return false
}

const parseUrl = (raw: string): URL | undefined => {
  try {
    const url = new URL(raw)
    return url.protocol === "http:" || url.protocol === "https:" ? url : undefined
  } catch {
    return undefined
  }
}

/**
 * Whether `raw` is listed: some entry has its scheme, host and port, and a path that is a prefix of
 * its path at a segment boundary (`https://api.example.com/v1` lists `.../v1/chat`, not `.../v10`).
 * A URL with credentials (`user:pass@`) is never listed.
 */
export const urlAllowed = (raw: string, allowed: ReadonlyArray<string>): boolean => {
  const url = parseUrl(raw)
  if (url === undefined || url.username !== "" || url.password !== "") return false
  return allowed.some((entry) => {
    const base = parseUrl(entry)
    if (base === undefined || base.protocol !== url.protocol || base.host !== url.host) return false
    const prefix = base.pathname.replace(/\/+$/, "")
    return url.pathname === prefix || url.pathname.startsWith(`${prefix}/`) || prefix === ""
  })
}

const refuseUrl = (raw: string, key: string, allowed: ReadonlyArray<string>): HostReferenceRefused | undefined => {
  if (urlAllowed(raw, allowed)) return undefined
  const url = parseUrl(raw)
  const why = url === undefined
    ? "is not an http(s) URL"
    : url.username !== "" || url.password !== ""
    ? "carries credentials"
    : isInternalHost(url.hostname)
    ? `points into the supervisor's own network (${url.hostname}) and is not listed in execution.allowed_urls`
    : "is not listed in execution.allowed_urls"
  return new HostReferenceRefused({
    message: `${key} ${JSON.stringify(raw)} ${why}; name an operator-declared ${key.startsWith("model.") ? "model endpoint (model.endpoint)" : "MCP server (server)"} instead, or ask the operator to list the URL`,
    key
  })
}

/** A declared MCP server by name; only the configuration's own keys count (not `toString`, `__proto__`). */
export const declaredMcpServer = (declared: DeclaredResources, name: string): HostMcpServerConfig | undefined =>
  Object.hasOwn(declared.mcpServers, name) ? declared.mcpServers[name] : undefined

/**
 * The declared endpoint a model names and the model id it runs (its own or the endpoint's default):
 * E2005 when the endpoint is not declared (only the configuration's own keys count), when there is no
 * model id, or when the endpoint's `models` does not allow it.
 */
export const endpointOf = (
  model: { readonly endpoint: string; readonly model?: string | undefined },
  declared: DeclaredResources
): { readonly endpoint: ModelEndpointConfig; readonly modelId: string } | ReferenceUnknown => {
  const endpoint = Object.hasOwn(declared.models, model.endpoint) ? declared.models[model.endpoint] : undefined
  if (endpoint === undefined) {
    const names = Object.keys(declared.models)
    return new ReferenceUnknown({
      message: `model.endpoint ${JSON.stringify(model.endpoint)} is not a declared model endpoint (execution.models has ${names.length === 0 ? "none" : names.join(", ")})`,
      key: "model.endpoint"
    })
  }
  const modelId = model.model ?? endpoint.model
  if (modelId === undefined) {
    return new ReferenceUnknown({ message: `model endpoint ${model.endpoint} declares no default model; give model.model`, key: "model.model" })
  }
  if (endpoint.models !== undefined && !endpoint.models.includes(modelId)) {
    return new ReferenceUnknown({
      message: `model endpoint ${model.endpoint} does not allow model ${JSON.stringify(modelId)} (it allows ${endpoint.models.join(", ")})`,
      key: "model.model"
    })
  }
  return { endpoint, modelId }
}

/**
 * Checks what an agent config names on the supervisor's side. For every origin: a named endpoint or
 * MCP server must be declared (E2005), and the model id allowed by its endpoint. For a `remote`
 * config also: no `model.apiKeyEnv` or `model.apiKeyFile`, and every URL listed (E2004).
 * Returns the first refusal, or undefined when the config may be used.
 */
export const checkReferences = (
  config: AgentConfig,
  declared: DeclaredResources,
  origin: ConfigOrigin
): HostReferenceRefused | ReferenceUnknown | undefined => {
  const model = config.model
  if (model === undefined) return undefined
  if (model.endpoint !== undefined) {
    const found = endpointOf({ endpoint: model.endpoint, model: model.model }, declared)
    if (found instanceof ReferenceUnknown) return found
  }
  if (origin === "remote") {
    if (model.apiKeyEnv !== undefined) {
      return new HostReferenceRefused({
        message: "model.apiKeyEnv names an environment variable of the supervisor, which a config sent over HTTP may not; name an operator-declared model endpoint (model.endpoint) whose key the operator keeps",
        key: "model.apiKeyEnv"
      })
    }
    if (model.apiKeyFile !== undefined) {
      return new HostReferenceRefused({
        message: "model.apiKeyFile names a file on the supervisor's host, which a config sent over HTTP may not; name an operator-declared model endpoint (model.endpoint) whose key the operator keeps",
        key: "model.apiKeyFile"
      })
    }
    if (model.baseUrl !== undefined) {
      const refused = refuseUrl(model.baseUrl, "model.baseUrl", declared.allowedUrls)
      if (refused !== undefined) return refused
    }
  }
  for (const [i, server] of (model.mcp ?? []).entries()) {
    if (server.server !== undefined && declaredMcpServer(declared, server.server) === undefined) {
      const names = Object.keys(declared.mcpServers)
      return new ReferenceUnknown({
        message: `model.mcp[${i}].server ${JSON.stringify(server.server)} is not a declared MCP server (execution.mcp_servers has ${names.length === 0 ? "none" : names.join(", ")})`,
        key: `model.mcp[${i}].server`
      })
    }
    if (origin === "remote" && server.transport?.type === "http") {
      const refused = refuseUrl(server.transport.url, `model.mcp[${i}].transport.url`, declared.allowedUrls)
      if (refused !== undefined) return refused
    }
  }
  return undefined
}

/**
 * Checks that the configuration's own references hold: every secret a model endpoint or MCP server
 * names is one of `secretNames` (the secret store's: by default the configuration's `secrets`).
 * Returns the E2000 naming the key, or undefined. The runtime checks it when it starts.
 */
export const checkDeclarations = (config: RuntimeConfig, secretNames: ReadonlyArray<string> = Object.keys(config.secrets)): ConfigInvalid | undefined => {
  const declared = (name: string, key: string) =>
    secretNames.includes(name)
      ? undefined
      : new ConfigInvalid({
        message: `configuration key ${key} names the secret ${JSON.stringify(name)}, which secrets does not declare (it has ${secretNames.join(", ") || "none"})`,
        key
      })
  for (const [name, endpoint] of Object.entries(config.execution.models)) {
    if (endpoint.api_key_secret !== undefined) {
      const missing = declared(endpoint.api_key_secret, `execution.models.${name}.api_key_secret`)
      if (missing !== undefined) return missing
    }
  }
  for (const [name, server] of Object.entries(config.execution.mcp_servers)) {
    for (const [variable, secret] of Object.entries(server.env_secrets ?? {})) {
      const missing = declared(secret, `execution.mcp_servers.${name}.env_secrets.${variable}`)
      if (missing !== undefined) return missing
    }
    if (server.bearer_secret !== undefined) {
      const missing = declared(server.bearer_secret, `execution.mcp_servers.${name}.bearer_secret`)
      if (missing !== undefined) return missing
    }
  }
  return undefined
}
