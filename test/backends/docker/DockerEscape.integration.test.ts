// Escape suite: each attempt must fail inside the sandbox, on runc and on gVisor. Controls show the
// same probe succeeds where the protection is absent, so a probe that could never succeed fails the test.
import { Effect, Fiber, Option, Stream } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as DockerBackend from "../../../src/backends/docker/DockerBackend.ts"
import { writeRootfsTar } from "../../../src/backends/docker/internal/tarWriter.ts"
import { OwnershipLabels } from "../../../src/domain/Ids.ts"
import { SandboxBackend, type SandboxSpec } from "../../../src/services/SandboxBackend.ts"
import { dockerEnabled, ensureAgentImage, leftovers, specAt, testDocker } from "./dockerTestSupport.ts"
import { spawnSync } from "node:child_process"
import { readFileSync } from "node:fs"
import { createServer } from "node:http"
import type { AddressInfo } from "node:net"
import { networkInterfaces } from "node:os"

const testLabel = { "l02.dev/test": "docker-escape" }

/** An HTTP request with nc that succeeds only on the listener's answer (busybox's static wget crashes in these images). */
const probe = (address: string, port: number) => `printf 'GET / HTTP/1.0\\r\\n\\r\\n' | timeout 4 nc ${address} ${port} 2>/dev/null | grep -q '^HTTP/1.1 200'`

/** An HTTP listener on every interface of the host (0.0.0.0), counting connections, and the host's IPv4 addresses. */
const hostListener = async () => {
  let connections = 0
  const server = createServer((_req, res) => res.end("host"))
  server.on("connection", () => (connections += 1))
  await new Promise<void>((resolve) => server.listen(0, "0.0.0.0", resolve))
  // Node lists only interfaces that are up; docker0 is down while no container uses it, so the
  // kernel's own list and every Docker network's gateway are added.
  const fromNode = Object.values(networkInterfaces()).flatMap((list) => (list ?? []).filter((i) => i.family === "IPv4").map((i) => i.address))
  const fromKernel = [...spawnSync("ip", ["-o", "-4", "addr", "show"], { encoding: "utf8" }).stdout.matchAll(/inet (\d+\.\d+\.\d+\.\d+)/g)].map((m) => m[1]!)
  const gateways = (await testDocker().listNetworks()).flatMap((n) => (n.IPAM?.Config ?? []).map((c) => c.Gateway ?? "")).filter((g) => /^\d+\.\d+\.\d+\.\d+$/.test(g))
  const addresses = [...new Set([...fromNode, ...fromKernel, ...gateways])]
  return {
    port: (server.address() as AddressInfo).port,
    addresses,
    connections: () => connections,
    close: () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()) })
  }
}

interface Sandboxes {
  readonly name: string
  readonly spec: () => SandboxSpec
  /** gVisor: the pids limit caps the Sentry's host threads (about 40 when idle), so a fork bomb ends the whole sandbox. */
  readonly bombEndsSandbox: boolean
}

/** The strict sandbox on each runtime here: UNTRUSTED's profile (isolated, read-only root) on runc, and STANDARD on gVisor. */
const targets: ReadonlyArray<Sandboxes> = [
  {
    name: "runc, strict (UNTRUSTED profile)",
    spec: () => {
      const s = specAt("UNTRUSTED", { labels: { [OwnershipLabels.managedBy]: "l02", ...testLabel } })
      return { ...s, sandbox: { ...s.sandbox, runtimeClass: "runc", resources: { ...s.sandbox.resources, pids: 32, memory: "32Mi", memoryBytes: 32 * 1024 * 1024 } } }
    },
    bombEndsSandbox: false
  },
  {
    // STANDARD mapped to runc (an operator without gVisor): restricted must still reach no host address.
    name: "runc, restricted (STANDARD profile on runc)",
    spec: () => {
      const s = specAt("STANDARD", { labels: { [OwnershipLabels.managedBy]: "l02", ...testLabel } })
      return { ...s, sandbox: { ...s.sandbox, runtimeClass: "runc", resources: { ...s.sandbox.resources, pids: 32, memory: "32Mi", memoryBytes: 32 * 1024 * 1024 } } }
    },
    bombEndsSandbox: false
  },
  {
    name: "gVisor (STANDARD)",
    spec: () => {
      const s = specAt("STANDARD", { labels: { [OwnershipLabels.managedBy]: "l02", ...testLabel } })
      return { ...s, sandbox: { ...s.sandbox, resources: { ...s.sandbox.resources, pids: 128, memory: "128Mi", memoryBytes: 128 * 1024 * 1024 } } }
    },
    bombEndsSandbox: true
  }
]

describe.skipIf(!dockerEnabled)("Docker backend: escape attempts fail inside the sandbox", () => {
  const docker = testDocker()
  const layer = DockerBackend.layer({ docker })

  const withSandbox = <A>(spec: SandboxSpec, body: (backend: SandboxBackend["Service"], sandboxId: string) => Effect.Effect<A, unknown>) =>
    Effect.runPromise(
      Effect.gen(function* () {
        const backend = yield* SandboxBackend
        return yield* Effect.acquireUseRelease(
          Effect.flatMap(backend.provision(spec), (info) => backend.start(info.sandboxId)),
          (info) => body(backend, info.sandboxId),
          (info) => Effect.ignore(backend.remove(info.sandboxId))
        )
      }).pipe(Effect.provide(layer))
    )

  const sh = (backend: SandboxBackend["Service"], sandboxId: string, script: string, timeoutMs = 15_000) =>
    Effect.map(Stream.runCollect(backend.exec(sandboxId, { command: ["/bin/sh", "-c", script], timeoutMs, maxOutputBytes: 64 * 1024 })), (chunks) => {
      const all = [...chunks]
      const exit = all.find((c) => c._tag === "exit")
      return {
        stdout: all.map((c) => (c._tag === "stdout" ? c.data : "")).join(""),
        stderr: all.map((c) => (c._tag === "stderr" ? c.data : "")).join(""),
        exitCode: exit?._tag === "exit" ? exit.exitCode : -1
      }
    })

  beforeAll(() => ensureAgentImage(docker))

  for (const target of targets) {
    describe(target.name, () => {
      it("cannot write to the root filesystem", async () => {
        const result = await withSandbox(target.spec(), (backend, id) =>
          sh(backend, id, "echo owned > /etc/owned; a=$?; echo owned > /bin/owned; b=$?; echo ok > \"$L02_WORKSPACE/allowed\"; c=$?; echo $a $b $c")
        )
        const [etc, bin, workspace] = result.stdout.trim().split(" ").map(Number)
        expect(etc).not.toBe(0)
        expect(bin).not.toBe(0)
        expect(workspace, "the workspace stays writable").toBe(0)
        expect(result.stderr).toMatch(/Read-only file system|Permission denied/)
      })

      it("has no network interface but loopback and reaches nothing when isolated", async () => {
        const result = await withSandbox(target.spec(), (backend, id) =>
          sh(backend, id, "ls /sys/class/net 2>/dev/null || cat /proc/net/dev; timeout 5 wget -q -T 2 -O - http://1.1.1.1/ ; echo wget=$?; timeout 3 nc 172.17.0.1 2375 </dev/null; echo nc=$?")
        )
        expect(result.stdout).not.toMatch(/eth\d/)
        expect(result.stdout).toMatch(/wget=[1-9]/)
        expect(result.stdout).toMatch(/nc=[1-9]/)
      })

      it("reaches no address of the host: a listener on all of the host's interfaces gets no connection", async () => {
        const host = await hostListener()
        try {
          const probes = host.addresses.map((a) => `${probe(a, host.port)} && echo reached=${a}`).join("; ")
          const result = await withSandbox(target.spec(), (backend, id) => sh(backend, id, `${probes}; echo probed`, 60_000))
          expect(result.stdout).toContain("probed")
          expect(result.stdout).not.toContain("reached=")
          expect(host.connections()).toBe(0)
        } finally {
          await host.close()
        }
      })

      it("contains a fork bomb within the pids limit", async () => {
        const limit = target.spec().sandbox.resources.pids
        const result = await withSandbox(target.spec(), (backend, id) =>
          Effect.gen(function* () {
            const bomb = yield* sh(backend, id, "i=0; while [ $i -lt 500 ]; do sleep 60 & i=$((i+1)); done; echo forked=$i", 10_000)
            const info = yield* backend.inspect(id)
            const stats = info.status === "running" ? yield* backend.stats(id) : undefined
            return { bomb, info, stats }
          })
        )
        expect(result.bomb.stdout, "the loop must not get 500 processes").not.toContain("forked=500")
        expect(result.bomb.exitCode).not.toBe(0)
        if (target.bombEndsSandbox) {
          // The Sentry could not get more host threads: the sandbox ends, the host is untouched.
          expect(result.info.status).toBe("exited")
        } else {
          // The fork fails inside ("can't fork: Resource temporarily unavailable"); the sandbox lives on at the limit.
          expect(result.info.status, result.bomb.stderr).toBe("running")
          expect(result.stats?.pids, result.bomb.stderr).toBeGreaterThan(limit / 2)
          expect(result.stats?.pids, result.bomb.stderr).toBeLessThanOrEqual(limit)
        }
      })

      it("cannot gain privileges through a setuid-root binary", async () => {
        // A root-owned setuid busybox planted in the workspace behind the backend's back.
        const busybox = new Uint8Array(readFileSync("/bin/busybox"))
        const planted = writeRootfsTar([
          { path: "s", type: "directory", mode: 0o755 },
          { path: "s/busybox", type: "file", data: busybox, mode: 0o4755, uid: 0, gid: 0 }
        ])
        const result = await withSandbox(target.spec(), (backend, id) =>
          Effect.gen(function* () {
            yield* Effect.promise(() => docker.getContainer(id).putArchive(Buffer.from(planted), { path: "/workspace" }))
            return yield* sh(backend, id, "ls -ln /workspace/s/busybox; /workspace/s/busybox grep -E '^(Uid|NoNewPrivs|CapEff):' /proc/self/status")
          })
        )
        expect(result.stdout).toMatch(/-rwsr-xr-x\s+1\s+0\s+0/)
        // Real, effective, saved and filesystem uid all stay 65534: the setuid bit gave nothing.
        expect(result.stdout).toMatch(/Uid:\s+65534\s+65534\s+65534\s+65534/)
        expect(result.stdout).toMatch(/CapEff:\s+0000000000000000/)
      })

      it("cannot see the Docker socket", async () => {
        const result = await withSandbox(target.spec(), (backend, id) =>
          sh(backend, id, "test -e /var/run/docker.sock; echo sock=$?; test -e /run/docker.sock; echo run=$?; grep -c docker.sock /proc/mounts")
        )
        expect(result.stdout).toContain("sock=1")
        expect(result.stdout).toContain("run=1")
        expect(result.stdout.trim().split("\n").at(-1)).toBe("0")
      })
    })
  }

  it("control: a TRUSTED sandbox (allow_egress, the bridge) does reach the host listener through docker0", async () => {
    const host = await hostListener()
    try {
      const trusted = specAt("TRUSTED", { labels: { [OwnershipLabels.managedBy]: "l02", ...testLabel } })
      const gateway = host.addresses.find((a) => a.startsWith("172.17."))
      expect(gateway, `docker0 among ${host.addresses.join(", ")}`).toBeDefined()
      const result = await withSandbox(trusted, (backend, id) => sh(backend, id, `${probe(gateway!, host.port)} && echo reached`))
      expect(result.stdout).toContain("reached")
      expect(host.connections()).toBeGreaterThan(0)
    } finally {
      await host.close()
    }
  })

  it("control: without no-new-privileges the same setuid binary does raise the saved uid to 0", async () => {
    const container = await docker.createContainer({
      Image: "l02-agent:latest",
      User: "65534:65534",
      Labels: { ...testLabel },
      NetworkDisabled: true,
      OpenStdin: true,
      HostConfig: { CapDrop: ["ALL"], NetworkMode: "none", AutoRemove: false }
    })
    try {
      await container.start()
      const planted = writeRootfsTar([
        { path: "s", type: "directory", mode: 0o755 },
        { path: "s/busybox", type: "file", data: new Uint8Array(readFileSync("/bin/busybox")), mode: 0o4755, uid: 0, gid: 0 }
      ])
      await container.putArchive(Buffer.from(planted), { path: "/workspace" })
      const out = await Effect.runPromise(
        Effect.gen(function* () {
          const backend = yield* SandboxBackend
          return yield* sh(backend, container.id, "/workspace/s/busybox grep '^Uid:' /proc/self/status")
        }).pipe(Effect.provide(layer))
      )
      expect(out.stdout).toMatch(/Uid:\s+65534\s+65534\s+0\s+65534/)
    } finally {
      await container.remove({ force: true, v: true })
    }
  })

  it("exceeding memory is OOM-killed, reported as an oom event and in inspect (runc)", async () => {
    const base = targets[0]!.spec()
    const spec = { ...base, command: ["/bin/sh", "-c", "sleep 1; head -c 200m /dev/zero | tail"] }
    const result = await Effect.runPromise(
      Effect.gen(function* () {
        const backend = yield* SandboxBackend
        return yield* Effect.acquireUseRelease(
          backend.provision(spec),
          (info) =>
            Effect.gen(function* () {
              const oom = yield* backend.events.pipe(
                Stream.filter((e) => e.sandboxId === info.sandboxId && (e.type === "oom" || e.type === "exited")),
                // The engine reports one oom per killed process, then the die.
                Stream.takeUntil((e) => e.type === "exited"),
                Stream.runCollect,
                Effect.timeoutOption("20 seconds"),
                Effect.forkChild
              )
              yield* Effect.sleep("300 millis")
              yield* backend.start(info.sandboxId)
              const events = Option.getOrElse(yield* Fiber.join(oom), () => [])
              const inspected = yield* backend.inspect(info.sandboxId)
              return { events: [...events].map((e) => ({ type: e.type, exitCode: e.exitCode, agentId: e.agentId })), inspected }
            }),
          (info) => Effect.ignore(backend.remove(info.sandboxId))
        )
      }).pipe(Effect.scoped, Effect.provide(layer))
    )
    expect(result.events).toContainEqual({ type: "oom", exitCode: undefined, agentId: spec.agentId })
    expect(result.events).toContainEqual({ type: "exited", exitCode: 137, agentId: spec.agentId })
    expect(result.inspected).toMatchObject({ status: "exited", exitCode: 137, oomKilled: true })
  })

  it("a container killed from outside is reported as exited with its code", async () => {
    const spec = targets[0]!.spec()
    const event = await Effect.runPromise(
      Effect.gen(function* () {
        const backend = yield* SandboxBackend
        return yield* Effect.acquireUseRelease(
          Effect.flatMap(backend.provision(spec), (info) => backend.start(info.sandboxId)),
          (info) =>
            Effect.gen(function* () {
              const exited = yield* backend.events.pipe(
                Stream.filter((e) => e.sandboxId === info.sandboxId && e.type === "exited"),
                Stream.runHead,
                Effect.timeoutOption("15 seconds"),
                Effect.forkChild
              )
              yield* Effect.sleep("300 millis")
              yield* Effect.promise(() => docker.getContainer(info.sandboxId).kill({ signal: "SIGKILL" }))
              return Option.flatten(yield* Fiber.join(exited))
            }),
          (info) => Effect.ignore(backend.remove(info.sandboxId))
        )
      }).pipe(Effect.scoped, Effect.provide(layer))
    )
    expect(Option.map(event, (e) => ({ type: e.type, exitCode: e.exitCode }))).toEqual(Option.some({ type: "exited", exitCode: 137 }))
  })

  afterAll(async () => {
    const left = await leftovers(docker, testLabel)
    await Promise.all(left.containers.map((id) => docker.getContainer(id).remove({ force: true, v: true }).catch(() => undefined)))
    await Promise.all(left.volumes.map((name) => docker.getVolume(name).remove().catch(() => undefined)))
    await Promise.all(left.networks.map((name) => docker.getNetwork(name).remove().catch(() => undefined)))
    expect(left, "every test removed what it created").toEqual({ containers: [], volumes: [], networks: [] })
  })
})
