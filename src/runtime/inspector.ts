/**
 * The Stately inspector for a running runtime, and the machine definitions as JSON for Stately tools.
 *
 * `createLocalInspector` starts a small local bridge (HTTP page plus WebSocket relay on 127.0.0.1)
 * and connects an `@statelyai/inspect` WebSocket inspector to it; every client of the relay (the
 * bridge page, which embeds the Stately inspector UI, or any `createWebSocketReceiver`) receives the
 * inspection events of every agent actor and of the fleet. Nothing leaves the machine unless the
 * bridge page is opened in a browser that can reach the inspector UI.
 */
import { createServer, type Server } from "node:http"
import type { AddressInfo } from "node:net"
import { createWebSocketInspector } from "@statelyai/inspect"
import { WebSocket, WebSocketServer } from "ws"
import type { AnyStateMachine, InspectionEvent } from "xstate"
import { agentMachine } from "../../machines/agentMachine.ts"
import { workflowMachine } from "../../machines/workflowMachine.ts"
import { fleetMachine } from "../../machines/fleetMachine.ts"
import { ConfigInvalid } from "../domain/Errors.ts"

/** Options of {@link createLocalInspector}. */
export interface LocalInspectorOptions {
  /** TCP port of the bridge page and WebSocket relay; 0 (default) picks a free one. */
  readonly port?: number | undefined
  /** Interface to listen on; default 127.0.0.1 (inspection events carry agent contexts). */
  readonly host?: string | undefined
  /** The Stately inspector UI the bridge page embeds; default https://stately.ai/inspect. */
  readonly inspectorUiUrl?: string | undefined
  /** Inspection events kept for clients that connect later; default 500. */
  readonly replay?: number | undefined
}

/** A running local inspector, as returned by {@link createLocalInspector}. */
export interface LocalInspector {
  /** The observer to give `createRuntime({ inspect })`. */
  readonly inspect: (event: InspectionEvent) => void
  /** The bridge page to open in a browser, e.g. `http://127.0.0.1:43123`. */
  readonly url: string
  /** The WebSocket relay, for `createWebSocketReceiver({ server })`. */
  readonly wsUrl: string
  /** Disconnects the inspector, closes the relay and its clients; the process is then free to exit. */
  readonly stop: () => Promise<void>
}

const bridgeHtml = (wsUrl: string, inspectorUiUrl: string): string => `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>L02 Stately inspector</title>
<style>html,body{margin:0;height:100%}iframe{border:0;width:100%;height:100%}</style></head>
<body>
<iframe id="inspector" src="${inspectorUiUrl}"></iframe>
<script>
const frame = document.getElementById("inspector")
const pending = []
let ready = false
window.addEventListener("message", (e) => {
  if (e.data && e.data.type === "@statelyai.connected") {
    ready = true
    for (const event of pending.splice(0)) frame.contentWindow.postMessage(event, "*")
  }
})
const socket = new WebSocket(${JSON.stringify(wsUrl)})
socket.onmessage = (message) => {
  const event = JSON.parse(message.data)
  if (ready) frame.contentWindow.postMessage(event, "*")
  else pending.push(event)
}
</script>
</body>
</html>
`

/**
 * Starts the local inspector bridge and connects a Stately WebSocket inspector to it. Fails with E2000
 * when the port cannot be bound.
 *
 * @example
 * ```ts
 * const inspector = await createLocalInspector()
 * const runtime = await createRuntime({ inspect: inspector.inspect })
 * console.log(`open ${inspector.url}`)
 * // ... later
 * await runtime.shutdown()
 * await inspector.stop()
 * ```
 */
export const createLocalInspector = async (options: LocalInspectorOptions = {}): Promise<LocalInspector> => {
  const host = options.host ?? "127.0.0.1"
  const replay = options.replay ?? 500
  const inspectorUiUrl = options.inspectorUiUrl ?? "https://stately.ai/inspect"
  let page = ""
  const server: Server = createServer((req, res) => {
    req.resume()
    res.writeHead(200, { "content-type": "text/html; charset=utf-8", "cache-control": "no-store", "content-length": Buffer.byteLength(page) })
    res.end(page)
  })
  const relay = new WebSocketServer({ server, maxPayload: 16 * 1024 * 1024 })
  const history: Array<string> = []
  // The inspector's own connection is the only source; every other client only listens.
  let source: WebSocket | undefined
  let sourceConnected = () => {}
  const connected = new Promise<void>((resolve) => (sourceConnected = resolve))
  relay.on("connection", (socket, req) => {
    if (source === undefined && req.url === "/source") {
      source = socket
      sourceConnected()
      socket.on("message", (data) => {
        const message = data.toString()
        history.push(message)
        if (history.length > replay) history.shift()
        for (const client of relay.clients) if (client !== socket && client.readyState === WebSocket.OPEN) client.send(message)
      })
      socket.on("close", () => {
        if (source === socket) source = undefined
      })
      return
    }
    for (const message of history) socket.send(message)
    socket.on("message", () => undefined)
  })
  relay.on("error", () => undefined)
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject)
    server.listen(options.port ?? 0, host, () => {
      server.off("error", reject)
      resolve()
    })
  }).catch((error: NodeJS.ErrnoException) => {
    relay.close()
    throw new ConfigInvalid({
      message:
        error.code === "EADDRINUSE"
          ? `the inspector port ${options.port} on ${host} is in use; pick another (0 picks a free one)`
          : `the inspector cannot listen on ${host}:${options.port ?? 0}: ${error.message}`,
      key: "inspect.port"
    })
  })
  const address = server.address() as AddressInfo
  const base = `${address.family === "IPv6" ? `[${address.address}]` : address.address}:${address.port}`
  const url = `http://${base}`
  const wsUrl = `ws://${base}`
  page = bridgeHtml(wsUrl, inspectorUiUrl)

  const inspector = createWebSocketInspector({ url: `${wsUrl}/source`, autoStart: false })
  inspector.start()
  // Wait (briefly) for the inspector's own connection, so the first events go out at once.
  await Promise.race([connected, new Promise((resolve) => setTimeout(resolve, 2_000).unref())])
  let stopped: Promise<void> | undefined
  return {
    inspect: (event) => {
      if (stopped === undefined) inspector.inspect.next?.(event)
    },
    url,
    wsUrl,
    stop: () =>
      (stopped ??= (async () => {
        // The adapter reconnects 5 s after any socket error, for ever; closing a socket that is still
        // connecting reports one, so replace its error handler before closing it.
        const socket = (inspector.adapter as unknown as { ws?: { onerror: unknown } }).ws
        if (socket !== undefined) socket.onerror = () => undefined
        inspector.stop()
        for (const client of relay.clients) client.terminate()
        await new Promise<void>((resolve) => relay.close(() => resolve()))
        server.closeAllConnections()
        await new Promise<void>((resolve) => server.close(() => resolve()))
      })())
  }
}

/** The machines Stately Studio can import, by the name used in `l02 machines export` and GET /v1/machines/{name}. */
export const exportableMachines: Readonly<Record<"agent" | "fleet" | "workflow", AnyStateMachine>> = {
  agent: agentMachine as unknown as AnyStateMachine,
  fleet: fleetMachine as unknown as AnyStateMachine,
  workflow: workflowMachine as unknown as AnyStateMachine
}

/** A name of {@link exportableMachines}. */
export type MachineName = keyof typeof exportableMachines

/** Whether `name` names an exportable machine. */
export const isMachineName = (name: string): name is MachineName => Object.hasOwn(exportableMachines, name)

/**
 * The machine's definition (`machine.toJSON()`) as plain JSON: states, transitions, invoked actors,
 * guards and delays by name. Inline functions have no JSON form and are left out.
 */
export const machineJson = (name: MachineName): unknown => JSON.parse(JSON.stringify(exportableMachines[name].toJSON()))
