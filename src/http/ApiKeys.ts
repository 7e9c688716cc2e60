/**
 * API-key authentication of the HTTP API: bearer tokens compared by SHA-256, each key with its scopes.
 *
 * Configuration never holds a key: an entry names the environment variable holding it (`key_env`) or
 * gives its SHA-256 (`key_sha256`). The server keeps only hashes, compares them in constant time,
 * and never logs or echoes a presented key.
 */
import { createHash, timingSafeEqual } from "node:crypto"
import { ConfigInvalid, Forbidden, Unauthenticated } from "../domain/Errors.ts"
import type { TrustLevel } from "../domain/AgentConfig.ts"
import type { ApiKeyConfig, ApiKeyScope } from "../domain/RuntimeConfig.ts"

/** A resolved key: the SHA-256 of the secret and what it may do. */
export interface ResolvedApiKey {
  readonly sha256: Buffer
  readonly scopes: ReadonlySet<ApiKeyScope>
  /** The trust levels it may spawn; undefined: any. */
  readonly trustLevels: ReadonlyArray<TrustLevel> | undefined
  /** Where the key came from, for messages (`env L02_API_KEY` or `key_sha256 #2`); never the key. */
  readonly source: string
}

/** The SHA-256 of a key as lowercase hex, the form `key_sha256` takes. */
export const sha256Hex = (key: string): string => createHash("sha256").update(key, "utf8").digest("hex")

const loopbackHosts = new Set(["127.0.0.1", "::1", "localhost", "[::1]"])

/** Whether `host` only accepts connections from this machine. */
export const isLoopback = (host: string): boolean => loopbackHosts.has(host) || host.startsWith("127.")

/**
 * Resolves configured keys, reading `key_env` variables from `env`. Fails with E2000 when a variable is
 * unset or empty, or when there are no keys and the server would listen beyond this machine.
 */
export const resolveApiKeys = (
  keys: ReadonlyArray<ApiKeyConfig>,
  env: Readonly<Record<string, string | undefined>>,
  host: string
): ReadonlyArray<ResolvedApiKey> => {
  const resolved = keys.map((entry, index): ResolvedApiKey => {
    const scopes = new Set(entry.scopes)
    const trustLevels = trustLevelsOf(entry)
    if (entry.key_env !== undefined) {
      const value = env[entry.key_env]
      if (value === undefined || value === "") {
        throw new ConfigInvalid({
          message: `http.api_keys[${index}] reads its key from the environment variable ${entry.key_env}, which is unset or empty; set it or remove the entry`,
          key: `http.api_keys.${index}.key_env`
        })
      }
      return { sha256: createHash("sha256").update(value, "utf8").digest(), scopes, trustLevels, source: `env ${entry.key_env}` }
    }
    if (entry.key_sha256 !== undefined) return { sha256: Buffer.from(entry.key_sha256, "hex"), scopes, trustLevels, source: `key_sha256 #${index}` }
    throw new ConfigInvalid({ message: `http.api_keys[${index}] names neither key_env nor key_sha256`, key: `http.api_keys.${index}` })
  })
  if (resolved.length === 0 && !isLoopback(host)) {
    throw new ConfigInvalid({
      message: `the HTTP API would listen on ${host} without API keys; add keys under http.api_keys (docs/http.md) or listen on 127.0.0.1`,
      key: "http.api_keys"
    })
  }
  return resolved
}

/**
 * The trust levels a key may spawn: its `trust_levels`; else every level for an admin key and every
 * level but TRUSTED for others (a TRUSTED agent on the process backend is a program on the host).
 */
export const trustLevelsOf = (entry: ApiKeyConfig): ReadonlyArray<TrustLevel> | undefined =>
  entry.trust_levels ?? (entry.scopes.includes("admin") ? undefined : ["STANDARD", "UNTRUSTED", "CONFIDENTIAL"])

/** What a request may do: its scopes (every scope when no keys are configured, loopback only) and the trust levels it may spawn. */
export interface Principal {
  readonly scopes: ReadonlySet<ApiKeyScope>
  /** Undefined: any trust level. */
  readonly trustLevels: ReadonlyArray<TrustLevel> | undefined
}

const allScopes: ReadonlySet<ApiKeyScope> = new Set<ApiKeyScope>(["read", "operate", "admin"])
const everything: Principal = { scopes: allScopes, trustLevels: undefined }

/**
 * Authenticates an `Authorization` header against the keys. Fails with E2002 (no or unknown key);
 * the messages never contain the presented key.
 */
export const authenticate = (keys: ReadonlyArray<ResolvedApiKey>, authorization: string | undefined): Principal | Unauthenticated => {
  if (keys.length === 0) return everything
  if (authorization === undefined || authorization === "") {
    return new Unauthenticated({ message: "this route needs an API key: send the header Authorization: Bearer <key>" })
  }
  const match = /^Bearer[ ]+([\x21-\x7e]{1,4096})[ ]*$/i.exec(authorization)
  if (match === null) {
    return new Unauthenticated({ message: "the Authorization header must be `Bearer <key>` with a key of printable characters" })
  }
  const presented = createHash("sha256").update(match[1]!, "utf8").digest()
  let found: ResolvedApiKey | undefined
  // Compare with every key so the time taken does not tell which one matched.
  for (const key of keys) if (timingSafeEqual(key.sha256, presented) && found === undefined) found = key
  if (found === undefined) return new Unauthenticated({ message: "the API key is not known to this server; check the key you send" })
  return { scopes: found.scopes.has("admin") ? allScopes : found.scopes, trustLevels: found.trustLevels }
}

/** Checks that a principal has `scope` (admin has every scope); fails with E2003 naming it. */
export const authorize = (principal: Principal, scope: ApiKeyScope, what: string): Forbidden | undefined =>
  principal.scopes.has(scope) || principal.scopes.has("admin")
    ? undefined
    : new Forbidden({ message: `${what} needs an API key with the scope ${scope}; this key has ${[...principal.scopes].join(", ") || "none"}`, key: scope })
