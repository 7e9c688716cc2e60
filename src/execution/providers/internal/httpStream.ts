/**
 * POSTs a streaming model request and yields its server-sent events.
 *
 * Attempts are retried with exponential backoff and jitter on 429, 5xx, timeouts and network
 * failures, honouring `Retry-After` / `retry-after-ms`; other statuses fail at once with E2081.
 * Retries only happen before the first byte of the answer: once events flowed, a failure ends the
 * stream with E2080, because the caller has already seen part of the turn. Every attempt has its own
 * AbortController, aborted when the attempt fails or the stream's scope closes (interruption).
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Random from "effect/Random"
import * as Redacted from "effect/Redacted"
import * as Stream from "effect/Stream"
import {
  ModelRateLimited,
  ModelRequestFailed,
  ModelRequestRejected,
  ModelResponseInvalid
} from "../../../domain/Errors.ts"
import type { ModelError } from "../../../services/ModelGateway.ts"
import { type ModelSettings, retryDefaults } from "../ModelSettings.ts"

/** One server-sent event: its `event:` name (empty when absent) and its joined `data:` lines. */
export interface SseMessage {
  readonly event: string
  readonly data: string
}

/** A request to stream. */
export interface StreamCall {
  readonly settings: ModelSettings
  /** Path appended to the base URL, e.g. `/chat/completions`. */
  readonly path: string
  readonly headers: Readonly<Record<string, string>>
  readonly body: unknown
  /** Provider name for messages, e.g. "OpenAI Chat Completions". */
  readonly label: string
}

type AttemptFailure = ModelError & { readonly retryAfterMs?: number | undefined }

/** Parses `Retry-After` (seconds or HTTP date) and OpenAI's `retry-after-ms`; undefined when absent or unreadable. */
export const retryAfterMs = (headers: Headers, now: number): number | undefined => {
  const ms = headers.get("retry-after-ms")
  if (ms !== null && Number.isFinite(Number(ms)) && Number(ms) >= 0) return Number(ms)
  const value = headers.get("retry-after")
  if (value === null) return undefined
  if (/^\d+(\.\d+)?$/.test(value.trim())) return Number(value) * 1000
  const date = Date.parse(value)
  return Number.isNaN(date) ? undefined : Math.max(0, date - now)
}

const describeBody = async (response: Response): Promise<string> => {
  const text = await response.text().catch(() => "")
  try {
    const parsed = JSON.parse(text) as { error?: { message?: unknown } | string; message?: unknown }
    const message = typeof parsed.error === "string"
      ? parsed.error
      : typeof parsed.error?.message === "string"
      ? parsed.error.message
      : typeof parsed.message === "string"
      ? parsed.message
      : undefined
    if (message !== undefined) return message.slice(0, 500)
  } catch {
    // not JSON: the raw text is the best description
  }
  return text.slice(0, 500)
}

const statusFailure = async (call: StreamCall, response: Response, now: number): Promise<AttemptFailure> => {
  const status = response.status
  const detail = await describeBody(response)
  const where = `${call.label} at ${call.settings.baseUrl}${call.path}`
  if (status === 429) {
    const after = retryAfterMs(response.headers, now)
    return new ModelRateLimited({
      message: `${where} is rate limiting (429): ${detail}; wait and retry, or raise the provider quota`,
      ...(after === undefined ? {} : { retryAfterMs: after })
    })
  }
  if (status >= 500 || status === 408) {
    const failure = new ModelRequestFailed({
      message: `${where} answered ${status}: ${detail}; the provider is failing, retry later`,
      status
    })
    const after = retryAfterMs(response.headers, now)
    return after === undefined ? failure : Object.assign(failure, { retryAfterMs: after })
  }
  const hint = status === 401 || status === 403
    ? "check the API key variable or secret of this agent"
    : status === 404
    ? `check the model id "${call.settings.model}" and the base URL`
    : "check the request (model parameters, tools, messages)"
  return new ModelRequestRejected({ message: `${where} refused the request with ${status}: ${detail}; ${hint}`, status })
}

const isRetryable = (failure: AttemptFailure): boolean =>
  failure._tag === "ModelRateLimited" || failure._tag === "ModelRequestFailed"

/** One attempt: the response with a 2xx status and a body, or the attempt's coded failure. */
const attempt = (call: StreamCall, apiKeyHeaders: Readonly<Record<string, string>>) =>
  Effect.gen(function*() {
    const controller = yield* Effect.acquireRelease(
      Effect.sync(() => new AbortController()),
      (c, exit) => exit._tag === "Success" ? Effect.void : Effect.sync(() => c.abort())
    )
    const timeoutMs = call.settings.timeoutMs ?? 60_000
    const url = `${call.settings.baseUrl.replace(/\/+$/, "")}${call.path}`
    const response = yield* Effect.tryPromise({
      try: () =>
        fetch(url, {
          method: "POST",
          headers: { "content-type": "application/json", accept: "text/event-stream", ...call.settings.headers, ...call.headers, ...apiKeyHeaders },
          body: JSON.stringify(call.body),
          // A model API does not redirect; following one could take the request (and its key) anywhere.
          redirect: "error",
          signal: controller.signal
        }),
      catch: (error): AttemptFailure =>
        new ModelRequestFailed({
          message: `cannot reach ${call.label} at ${url}: ${
            (error as { cause?: { code?: string } }).cause?.code ?? (error as Error).message
          }; check the base URL and the network`
        })
    }).pipe(
      Effect.timeoutOrElse({
        duration: Duration.millis(timeoutMs),
        orElse: () =>
          Effect.fail<AttemptFailure>(
            new ModelRequestFailed({
              message: `${call.label} at ${url} sent no answer within ${timeoutMs} ms; retry, or raise the agent's model timeoutMs`
            })
          )
      })
    )
    if (!response.ok || response.body === null) {
      const now = yield* Effect.clockWith((clock) => clock.currentTimeMillis)
      return yield* Effect.flatMap(Effect.promise(() => statusFailure(call, response, now)), Effect.fail)
    }
    return { response, controller }
  })

/** Connects with retries; the stream of the successful attempt's body is owned by the caller's scope. */
const connect = (call: StreamCall, apiKeyHeaders: Readonly<Record<string, string>>) =>
  Effect.gen(function*() {
    const retry = retryDefaults(call.settings.retry)
    for (let n = 0;; n++) {
      const result = yield* Effect.result(Effect.scoped(attempt(call, apiKeyHeaders)))
      if (result._tag === "Success") return result.success
      const failure = result.failure
      if (!isRetryable(failure) || n >= retry.maxRetries) return yield* Effect.fail(failure)
      const hinted = failure.retryAfterMs
      if (hinted !== undefined && hinted > retry.maxRetryAfterMs) return yield* Effect.fail(failure)
      const backoff = Math.min(retry.maxDelayMs, retry.baseDelayMs * 2 ** n)
      const jittered = backoff / 2 + (yield* Random.next) * (backoff / 2)
      yield* Effect.sleep(Duration.millis(hinted ?? jittered))
    }
  })

/** Splits decoded text lines into server-sent events (WHATWG rules for `event:` and `data:`). */
const sseMessages = (lines: Stream.Stream<string, ModelError>): Stream.Stream<SseMessage, ModelError> =>
  lines.pipe(
    Stream.mapAccum(
      () => ({ event: "", data: [] as Array<string> }),
      (state, line): readonly [{ event: string; data: Array<string> }, ReadonlyArray<SseMessage>] => {
        if (line === "") {
          return state.data.length === 0 && state.event === ""
            ? [state, []]
            : [{ event: "", data: [] }, [{ event: state.event, data: state.data.join("\n") }]]
        }
        if (line.startsWith(":")) return [state, []]
        const colon = line.indexOf(":")
        const field = colon === -1 ? line : line.slice(0, colon)
        const value = colon === -1 ? "" : line.slice(colon + 1).replace(/^ /, "")
        if (field === "event") return [{ ...state, event: value }, []]
        if (field === "data") return [{ ...state, data: [...state.data, value] }, []]
        return [state, []]
      },
      { onHalt: (state) => state.data.length === 0 ? [] : [{ event: state.event, data: state.data.join("\n") }] }
    )
  )

/**
 * Streams the server-sent events of a model request. Fails with E2080/E2081/E2082 as described
 * above, and with E2080 when the stream breaks or stays silent longer than `idleTimeoutMs`.
 */
export const streamSse = (
  call: StreamCall,
  apiKeyHeaders: Readonly<Record<string, string>>
): Stream.Stream<SseMessage, ModelError> =>
  Stream.unwrap(
    Effect.gen(function*() {
      const { response, controller } = yield* connect(call, apiKeyHeaders)
      yield* Effect.addFinalizer(() => Effect.sync(() => controller.abort()))
      const idleMs = call.settings.idleTimeoutMs ?? 60_000
      const body = response.body as ReadableStream<Uint8Array>
      const bytes = Stream.fromReadableStream({
        evaluate: () => body,
        onError: (error): ModelError =>
          new ModelRequestFailed({
            message: `${call.label} stream broke: ${(error as Error).message}; the turn was cut, retry it`
          })
      }).pipe(
        Stream.timeoutOrElse({
          duration: Duration.millis(idleMs),
          orElse: () =>
            Stream.fail(
              new ModelRequestFailed({
                message: `${call.label} stream was silent for ${idleMs} ms; retry, or raise the agent's model idleTimeoutMs`
              })
            )
        })
      )
      return sseMessages(bytes.pipe(Stream.decodeText(), Stream.splitLines))
    })
  )

/** Parses one event's JSON data or fails with E2083 naming the provider. */
export const parseData = (label: string, message: SseMessage): Effect.Effect<unknown, ModelResponseInvalid> =>
  Effect.try({
    try: () => JSON.parse(message.data) as unknown,
    catch: () =>
      new ModelResponseInvalid({
        message: `${label} sent an event whose data is not JSON (${message.data.slice(0, 120)}); check the base URL points at this provider kind`
      })
  })

/** The `Authorization: Bearer` header of a key, or none. */
export const bearer = (key: Redacted.Redacted<string> | undefined): Readonly<Record<string, string>> =>
  key === undefined ? {} : { authorization: `Bearer ${Redacted.value(key)}` }
