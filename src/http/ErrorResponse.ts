/**
 * How coded errors become HTTP answers: the status of every code and the `{ "error": ... }` body.
 *
 * The status says who must act: 4xx the caller (fix the request, pick another state), 502 the sandbox
 * backend failed while doing what was asked, 503 the runtime cannot serve now.
 */
import { type ErrorCode, errorCatalog } from "../domain/ErrorCatalog.ts"
import { isRuntimeError, type RuntimeError } from "../domain/Errors.ts"
import type { ErrorBody } from "./HttpApi.ts"

/** The HTTP status of every error code. */
export const statusOfCode: Readonly<Record<ErrorCode, number>> = {
  E2000: 400,
  E2001: 400,
  E2002: 401,
  E2003: 403,
  E2004: 403,
  E2005: 400,
  E2006: 400,
  E2020: 409,
  E2021: 404,
  E2022: 502,
  E2023: 502,
  // The agent stays suspended; the caller must pick another checkpoint or terminate.
  E2024: 409,
  // The fleet gave up restarting; the caller must decide.
  E2025: 409,
  E2026: 502,
  E2027: 502,
  E2028: 503,
  E2029: 502,
  // The spawn queue is full: the server is overloaded, the same request may succeed later.
  E2030: 503,
  // A signal to a node that is not waiting, a cancel of a finished workflow.
  E2031: 409,
  E2032: 404,
  E2033: 502,
  E2034: 503,
  E2035: 404,
  // A run whose supervisor went away before it ended, or that a client cancelled: in a stream's error event.
  E2036: 502,
  E2037: 409,
  E2040: 400,
  E2041: 400,
  E2042: 400,
  E2043: 400,
  E2044: 400,
  E2045: 502,
  E2046: 502,
  E2047: 503,
  E2048: 502,
  E2049: 502,
  E2050: 502,
  E2060: 503,
  E2061: 404,
  E2062: 409,
  // The model provider failed or refused while doing what was asked: an upstream failure.
  E2080: 502,
  E2081: 502,
  E2082: 503,
  E2083: 502,
  // The agent's own hourly token budget: the same request may succeed later.
  E2084: 429,
  E2085: 400,
  E2086: 502,
  E2087: 400,
  E2088: 400,
  E2089: 409
}

/** An error ready to be sent: its status and body. */
export interface ErrorAnswer {
  readonly status: number
  readonly body: ErrorBody
  /** Extra response headers (e.g. `Allow` on 405, `WWW-Authenticate` on 401). */
  readonly headers?: Readonly<Record<string, string>> | undefined
}

/** The answer for a coded runtime error. */
export const answerOf = (error: RuntimeError, headers?: Readonly<Record<string, string>>): ErrorAnswer => {
  const info = errorCatalog.get(error.code)
  return {
    status: statusOfCode[error.code],
    body: {
      error: {
        code: error.code,
        tag: info?.tag ?? error._tag,
        message: error.message,
        ...(error.key === undefined ? {} : { key: error.key }),
        ...(error.agentId === undefined ? {} : { agentId: error.agentId })
      }
    },
    ...(headers === undefined ? {} : { headers })
  }
}

/**
 * The answer for anything thrown by a handler: coded errors map by code; anything else is a bug in
 * the server or runtime and answers 500 without details (they may hold secrets).
 */
export const answerOfUnknown = (error: unknown): ErrorAnswer =>
  isRuntimeError(error)
    ? answerOf(error)
    : { status: 500, body: { error: { code: "internal", tag: "Defect", message: "internal error in the HTTP server; this is a bug, please report it" } } }
