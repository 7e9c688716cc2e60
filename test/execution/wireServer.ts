// A local HTTP server that replays recorded provider answers: each request takes the next planned
// answer (status, headers, body written in small uneven slices, optionally cut or left hanging)
// and is recorded with its headers and JSON body.
import { readFileSync } from "node:fs"
import { createServer, type IncomingHttpHeaders, type ServerResponse } from "node:http"
import type { AddressInfo } from "node:net"
import { Effect } from "effect"

export interface PlannedAnswer {
  readonly status?: number
  readonly headers?: Record<string, string>
  /** The body, or `{ fixture }` to read test/execution/fixtures/<name>. */
  readonly body?: string | { readonly fixture: string }
  /** Stop writing after this many bytes and destroy the socket. */
  readonly cutAfter?: number
  /** Write this much, then never write again nor end. */
  readonly hangAfter?: number
}

export interface RecordedRequest {
  readonly path: string
  readonly headers: IncomingHttpHeaders
  readonly body: Record<string, unknown>
}

export interface WireServer {
  readonly baseUrl: string
  readonly requests: Array<RecordedRequest>
  /** Resolves when a response's connection closed before it ended (the client went away). */
  readonly abandoned: () => number
}

export const fixture = (name: string) => readFileSync(new URL(`./fixtures/${name}`, import.meta.url), "utf8")

const write = (res: ServerResponse, answer: PlannedAnswer) => {
  const text = answer.body === undefined ? "" : typeof answer.body === "string" ? answer.body : fixture(answer.body.fixture)
  const bytes = Buffer.from(text, "utf8")
  const limit = answer.cutAfter ?? answer.hangAfter ?? bytes.length
  // Uneven slices, some splitting UTF-8 sequences and lines, as TCP may deliver them.
  let offset = 0
  let n = 0
  const next = () => {
    if (res.destroyed) return
    if (offset >= limit) {
      if (answer.cutAfter !== undefined) res.socket?.destroy()
      else if (answer.hangAfter === undefined) res.end()
      return
    }
    const size = [7, 31, 3, 64, 17][n++ % 5] as number
    const slice = bytes.subarray(offset, Math.min(limit, offset + size))
    offset += slice.length
    res.write(slice, () => setImmediate(next))
  }
  next()
}

/** Starts the server for the scope; answers beyond the plan get 500. */
export const wireServer = (plan: ReadonlyArray<PlannedAnswer>) =>
  Effect.acquireRelease(
    Effect.promise(() =>
      new Promise<WireServer & { close: () => Promise<void> }>((resolve) => {
        const requests: Array<RecordedRequest> = []
        let abandoned = 0
        const server = createServer((req, res) => {
          const chunks: Array<Buffer> = []
          req.on("data", (c: Buffer) => chunks.push(c))
          req.on("end", () => {
            const raw = Buffer.concat(chunks).toString("utf8")
            requests.push({ path: req.url ?? "", headers: req.headers, body: raw === "" ? {} : JSON.parse(raw) as Record<string, unknown> })
            const answer = plan[requests.length - 1] ?? { status: 500, body: "{\"error\":{\"message\":\"no more planned answers\"}}" }
            res.on("close", () => {
              if (!res.writableFinished) abandoned += 1
            })
            res.writeHead(answer.status ?? 200, {
              "content-type": (answer.status ?? 200) === 200 ? "text/event-stream" : "application/json",
              ...answer.headers
            })
            write(res, answer)
          })
        })
        server.listen(0, "127.0.0.1", () => {
          const { port } = server.address() as AddressInfo
          resolve({
            baseUrl: `http://127.0.0.1:${port}/v1`,
            requests,
            abandoned: () => abandoned,
            close: () =>
              new Promise<void>((done) => {
                server.closeAllConnections()
                server.close(() => done())
              })
          })
        })
      })
    ),
    (server) => Effect.promise(() => server.close())
  )
