// Requests as a client may put them on the wire, byte for byte (a raw socket, no URL normalisation):
// dot segments, encoded slashes and other non-canonical paths act on nothing; two Authorization
// headers, CONNECT and unknown methods get a coded answer, never a reset connection.
import { connect } from "node:net"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { answeringAgent, startServer, type TestServer } from "./support.ts"

let t: TestServer
beforeAll(async () => {
  t = await startServer({ apiKeys: [{ key_env: "OPERATE", scopes: ["operate", "read", "admin"] }], env: { OPERATE: "operate-key-0123456789" } })
})
afterAll(async () => {
  await t.close()
})

/** Sends the request line and headers (CRLF-joined) and `body` as they are, and reads the whole answer. */
const raw = (lines: ReadonlyArray<string>, body = ""): Promise<{ status: number; body: any; text: string }> =>
  new Promise((resolve, reject) => {
    const { port } = new URL(t.url)
    const socket = connect(Number(port), "127.0.0.1", () => socket.write(`${[...lines, ...(body === "" ? [] : ["Content-Type: application/json", `Content-Length: ${Buffer.byteLength(body)}`]), "Connection: close", "", ""].join("\r\n")}${body}`))
    let text = ""
    socket.on("data", (d: Buffer) => (text += d.toString("utf8")))
    socket.on("error", reject)
    socket.on("close", () => {
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0)
      const bodyText = text.slice(text.indexOf("\r\n\r\n") + 4)
      let body: unknown
      try {
        body = JSON.parse(bodyText)
      } catch {
        body = undefined
      }
      resolve({ status, body, text })
    })
  })

const auth = "Authorization: Bearer operate-key-0123456789"

describe("HTTP requests as sent on the wire", () => {
  it("a path with dot segments, an encoded slash, a backslash or an empty segment is a coded 400 and acts on nothing", async () => {
    const x = (await t.runtime.spawn(answeringAgent)).agentId
    const y = (await t.runtime.spawn(answeringAgent)).agentId
    const targets = [
      ["DELETE", `/v1/agents/${x}/../${y}`],
      ["DELETE", `/v1/agents/${x}/%2e%2e/${y}`],
      ["DELETE", `/v1/agents/${x}%2F..%2F${y}`],
      ["DELETE", `/v1/agents/./${y}`],
      ["GET", `/v1/agents/${x}/../${y}/checkpoints`],
      ["GET", `/v1/agents/${x}/../${y}/health`],
      ["POST", `/v1/agents/${x}/../${y}/suspend`],
      ["GET", `/v1/agents\\${y}`],
      ["GET", `/v1//agents/${y}`],
      ["GET", `http://127.0.0.1/v1/agents/${y}`]
    ] as const
    for (const [method, path] of targets) {
      const answer = await raw([`${method} ${path} HTTP/1.1`, "Host: 127.0.0.1", auth], method === "POST" ? "{}" : "")
      expect(answer.status, `${method} ${path}`).toBe(400)
      expect(answer.body?.error, `${method} ${path}`).toMatchObject({ code: "E2001", tag: "InputInvalid" })
    }
    for (const id of [x, y]) expect((await t.runtime.getState(id)).state).toBe("running")
    // The canonical path still works.
    expect((await raw([`GET /v1/agents/${y} HTTP/1.1`, "Host: 127.0.0.1", auth])).status).toBe(200)
  })

  it("two Authorization headers are refused with a coded 400, whichever comes first", async () => {
    for (const pair of [[auth, "Authorization: Bearer nobody-0123456789"], ["Authorization: Bearer nobody-0123456789", auth]]) {
      const answer = await raw(["GET /v1/agents HTTP/1.1", "Host: 127.0.0.1", ...pair])
      expect(answer.status).toBe(400)
      expect(answer.body?.error).toMatchObject({ code: "E2001" })
      expect(answer.body.error.message).toContain("more than one Authorization header")
    }
  })

  it("CONNECT and methods HTTP does not know get a coded answer, not a dropped connection", async () => {
    const tunnel = await raw(["CONNECT 169.254.169.254:80 HTTP/1.1", "Host: 169.254.169.254:80", auth])
    expect(tunnel.status).toBe(405)
    expect(tunnel.body?.error).toMatchObject({ code: "E2001" })
    const unknown = await raw(["BREW /v1/agents HTTP/1.1", "Host: 127.0.0.1", auth])
    expect(unknown.status).toBe(400)
    expect(unknown.body?.error).toMatchObject({ code: "E2001" })
    const known = await raw(["PROPFIND /v1/agents HTTP/1.1", "Host: 127.0.0.1", auth])
    expect(known.status).toBe(405)
    expect(known.body?.error).toMatchObject({ code: "E2001" })
  })

  it("an uppercase agent id in a path is the same agent, answered in lowercase", async () => {
    const id = (await t.runtime.spawn(answeringAgent)).agentId
    const answer = await raw([`GET /v1/agents/${id.toUpperCase()} HTTP/1.1`, "Host: 127.0.0.1", auth])
    expect(answer.status).toBe(200)
    expect(answer.body.agentId).toBe(id)
  })
})
