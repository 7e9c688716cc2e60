// A TCP proxy a test controls, for cutting a real service (PostgreSQL) as a network outage would:
// `cut` resets every connection through it and resets new ones at once; `restore` lets them through.
import { createServer, type Server, type Socket, connect } from "node:net"

/** A proxy listening on 127.0.0.1 (a free port) in front of `target`. */
export const startTcpProxy = async (target: { readonly host: string; readonly port: number }) => {
  let cut = false
  const live = new Set<Socket>()
  const server: Server = createServer((client) => {
    if (cut) return void client.resetAndDestroy()
    const upstream = connect(target.port, target.host)
    live.add(client)
    live.add(upstream)
    const end = () => {
      live.delete(client)
      live.delete(upstream)
      client.destroy()
      upstream.destroy()
    }
    client.on("error", end).on("close", end)
    upstream.on("error", end).on("close", end)
    client.pipe(upstream)
    upstream.pipe(client)
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  const address = server.address()
  if (address === null || typeof address === "string") throw new Error("the proxy has no port")
  return {
    port: address.port,
    /** Resets every connection now and every new one until `restore`. */
    cut: () => {
      cut = true
      for (const socket of live) socket.resetAndDestroy()
      live.clear()
    },
    restore: () => void (cut = false),
    isCut: () => cut,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of live) socket.destroy()
        server.close(() => resolve())
      })
  }
}
