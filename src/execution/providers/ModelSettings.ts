/**
 * An agent's model settings: which provider, where, which model, which key, and how patiently.
 *
 * The API key is given as a reference (an environment variable or a mounted secret file) or as a
 * `Redacted` value; it is resolved once when the gateway is built and is never logged.
 */
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import type { ConfigInvalid } from "../../domain/Errors.ts"
import { readSecretSource } from "../../services/SecretStore.ts"

/** Where an API key comes from: an environment variable, a secret file (Docker/Kubernetes secret mount), or a value. */
export type ApiKeySource =
  | { readonly env: string }
  | { readonly secretFile: string }
  | Redacted.Redacted<string>

/** Retry policy for 429, 5xx, timeouts and network failures before the first byte of the answer. */
export interface RetrySettings {
  /** Retries after the first attempt. Default 3. */
  readonly maxRetries?: number | undefined
  /** First backoff; doubled per retry, with full jitter on the upper half. Default 500 ms. */
  readonly baseDelayMs?: number | undefined
  /** Upper bound of one backoff. Default 20 s. */
  readonly maxDelayMs?: number | undefined
  /** A `Retry-After` longer than this fails at once with E2082 instead of waiting. Default 60 s. */
  readonly maxRetryAfterMs?: number | undefined
}

/** Settings of one agent's model gateway. */
export interface ModelSettings {
  readonly provider: "openai-chat" | "openai-responses" | "anthropic"
  /** Base URL of the API, e.g. `https://api.openai.com/v1` or `https://api.anthropic.com/v1`. */
  readonly baseUrl: string
  readonly model: string
  /** Omitted for local servers that need no key. */
  readonly apiKey?: ApiKeySource | undefined
  /** Time until the answer's headers arrive, per attempt. Default 60 s. */
  readonly timeoutMs?: number | undefined
  /** Longest silence between two chunks of a streamed answer. Default 60 s. */
  readonly idleTimeoutMs?: number | undefined
  readonly retry?: RetrySettings | undefined
  /** Extra request headers (e.g. an organisation id); never logged. */
  readonly headers?: Readonly<Record<string, string>> | undefined
}

/** The defaults of {@link RetrySettings}, filled in. */
export const retryDefaults = (retry: RetrySettings | undefined): Required<RetrySettings> => ({
  maxRetries: retry?.maxRetries ?? 3,
  baseDelayMs: retry?.baseDelayMs ?? 500,
  maxDelayMs: retry?.maxDelayMs ?? 20_000,
  maxRetryAfterMs: retry?.maxRetryAfterMs ?? 60_000
})

/**
 * Resolves an API key source to a `Redacted` value; fails with E2000 naming the variable or file
 * (never the value) when it is missing or empty.
 */
export const resolveApiKey = (
  source: ApiKeySource | undefined,
  env: Readonly<Record<string, string | undefined>> = process.env
): Effect.Effect<Redacted.Redacted<string> | undefined, ConfigInvalid> => {
  if (source === undefined) return Effect.succeed(undefined)
  if (Redacted.isRedacted(source)) return Effect.succeed(source)
  return readSecretSource("env" in source ? { env: source.env } : { file: source.secretFile }, "the model API key", "model.apiKey", env)
}
