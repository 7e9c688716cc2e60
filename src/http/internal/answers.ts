// What a route handler gets and answers, and the JSON and Server-Sent Events writers they share.
import type { IncomingMessage, ServerResponse } from "node:http"
import { InputInvalid } from "../../domain/Errors.ts"
import type { SpawnPolicy } from "../../runtime/SpawnPolicy.ts"
import type { ErrorAnswer } from "../ErrorResponse.ts"

export type Handler = (request: Parsed) => Promise<Answer>

export interface Parsed {
  readonly params: Readonly<Record<string, string>>
  readonly query: Readonly<Record<string, string>>
  /** The JSON body; `undefined` when there was none. */
  readonly body: unknown
  readonly res: ServerResponse
  readonly req: IncomingMessage
  /** Who asks: a config in the request is spawned as `remote`, within the key's trust levels. */
  readonly policy: SpawnPolicy
}

export type Answer =
  | { readonly _tag: "Json"; readonly status: number; readonly body: unknown }
  | { readonly _tag: "Text"; readonly status: number; readonly contentType: string; readonly body: string }
  /** The handler wrote the response itself (a stream). */
  | { readonly _tag: "Streamed" }

export const json = (status: number, body: unknown): Answer => ({ _tag: "Json", status, body })

export const orThrow = <A>(value: A | InputInvalid): A => {
  if (value instanceof InputInvalid) throw value
  return value
}

export const securityHeaders = { "x-content-type-options": "nosniff", "cache-control": "no-store" }

export const sendJson = (res: ServerResponse, status: number, body: unknown, headers: Readonly<Record<string, string>> = {}) => {
  if (res.headersSent || res.destroyed) return
  const text = JSON.stringify(body)
  res.writeHead(status, { ...securityHeaders, ...headers, "content-type": "application/json; charset=utf-8", "content-length": Buffer.byteLength(text) })
  res.end(text)
}

export const sendError = (res: ServerResponse, answer: ErrorAnswer) => sendJson(res, answer.status, answer.body, answer.headers)

/** Writes one SSE event; false when the client is gone or too far behind (it is then disconnected). */
export const writeEvent = (res: ServerResponse, fields: { readonly event?: string; readonly id?: string | number; readonly data: unknown }): boolean => {
  if (res.destroyed || res.writableEnded) return false
  let frame = ""
  if (fields.id !== undefined) frame += `id: ${fields.id}\n`
  if (fields.event !== undefined) frame += `event: ${fields.event}\n`
  frame += `data: ${JSON.stringify(fields.data)}\n\n`
  res.write(frame)
  if (res.writableLength > 4 * 1024 * 1024) {
    res.destroy()
    return false
  }
  return true
}

/** The id a reconnecting EventSource last got (its `Last-Event-ID` header), when it is a plain number. */
export const lastEventIdOf = (req: IncomingMessage): number | undefined => {
  const header = req.headers["last-event-id"]
  return typeof header === "string" && /^\d{1,15}$/.test(header.trim()) ? Number(header.trim()) : undefined
}

export const startSse = (res: ServerResponse) => {
  res.writeHead(200, { ...securityHeaders, "content-type": "text/event-stream; charset=utf-8", connection: "keep-alive", "x-accel-buffering": "no" })
  res.flushHeaders()
}

