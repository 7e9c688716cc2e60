// Shared helpers for HTTP tests: a real server on 127.0.0.1 port 0 over the in-memory runtime.
import type { ApiKeyConfig } from "../../src/domain/RuntimeConfig.ts"
import { serve, type HttpServerHandle } from "../../src/http/serve.ts"
import { createRuntime, type L02Runtime } from "../../src/runtime/createRuntime.ts"
import { memoryServices } from "../runtime/support.ts"

/** An agent that answers execute input (the memory backend's `l02-agent` program). */
export const answeringAgent = { name: "worker", trustLevel: "TRUSTED", command: ["l02-agent"] }

export interface Reply {
  readonly status: number
  readonly headers: Headers
  readonly text: string
  readonly json: any
}

export interface TestServer {
  readonly runtime: L02Runtime
  readonly services: Awaited<ReturnType<typeof memoryServices>>
  readonly server: HttpServerHandle
  readonly url: string
  readonly request: (
    method: string,
    path: string,
    options?: { readonly body?: unknown; readonly raw?: string; readonly token?: string; readonly headers?: Record<string, string> }
  ) => Promise<Reply>
  readonly close: () => Promise<void>
}

/** Starts a runtime on in-memory services and serves it. */
export const startServer = async (
  options: {
    readonly apiKeys?: ReadonlyArray<ApiKeyConfig>
    readonly env?: Record<string, string>
    readonly config?: Record<string, Record<string, unknown>>
    readonly backend?: Parameters<typeof memoryServices>[0]
  } = {}
): Promise<TestServer> => {
  const services = await memoryServices(options.backend)
  const runtime = await createRuntime({
    layer: services.layer,
    env: {},
    config: { store: { pglite: "memory" }, runtime: { runtime_id: "rt-http" }, lifecycle: { graceful_shutdown_seconds: 1 }, ...options.config }
  })
  const server = await serve({ runtime, port: 0, host: "127.0.0.1", apiKeys: options.apiKeys ?? [], env: options.env ?? {}, keepAliveMs: 50 })
  const request: TestServer["request"] = async (method, path, o = {}) => {
    const headers: Record<string, string> = { ...o.headers }
    if (o.token !== undefined) headers.authorization = `Bearer ${o.token}`
    let body: string | undefined = o.raw
    if (o.body !== undefined) {
      body = JSON.stringify(o.body)
      headers["content-type"] ??= "application/json"
    }
    const response = await fetch(`${server.url}${path}`, { method, headers, ...(body === undefined ? {} : { body }) })
    const text = await response.text()
    let json: unknown
    try {
      json = JSON.parse(text)
    } catch {
      json = undefined
    }
    return { status: response.status, headers: response.headers, text, json }
  }
  return {
    runtime,
    services,
    server,
    url: server.url,
    request,
    close: async () => {
      await server.close()
      await runtime.shutdown()
      await services.close()
    }
  }
}

/** One parsed Server-Sent Event. */
export interface SseEvent {
  readonly event: string | undefined
  readonly id: string | undefined
  readonly data: any
}

/** Reads Server-Sent Events from a fetch response until `until` says stop or the stream ends. */
export const readSse = async (response: Response, until: (events: ReadonlyArray<SseEvent>) => boolean = () => false): Promise<Array<SseEvent>> => {
  const events: Array<SseEvent> = []
  const reader = response.body!.getReader()
  const decoder = new TextDecoder()
  let buffer = ""
  try {
    for (;;) {
      const { done, value } = await reader.read()
      if (done) break
      buffer += decoder.decode(value, { stream: true })
      let end: number
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const frame = buffer.slice(0, end)
        buffer = buffer.slice(end + 2)
        const fields: Record<string, string> = {}
        for (const line of frame.split("\n")) {
          if (line.startsWith(":")) continue
          const colon = line.indexOf(": ")
          fields[line.slice(0, colon)] = line.slice(colon + 2)
        }
        if (fields.data !== undefined) events.push({ event: fields.event, id: fields.id, data: JSON.parse(fields.data) })
        if (until(events)) return events
      }
    }
  } finally {
    await reader.cancel().catch(() => undefined)
  }
  return events
}
