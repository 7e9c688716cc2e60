/**
 * `l02 serve`: the HTTP API over a runtime, on node:http.
 *
 * Every request is matched against the routes of the `HttpApi` declaration, authenticated (API keys,
 * scopes), and decoded completely with the declared Schemas before the runtime is asked anything, so
 * a bad request changes nothing. Every failure answers with a status and `{ "error": { code, tag,
 * message } }`. Execute and lifecycle events stream as Server-Sent Events.
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http"
import type { AddressInfo, Socket } from "node:net"
import * as Schema from "effect/Schema"
import type { LifecycleEvent } from "../domain/LifecycleEvent.ts"
import type { AgentState } from "../domain/AgentState.ts"
import { ConfigInvalid, fromErrorData, InputInvalid, Unauthenticated } from "../domain/Errors.ts"
import type { ErrorData } from "../domain/ErrorCatalog.ts"
import type { ApiKeyConfig } from "../domain/RuntimeConfig.ts"
import type { L02Runtime } from "../runtime/createRuntime.ts"
import type { SpawnPolicy } from "../runtime/SpawnPolicy.ts"
import { authenticate, authorize, resolveApiKeys } from "./ApiKeys.ts"
import { answerOf, answerOfUnknown } from "./ErrorResponse.ts"
import {
  AgentPath,
  endpointScopes,
  EventsQuery,
  ExecuteRequest,
  ListQuery,
  OperationsQuery,
  PoolPath,
  ResizeRequest,
  ResumeRequest,
  ScaleRequest,
  SuspendRequest,
  TerminateQuery,
  TerminateRequest
} from "./HttpApi.ts"
import { dashboardRoute } from "./dashboard/DashboardRoutes.ts"
import { decode } from "./internal/decode.ts"
import { type Answer, type Handler, json, lastEventIdOf, orThrow, securityHeaders, sendError, sendJson, startSse, writeEvent } from "./internal/answers.ts"
import { pathProblem } from "./internal/canonicalPath.ts"
import { match, type Route } from "./internal/routes.ts"
import { makeMetrics } from "./Metrics.ts"
import { workflowHandlers } from "./workflowHandlers.ts"
import { runHandlers, streamRun } from "./runHandlers.ts"
import { docsHtml, openApiJson } from "./OpenApiDocument.ts"

/** Options of {@link serve}; host, port, keys and body limit default to the runtime's `http` configuration. */
export interface ServeOptions {
  readonly runtime: L02Runtime
  /** TCP port; 0 picks a free one (see the handle's `url`). */
  readonly port?: number | undefined
  /** Interface to listen on; default 127.0.0.1. A non-loopback host needs API keys. */
  readonly host?: string | undefined
  /** API keys (by environment variable name or SHA-256); none means no authentication, on loopback only. */
  readonly apiKeys?: ReadonlyArray<ApiKeyConfig> | undefined
  /** Where `key_env` variables are read; default `process.env`. */
  readonly env?: Readonly<Record<string, string | undefined>> | undefined
  /** Largest accepted request body in bytes; default http.max_body_bytes. */
  readonly maxBodyBytes?: number | undefined
  /** Interval of SSE keep-alive comments in milliseconds; default 15000. */
  readonly keepAliveMs?: number | undefined
}

/** A running HTTP server. */
export interface HttpServerHandle {
  /** Base URL, e.g. `http://127.0.0.1:8080`. */
  readonly url: string
  readonly port: number
  /** Stops accepting, ends open streams and connections; the process is then free to exit. */
  readonly close: () => Promise<void>
}

const SpawnEnvelope = Schema.Struct({
  // The AgentConfig itself is validated by the runtime, which answers with the precise code
  // (E2001, E2040 for a trust level, E2042 for resources).
  config: Schema.Record(Schema.String, Schema.Unknown),
  initialContext: Schema.optional(Schema.Unknown)
})

const agentStates: ReadonlyArray<AgentState> = ["pending", "spawning", "running", "suspending", "suspended", "resuming", "terminating", "terminated", "failed"]

const readBody = (req: IncomingMessage, limit: number): Promise<Buffer> =>
  new Promise((resolve, reject) => {
    const declared = Number(req.headers["content-length"] ?? "0")
    if (Number.isFinite(declared) && declared > limit) {
      reject(new InputInvalid({ message: `the request body is larger than ${limit} bytes (http.max_body_bytes)`, key: "body" }))
      req.resume()
      return
    }
    const chunks: Array<Buffer> = []
    let size = 0
    req.on("data", (chunk: Buffer) => {
      size += chunk.length
      if (size > limit) {
        reject(new InputInvalid({ message: `the request body is larger than ${limit} bytes (http.max_body_bytes)`, key: "body" }))
        req.removeAllListeners("data")
        req.resume()
        return
      }
      chunks.push(chunk)
    })
    req.on("end", () => resolve(Buffer.concat(chunks)))
    req.on("error", reject)
  })

const parseQuery = (search: URLSearchParams): Record<string, string> | InputInvalid => {
  const out: Record<string, string> = {}
  for (const [key, value] of search) {
    if (Object.hasOwn(out, key)) return new InputInvalid({ message: `query parameter ${key.slice(0, 100)} is given more than once; give it once (lists are comma-separated)`, key: `query.${key.slice(0, 100)}` })
    out[key] = value
  }
  return out
}

const parseLabels = (raw: string): Record<string, string> | InputInvalid => {
  const out: Record<string, string> = {}
  for (const pair of raw.split(",")) {
    const eq = pair.indexOf("=")
    if (eq <= 0) return new InputInvalid({ message: `label selectors are key=value pairs separated by commas, got ${JSON.stringify(pair.slice(0, 100))}`, key: "query.label" })
    out[pair.slice(0, eq)] = pair.slice(eq + 1)
  }
  return out
}

/**
 * Starts the HTTP API for `runtime`. Fails with E2000 when an API key's variable is unset, or when a
 * non-loopback host has no keys.
 *
 * @example
 * ```ts
 * const runtime = await createRuntime()
 * const server = await serve({ runtime, port: 8080, apiKeys: [{ key_env: "L02_API_KEY", scopes: ["admin"] }] })
 * console.log(`listening on ${server.url}`)
 * // ... later
 * await server.close()
 * await runtime.shutdown()
 * ```
 */
export const serve = async (options: ServeOptions): Promise<HttpServerHandle> => {
  const { runtime } = options
  const http = runtime.config.http
  const host = options.host ?? http.host
  const port = options.port ?? http.port
  const maxBodyBytes = options.maxBodyBytes ?? http.max_body_bytes
  const keepAliveMs = options.keepAliveMs ?? 15_000
  const keys = resolveApiKeys(options.apiKeys ?? http.api_keys, options.env ?? process.env, host)
  const metrics = makeMetrics()

  // One subscription to the runtime's events feeds the metrics and every SSE client.
  const listeners = new Set<(event: LifecycleEvent) => void>()
  const feed = runtime.events()[Symbol.asyncIterator]()
  const pump = (async () => {
    try {
      for (;;) {
        const next = await feed.next()
        if (next.done) return
        metrics.observe(next.value)
        for (const listener of listeners) listener(next.value)
      }
    } catch {
      // The runtime shut down; nothing more will come.
    }
  })()
  // Let the subscription start before the first request can cause events.
  await new Promise((r) => setImmediate(r))

  /** Ends open event streams on close. */
  const closers = new Set<() => void>()
  /** Registers an open stream's end with the server; answers the function that unregisters it. */
  const track = (end: () => void) => {
    closers.add(end)
    return () => void closers.delete(end)
  }

  const handlers: Record<Route["name"], Handler> = {
    spawn: async ({ body, policy }) => {
      // A bare agent config (the most common first mistake) is named for what it is.
      if (typeof body === "object" && body !== null && !("config" in body) && "name" in body) {
        throw new InputInvalid({
          message: `the body is an agent config; send it as { "config": <agent config>, "initialContext"?: <any JSON> }`,
          key: "body.config"
        })
      }
      const request = orThrow(decode(SpawnEnvelope, body, "body"))
      const result = await runtime.spawn(request.config, request.initialContext, policy)
      return json(201, result)
    },
    list: async ({ query }) => {
      const q = orThrow(decode(ListQuery, query, "query"))
      const states = q.state === undefined ? undefined : q.state.split(",")
      const bad = states?.find((s) => !agentStates.includes(s as AgentState))
      if (bad !== undefined) {
        throw new InputInvalid({ message: `query.state: ${JSON.stringify(bad.slice(0, 100))} is not an agent state; use ${agentStates.join(", ")}`, key: "query.state" })
      }
      const labels = q.label === undefined ? undefined : orThrow(parseLabels(q.label))
      const agents = await runtime.list({
        ...(states === undefined ? {} : { state: states as Array<AgentState> }),
        ...(q.sessionId === undefined ? {} : { sessionId: q.sessionId }),
        ...(labels === undefined ? {} : { labels })
      })
      return json(200, { agents })
    },
    get: async ({ params }) => {
      const { agentId } = orThrow(decode(AgentPath, params, "path"))
      return json(200, await runtime.getState(agentId))
    },
    suspend: async ({ params, body }) => {
      const { agentId } = orThrow(decode(AgentPath, params, "path"))
      const request = orThrow(decode(SuspendRequest, body === undefined ? {} : body, "body"))
      const checkpointId = await runtime.suspend(agentId, { checkpoint: request.checkpoint === true })
      return json(200, { agentId, state: "suspended", ...(checkpointId === undefined ? {} : { checkpointId }) })
    },
    resume: async ({ params, body }) => {
      const { agentId } = orThrow(decode(AgentPath, params, "path"))
      const request = orThrow(decode(ResumeRequest, body === undefined ? {} : body, "body"))
      const state = await runtime.resume(agentId, request.checkpointId)
      return json(200, { agentId, state })
    },
    terminate: async ({ params, query, body }) => {
      const { agentId } = orThrow(decode(AgentPath, params, "path"))
      const q = orThrow(decode(TerminateQuery, query, "query"))
      const b = body === undefined ? {} : orThrow(decode(TerminateRequest, body, "body"))
      if (body !== undefined && Object.keys(query).length > 0) {
        throw new InputInvalid({ message: "give the terminate options as query parameters or as a JSON body, not both", key: "body" })
      }
      const force = b.force ?? (q.force === undefined ? undefined : q.force === "true")
      const reason = b.reason ?? q.reason
      await runtime.terminate(agentId, { ...(force === undefined ? {} : { force }), ...(reason === undefined ? {} : { reason }) })
      return json(200, { agentId, state: "terminated" })
    },
    execute: async ({ params, body, res }) => {
      const { agentId } = orThrow(decode(AgentPath, params, "path"))
      const request = orThrow(decode(ExecuteRequest, body, "body"))
      // The step is a durable run: refusals (E2020, E2021, ...) answer as JSON before anything runs.
      const run = await runtime.runs.start(agentId, request.input, request.timeoutMs === undefined ? {} : { timeoutMs: request.timeoutMs })
      if (request.detach === true) return json(202, run)
      const events = runtime.runs.attach(run.runId)[Symbol.asyncIterator]()
      // A client that leaves abandons the step only when it asked to; otherwise the run goes on.
      const onClose = () => {
        if (request.cancelOnDisconnect === true) void runtime.runs.cancel(run.runId).catch(() => undefined)
      }
      res.once("close", onClose)
      // The first event decides the status: a step that fails before any output answers as JSON with its status.
      const first = await events.next()
      if (res.destroyed) {
        void events.return?.().catch(() => undefined)
        return { _tag: "Streamed" }
      }
      const failedAtOnce = first.done !== true && first.value.event.type === "end" ? (first.value.event as { error?: ErrorData }).error : undefined
      if (failedAtOnce !== undefined) {
        res.off("close", onClose)
        void events.return?.().catch(() => undefined)
        throw fromErrorData(failedAtOnce, agentId)
      }
      res.setHeader("l02-run-id", run.runId)
      startSse(res)
      try {
        await streamRun(res, events, "execute", first)
      } finally {
        res.off("close", onClose)
      }
      return { _tag: "Streamed" }
    },
    checkpoints: async ({ params }) => {
      const { agentId } = orThrow(decode(AgentPath, params, "path"))
      return json(200, { checkpoints: await runtime.checkpoints(agentId) })
    },
    agentHealth: async ({ params }) => {
      const { agentId } = orThrow(decode(AgentPath, params, "path"))
      return json(200, await runtime.health(agentId))
    },
    pools: async () => json(200, { pools: await runtime.pools() }),
    resizePool: async ({ params, body }) => {
      const { name } = orThrow(decode(PoolPath, params, "path"))
      const request = orThrow(decode(ResizeRequest, body, "body"))
      return json(200, await runtime.resizePool(name, request.size))
    },
    fleet: async () => json(200, await runtime.fleetStatus()),
    scale: async ({ body, policy }) => {
      const request = orThrow(decode(ScaleRequest, body, "body"))
      const operation = await runtime.scale(request.pool, request.replicas, {
        policy,
        ...(request.template === undefined ? {} : { template: request.template }),
        ...(request.reason === undefined ? {} : { reason: request.reason }),
        ...(request.priority === undefined ? {} : { priority: request.priority })
      })
      return json(200, operation)
    },
    operations: async ({ query }) => {
      const q = orThrow(decode(OperationsQuery, query, "query"))
      return json(200, { operations: await runtime.fleetOperations(q.limit === undefined ? undefined : Number(q.limit)) })
    },
    events: async ({ query, res, req }) => {
      const q = orThrow(decode(EventsQuery, query, "query"))
      // A reconnecting EventSource sends the id of the last event it got: it gets what it missed.
      const lastEventId = lastEventIdOf(req)
      const after = q.after ?? (lastEventId === undefined ? undefined : String(lastEventId))
      const recent = q.recent === undefined ? undefined : Math.min(1000, Number(q.recent))
      return new Promise<Answer>((resolve) => {
        startSse(res)
        res.write(": connected\n\n")
        // Live events wait while the log is replayed, then follow it without repeats.
        let replaying = after !== undefined || recent !== undefined
        const waiting: Array<LifecycleEvent> = []
        let lastSent = 0
        const send = (event: LifecycleEvent) => {
          if (event.eventId !== undefined && event.eventId <= lastSent) return
          if (event.eventId !== undefined) lastSent = event.eventId
          if (!writeEvent(res, { ...(event.eventId === undefined ? {} : { id: event.eventId }), data: event })) done()
        }
        const listener = (event: LifecycleEvent) => {
          if (q.agentId !== undefined && event.agentId !== q.agentId) return
          if (replaying) waiting.push(event)
          else send(event)
        }
        if (replaying) {
          const past = after !== undefined
            ? runtime.history({ agentId: q.agentId, afterId: Number(after), limit: 10_000 })
            : runtime.history({ agentId: q.agentId, limit: recent, latest: true })
          void past
            .then((events) => events.forEach(send), () => res.write(": the event log could not be read; live events follow\n\n"))
            .finally(() => {
              replaying = false
              for (const event of waiting.splice(0)) send(event)
            })
        }
        const timer = setInterval(() => res.write(": keep-alive\n\n"), keepAliveMs)
        timer.unref()
        const done = () => {
          clearInterval(timer)
          listeners.delete(listener)
          closers.delete(done)
          if (!res.writableEnded) res.end()
          resolve({ _tag: "Streamed" })
        }
        listeners.add(listener)
        closers.add(done)
        res.once("close", done)
      })
    },
    metrics: async () => {
      // Live usage comes with an agent's own answer (sampled from its sandbox): asked of the running ones, boundedly.
      const running = (await runtime.list({ state: "running" })).slice(0, 500)
      const agents = await Promise.all(running.map((a) => runtime.getState(a.agentId).catch(() => a)))
      return { _tag: "Text", status: 200, contentType: "text/plain; version=0.0.4; charset=utf-8", body: metrics.render(await runtime.fleetStatus(), agents) }
    },
    health: async () => json(200, { status: "ok", runtimeId: runtime.runtimeId }),
    ...workflowHandlers(runtime, track),
    ...runHandlers(runtime, track)
  }


  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    let endpoint = "unmatched"
    res.on("finish", () => metrics.countRequest(endpoint, res.statusCode))
    try {
      // Refused as sent, before the URL parser would resolve dot segments and act on another path.
      const problem = pathProblem(req.url ?? "/")
      if (problem !== undefined) throw new InputInvalidAt(400, `${problem}; nothing was done`, "path")
      // Node keeps the first of two Authorization headers: which key counts must not be a guess.
      if (req.rawHeaders.filter((_, i) => i % 2 === 0 && req.rawHeaders[i]!.toLowerCase() === "authorization").length > 1) {
        throw new InputInvalidAt(400, "the request carries more than one Authorization header; send one", "authorization")
      }
      const url = new URL(req.url ?? "/", "http://localhost")
      const method = req.method ?? "GET"
      if (method === "GET" && url.pathname === "/openapi.json") {
        endpoint = "openapi"
        const text = openApiJson()
        res.writeHead(200, { ...securityHeaders, "content-type": "application/json; charset=utf-8", "content-length": Buffer.byteLength(text) })
        res.end(text)
        return
      }
      if (method === "GET" && url.pathname === "/docs") {
        endpoint = "docs"
        const html = docsHtml()
        res.writeHead(200, {
          ...securityHeaders,
          "content-type": "text/html; charset=utf-8",
          "content-security-policy": "default-src 'none'; style-src 'unsafe-inline'",
          "content-length": Buffer.byteLength(html)
        })
        res.end(html)
        return
      }
      const extraRoute = dashboardRoute(method, url.pathname)
      if (extraRoute !== undefined) {
        endpoint = extraRoute.endpoint
        if (extraRoute.scope !== "public") {
          const principal = authenticate(keys, req.headers.authorization)
          if (principal instanceof Unauthenticated) {
            sendError(res, answerOf(principal, { "www-authenticate": 'Bearer realm="l02"' }))
            return
          }
          const forbidden = authorize(principal, extraRoute.scope, `GET ${url.pathname.slice(0, 200)}`)
          if (forbidden !== undefined) {
            sendError(res, answerOf(forbidden))
            return
          }
        }
        if (extraRoute._tag === "NotFound") throw new InputInvalidAt(404, extraRoute.message, "path")
        req.resume()
        res.writeHead(200, { ...securityHeaders, ...extraRoute.headers, "content-type": extraRoute.contentType, "content-length": Buffer.byteLength(extraRoute.body) })
        res.end(extraRoute.body)
        return
      }
      let segments: Array<string>
      try {
        segments = url.pathname.split("/").slice(1).map(decodeURIComponent)
      } catch {
        throw new InputInvalid({ message: "the request path has an invalid percent-encoding", key: "path" })
      }
      const found = match(method, segments)
      if (found._tag === "NotFound") {
        throw new InputInvalidAt(404, `no route ${method} ${url.pathname.slice(0, 200)}; the routes are listed at /openapi.json and /docs`, "path")
      }
      if (found._tag === "WrongMethod") {
        const allow = found.allow.join(", ")
        sendError(res, { ...answerOf(new InputInvalid({ message: `${url.pathname.slice(0, 200)} does not accept ${method.slice(0, 20)}; it accepts ${allow}`, key: "method" })), status: 405, headers: { allow } })
        return
      }
      const route = found.route
      endpoint = route.name
      const scope = endpointScopes[route.name]
      // Without keys (loopback only) a request may spawn any trust level; its config is remote all the same.
      let policy: SpawnPolicy = { origin: "remote" }
      if (scope !== "public") {
        // EventSource cannot send headers: the event stream alone also takes the key as ?access_token=,
        // and a key presented that way only ever has the read scope.
        const accessToken = route.name === "events" && req.headers.authorization === undefined ? url.searchParams.get("access_token") : null
        const authenticated = authenticate(keys, accessToken === null ? req.headers.authorization : `Bearer ${accessToken}`)
        if (authenticated instanceof Unauthenticated) {
          sendError(res, answerOf(authenticated, { "www-authenticate": 'Bearer realm="l02"' }))
          return
        }
        const principal: typeof authenticated = accessToken === null
          ? authenticated
          : { scopes: new Set([...authenticated.scopes].filter((s) => s === "read")), trustLevels: authenticated.trustLevels }
        const forbidden = authorize(principal, scope, `${route.method} ${route.path}`)
        if (forbidden !== undefined) {
          sendError(res, answerOf(forbidden))
          return
        }
        policy = { origin: "remote", trustLevels: principal.trustLevels }
      }
      if (route.name === "events") url.searchParams.delete("access_token")
      const query = orThrow(parseQuery(url.searchParams))
      const extra = Object.keys(query)[0]
      if (!route.hasQuery && extra !== undefined) {
        throw new InputInvalid({ message: `${route.method} ${route.path} takes no query parameters, got ${JSON.stringify(extra.slice(0, 100))}`, key: `query.${extra.slice(0, 100)}` })
      }
      let body: unknown
      if (method !== "GET") {
        const raw = await readBody(req, maxBodyBytes)
        if (raw.length > 0) {
          const type = String(req.headers["content-type"] ?? "")
          if (!/^application\/(.+\+)?json\s*(;.*)?$/i.test(type)) {
            throw new InputInvalidAt(415, `the request body must be JSON with Content-Type: application/json, got ${JSON.stringify(type.slice(0, 100))}`, "content-type")
          }
          try {
            body = JSON.parse(raw.toString("utf8"))
          } catch (error) {
            throw new InputInvalid({ message: `the request body is not valid JSON: ${(error as Error).message.slice(0, 200)}`, key: "body" })
          }
        }
      } else {
        req.resume()
      }
      const answer = await handlers[route.name]({ params: found.params, query, body, res, req, policy })
      if (answer._tag === "Json") sendJson(res, answer.status, answer.body)
      else if (answer._tag === "Text") {
        res.writeHead(answer.status, { ...securityHeaders, "content-type": answer.contentType, "content-length": Buffer.byteLength(answer.body) })
        res.end(answer.body)
      }
    } catch (error) {
      if (error instanceof InputInvalidAt) sendError(res, { ...answerOf(error.error), status: error.status })
      else if (res.headersSent) res.end()
      else {
        const answer = answerOfUnknown(error)
        sendError(res, error instanceof InputInvalid && error.key === "body" && /larger than/.test(error.message) ? { ...answer, status: 413 } : answer)
      }
    }
  }

  const server = createServer({ requestTimeout: 60_000, headersTimeout: 30_000 }, (req, res) => void handle(req, res))
  // CONNECT (a proxy tunnel) is no method of this API: a coded 405, not a dropped connection.
  server.on("connect", (req: IncomingMessage, socket: Socket) => {
    const body = JSON.stringify({ error: { code: "E2001", tag: "InputInvalid", message: `${String(req.method).slice(0, 20)} is not a method of this API; see /openapi.json` } })
    socket.end(`HTTP/1.1 405 Method Not Allowed\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`)
  })
  server.on("clientError", (error: Error & { code?: string }, socket: Socket) => {
    if (!socket.writable) return socket.destroy()
    const status = error.code === "HPE_HEADER_OVERFLOW" ? 431 : 400
    const body = JSON.stringify({ error: { code: "E2001", tag: "InputInvalid", message: status === 431 ? "the request headers or URL are too large" : "the request is not valid HTTP/1.1" } })
    socket.end(`HTTP/1.1 ${status} ${status === 431 ? "Request Header Fields Too Large" : "Bad Request"}\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`)
  })
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject)
    server.listen(port, host, () => {
      server.off("error", reject)
      resolve()
    })
  }).catch(async (error: NodeJS.ErrnoException) => {
    void feed.return?.()
    await pump
    throw listenError(error, host, port)
  })
  const address = server.address() as AddressInfo
  const urlHost = address.family === "IPv6" ? `[${address.address}]` : address.address
  let closed: Promise<void> | undefined
  return {
    url: `http://${urlHost}:${address.port}`,
    port: address.port,
    close: () =>
      (closed ??= (async () => {
        for (const done of [...closers]) done()
        const stopped = new Promise<void>((resolve) => server.close(() => resolve()))
        server.closeAllConnections()
        await stopped
        await feed.return?.().catch(() => undefined)
        await pump
      })())
  }
}

/** An InputInvalid answered with a status other than 400 (404 unknown route, 415 media type). */
class InputInvalidAt {
  readonly error: InputInvalid
  readonly status: number
  constructor(status: number, message: string, key: string) {
    this.status = status
    this.error = new InputInvalid({ message, key })
  }
}

const listenError = (error: NodeJS.ErrnoException, host: string, port: number): ConfigInvalid => {
  if (error.code === "EADDRINUSE") return new ConfigInvalid({ message: `port ${port} on ${host} is in use; pick another http.port (0 picks a free one)`, key: "http.port" })
  if (error.code === "EACCES") return new ConfigInvalid({ message: `no permission to listen on ${host}:${port}; use a port above 1023`, key: "http.port" })
  if (error.code === "EADDRNOTAVAIL" || error.code === "ENOTFOUND") return new ConfigInvalid({ message: `cannot listen on host ${host}: no such local address; check http.host`, key: "http.host" })
  return new ConfigInvalid({ message: `cannot listen on ${host}:${port}: ${error.message}`, key: "http.port" })
}
