// Docker backend pieces that need no engine: the container it asks for, the stream framing, the
// archive writer, and an engine that is down (E2047 naming the socket).
import { Effect } from "effect"
import { describe, expect, it } from "vitest"
import { agentRootfs, echoProgramScript } from "../../../src/backends/docker/AgentImage.ts"
import { containerCreateOptions, containerNameOf, networkNameOf, volumeNameOf } from "../../../src/backends/docker/ContainerConfig.ts"
import * as DockerBackend from "../../../src/backends/docker/DockerBackend.ts"
import { Demuxer, LineSplitter, utf8Prefix } from "../../../src/backends/docker/internal/demux.ts"
import { writeRootfsTar } from "../../../src/backends/docker/internal/tarWriter.ts"
import { SandboxBackend } from "../../../src/services/SandboxBackend.ts"
import { readTar } from "../../../src/services/WorkspaceArchive.ts"
import { specAt } from "./dockerTestSupport.ts"

const frame = (stream: 1 | 2, text: string) => {
  const payload = Buffer.from(text)
  const header = Buffer.alloc(8)
  header[0] = stream
  header.writeUInt32BE(payload.length, 4)
  return Buffer.concat([header, payload])
}

describe("Docker container config", () => {
  it("maps the strict security context, limits and an isolated network to the engine's fields", () => {
    const spec = specAt("UNTRUSTED", { command: ["/bin/l02-echo"], env: { MODE: "x" } })
    const name = containerNameOf(spec)
    const options = containerCreateOptions(spec, { name, image: "img:1", runtimeName: "runsc", network: { mode: "none" }, volumeName: volumeNameOf(name), labels: { a: "b" } })
    expect(options).toMatchObject({
      name,
      Image: "img:1",
      Cmd: ["/bin/l02-echo"],
      User: "65534:65534",
      NetworkDisabled: true,
      OpenStdin: true,
      Labels: { a: "b" },
      HostConfig: {
        Runtime: "runsc",
        NetworkMode: "none",
        ReadonlyRootfs: true,
        CapDrop: ["ALL"],
        SecurityOpt: ["no-new-privileges:true"],
        PidsLimit: 64,
        Memory: 128 * 1024 * 1024,
        MemorySwap: 128 * 1024 * 1024,
        NanoCpus: 1_000_000_000
      }
    })
    expect(options.Env).toEqual(["MODE=x", "L02_WORKSPACE=/workspace", `L02_AGENT_ID=${spec.agentId}`])
    expect(options.HostConfig?.Mounts).toEqual([{ Type: "volume", Source: `${name}-workspace`, Target: "/workspace", VolumeOptions: { Labels: { a: "b" } } }])
  })

  it("TRUSTED gets a writable root; restricted names the per-agent network", () => {
    const spec = specAt("TRUSTED")
    const name = containerNameOf(spec)
    const options = containerCreateOptions(spec, { name, image: "i", runtimeName: "runc", network: { mode: "internal", name: networkNameOf(name) }, volumeName: "v", labels: {} })
    expect(options.HostConfig?.ReadonlyRootfs).toBe(false)
    expect(options.HostConfig?.NetworkMode).toBe(`${name}-net`)
    expect(options.NetworkDisabled).toBeUndefined()
    expect(options.Cmd).toBeUndefined()
  })

  it("names containers from runtime and agent id, with characters the engine accepts", () => {
    expect(containerNameOf({ runtimeId: "rt/one two", agentId: "a-1" })).toBe("l02-rt_one_two-a-1")
    expect(containerNameOf({ runtimeId: "", agentId: "a" })).toBe("l02-default-a")
  })
})

describe("Docker stream framing", () => {
  it("demuxes frames split across chunks into stdout and stderr", () => {
    const seen: Array<[string, string]> = []
    const demuxer = new Demuxer((stream, payload) => seen.push([stream, payload.toString()]))
    const bytes = Buffer.concat([frame(1, "out-1"), frame(2, "err"), frame(1, "out-2")])
    for (let i = 0; i < bytes.length; i += 3) demuxer.push(bytes.subarray(i, i + 3))
    expect(seen).toEqual([["stdout", "out-1"], ["stderr", "err"], ["stdout", "out-2"]])
  })

  it("splits lines per stream, keeping multi-byte characters whole across frames", () => {
    const lines: Array<string> = []
    const splitter = new LineSplitter((stream, line) => lines.push(`${stream}:${line}`))
    const euro = Buffer.from("€")
    splitter.push("stdout", Buffer.concat([Buffer.from("a"), euro.subarray(0, 1)]))
    splitter.push("stdout", Buffer.concat([euro.subarray(1), Buffer.from("\nb\nrest")]))
    splitter.push("stderr", Buffer.from("e\n"))
    splitter.flush()
    expect(lines).toEqual(["stdout:a€", "stdout:b", "stderr:e", "stdout:rest"])
  })

  it("cuts output caps on a character boundary", () => {
    const bytes = Buffer.from("ab€")
    expect(utf8Prefix(bytes, 3).toString()).toBe("ab")
    expect(utf8Prefix(bytes, 5).toString()).toBe("ab€")
    expect(utf8Prefix(bytes, 0).length).toBe(0)
  })
})

describe("Docker archives and the agent image", () => {
  it("writes a tar the workspace reader reads back, long paths included", () => {
    const long = `${"d".repeat(120)}/file.txt`
    const tar = writeRootfsTar([
      { path: "dir", type: "directory", mode: 0o755, uid: 65534, gid: 65534 },
      { path: "dir/a.txt", type: "file", data: Buffer.from("hello"), mode: 0o640, uid: 65534, gid: 65534 },
      { path: long, type: "file", data: Buffer.from("deep"), mode: 0o644 }
    ])
    const entries = readTar(tar)
    expect(entries.map((e) => [e.path, e.type, Buffer.from(e.data).toString(), e.mode])).toEqual([
      ["dir", "directory", "", 0o755],
      ["dir/a.txt", "file", "hello", 0o640],
      [long, "file", "deep", 0o644]
    ])
    // uid/gid fields (octal at 108 and 116) carry the owner.
    expect(Buffer.from(tar.subarray(512 + 108, 512 + 115)).toString()).toBe("0177776")
  })

  it("builds a root filesystem with busybox, applet links, nobody's workspace and the echo program", () => {
    const tar = agentRootfs(new Uint8Array([1, 2, 3]), ["sh", "cat"])
    const entries = readTar(tar)
    expect(entries.map((e) => e.path)).toEqual(expect.arrayContaining(["bin/busybox", "bin/l02-echo", "etc/passwd", "tmp", "workspace"]))
    expect(Buffer.from(entries.find((e) => e.path === "etc/passwd")!.data).toString()).toContain("nobody:x:65534:65534")
    expect(entries.find((e) => e.path === "tmp")!.mode).toBe(0o1777)
    expect(echoProgramScript).toContain("trap 'exit 143' TERM")
  })
})

describe("Docker engine unreachable", () => {
  it("fails each operation with BackendUnavailable (E2047) naming the socket", async () => {
    const socketPath = "/nonexistent/l02-docker.sock"
    const previous = process.env.DOCKER_HOST
    delete process.env.DOCKER_HOST
    try {
      const error = await Effect.runPromise(
        Effect.gen(function* () {
          const backend = yield* SandboxBackend
          return yield* Effect.flip(backend.provision(specAt("TRUSTED")))
        }).pipe(Effect.provide(DockerBackend.layer({ socketPath })))
      )
      expect(error).toMatchObject({ _tag: "BackendUnavailable", code: "E2047" })
      expect(error.message).toContain(socketPath)
    } finally {
      if (previous !== undefined) process.env.DOCKER_HOST = previous
    }
  })
})
