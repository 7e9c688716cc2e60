// dockerode's SSH and BuildKit transports load on first use, not with dockerode: checked in a fresh
// Node process (module state is per process), with the real packages behind the stand-ins.
import { execFile } from "node:child_process"
import { promisify } from "node:util"
import { describe, expect, it } from "vitest"

const run = promisify(execFile)
const backend = new URL("../../../src/backends/docker/DockerBackend.ts", import.meta.url).href

const probe = `
import { createRequire } from "node:module"
await import(${JSON.stringify(backend)})
const require = createRequire(import.meta.url)
const loaded = (name) => Object.keys(require.cache).some((path) => path.startsWith("/") && path.includes("/node_modules/" + name + "/"))
const report = { before: { ssh2: loaded("ssh2"), grpc: loaded("@grpc/grpc-js"), protoLoader: loaded("@grpc/proto-loader"), dockerode: loaded("dockerode") } }
// docker-modem's SSH agent, as DOCKER_HOST=ssh://... makes it: the stand-in builds a real ssh2 client.
const modemRequire = createRequire(createRequire(require.resolve("dockerode")).resolve("docker-modem"))
const sshPath = modemRequire.resolve("./ssh.js")
const sshAgent = modemRequire(sshPath)({ host: "127.0.0.1", port: 1 })
report.sshAgent = typeof sshAgent.createConnection
report.afterSsh = loaded("ssh2")
const standIn = createRequire(sshPath)("ssh2")
const realSsh2 = require("ssh2")
report.standInIsReal = standIn === realSsh2
report.sameClient = new standIn.Client() instanceof realSsh2.Client
// The BuildKit session's gRPC: the stand-in answers with the real package's members.
const sessionRequire = createRequire(require.resolve("dockerode/lib/session.js"))
const grpc = sessionRequire("@grpc/grpc-js")
report.grpcServer = typeof grpc.Server
report.afterGrpc = loaded("@grpc/grpc-js")
console.log(JSON.stringify(report))
`

describe("dockerode's deferred transports", () => {
  it("are not loaded with the Docker backend, and load the real packages on first use", async () => {
    const { stdout } = await run(process.execPath, ["--input-type=module", "-e", probe], { timeout: 30_000 })
    const report = JSON.parse(stdout.trim()) as Record<string, unknown>
    expect(report.before).toEqual({ ssh2: false, grpc: false, protoLoader: false, dockerode: true })
    expect(report.sshAgent).toBe("function")
    expect(report.afterSsh).toBe(true)
    expect(report.standInIsReal).toBe(false)
    expect(report.sameClient).toBe(true)
    expect(report.grpcServer).toBe("function")
    expect(report.afterGrpc).toBe(true)
  })
})
