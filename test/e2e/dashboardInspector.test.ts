// The Stately inspector bridge: a Stately WebSocket receiver sees every agent actor of a real runtime,
// the bridge lets its process exit after stop, and `l02 serve --inspect` exits promptly on SIGINT.
import { spawn } from "node:child_process"
import { mkdtemp, readFile, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { createWebSocketReceiver, type StatelyInspectionEvent } from "@statelyai/inspect"
import { describe, expect, it } from "vitest"
import { WebSocket } from "ws"
import { createRuntime } from "../../src/runtime/createRuntime.ts"
import { createLocalInspector, machineJson } from "../../src/runtime/inspector.ts"
import { memoryServices } from "../runtime/support.ts"

const main = new URL("../../src/cli/main.ts", import.meta.url).pathname

const openSocket = (url: string) =>
  new Promise<WebSocket>((resolve, reject) => {
    const socket = new WebSocket(url)
    socket.once("open", () => resolve(socket))
    socket.once("error", reject)
  })

describe("local Stately inspector", () => {
  it("relays the inspection events of every agent actor to Stately receivers, and replays them to late ones", async () => {
    const inspector = await createLocalInspector()
    const services = await memoryServices()
    const runtime = await createRuntime({ layer: services.layer, env: {}, config: { store: { pglite: "memory" } }, inspect: inspector.inspect })
    try {
      expect(inspector.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/)
      const page = await (await fetch(inspector.url)).text()
      expect(page).toContain(`new WebSocket(${JSON.stringify(inspector.wsUrl)})`)

      const received: Array<StatelyInspectionEvent> = []
      const receiver = createWebSocketReceiver({ server: inspector.wsUrl })
      receiver.subscribe((event) => received.push(event))
      const { agentId } = await runtime.spawn({ name: "inspected", trustLevel: "TRUSTED", command: ["l02-agent"] })
      await runtime.suspend(agentId)
      const sawSuspended = () =>
        received.some((e) => e.type === "@xstate.snapshot" && (e.snapshot as { value?: unknown }).value === "suspended")
      for (let i = 0; i < 100 && !sawSuspended(); i++) await new Promise((r) => setTimeout(r, 50))
      expect(sawSuspended()).toBe(true)
      const actors = received.filter((e) => e.type === "@xstate.actor")
      expect(actors.some((e) => (e as { definition?: string }).definition?.includes('"id":"agent"'))).toBe(true)

      // A client connecting later gets the history first.
      const late = new WebSocket(inspector.wsUrl)
      const first = await new Promise<string>((resolve, reject) => {
        late.once("message", (data) => resolve(data.toString()))
        late.once("error", reject)
      })
      expect(JSON.parse(first)).toHaveProperty("type")
      late.close()
    } finally {
      await runtime.shutdown()
      await services.close()
      await inspector.stop()
    }
    await expect(fetch(inspector.url)).rejects.toThrow()
  })

  it("stopping right after starting leaves nothing that reconnects", async () => {
    const inspector = await createLocalInspector()
    await inspector.stop()
    await inspector.stop()
    inspector.inspect({ type: "@xstate.event" } as never)
    await expect(fetch(inspector.url)).rejects.toThrow()
  })

  it("l02 serve --inspect prints both addresses and exits within seconds of SIGINT", async () => {
    const dir = await mkdtemp(join(tmpdir(), "l02-inspect-"))
    const child = spawn(process.execPath, [main, "serve", "--inspect", "--port", "0", "--backend", "memory", "--data-dir", dir], {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, L02_STORE__PGLITE: "memory" }
    })
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (d) => (stdout += d))
    child.stderr.on("data", (d) => (stderr += d))
    const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)))
    try {
      for (let i = 0; i < 300 && !/inspector bridge at/.test(stdout) && child.exitCode === null; i++) await new Promise((r) => setTimeout(r, 100))
      expect(stdout, stderr).toMatch(/dashboard at http:\/\/127\.0\.0\.1:\d+\/dashboard/)
      const wsUrl = /WebSocket (ws:\/\/[^)]+)\)/.exec(stdout)![1]!
      const serverUrl = /serving on (http:\/\/\S+) /.exec(stdout)![1]!
      // A listener connected to the bridge, and the agent machine served for Stately Studio.
      const listener = await openSocket(wsUrl)
      const machine = (await (await fetch(`${serverUrl}/v1/machines/agent`)).json()) as { id: string }
      expect(machine.id).toBe("agent")
      const started = Date.now()
      child.kill("SIGINT")
      const code = await Promise.race([exited, new Promise<"timeout">((r) => setTimeout(() => r("timeout"), 8_000))])
      expect(code, `still running 8 s after SIGINT; stderr: ${stderr}`).not.toBe("timeout")
      expect(Date.now() - started).toBeLessThan(5_000)
      listener.terminate()
    } finally {
      if (child.exitCode === null) child.kill("SIGKILL")
      await rm(dir, { recursive: true, force: true })
    }
  }, 60_000)

  it("exports the machines as the JSON of their definitions", async () => {
    const agent = machineJson("agent") as { id: string; states: Record<string, unknown> }
    expect(agent.id).toBe("agent")
    expect(Object.keys(agent.states)).toEqual(["pending", "spawning", "running", "suspending", "suspended", "resuming", "terminating", "terminated", "failed"])
    expect((machineJson("fleet") as { id: string }).id).toBe("fleet")

    const dir = await mkdtemp(join(tmpdir(), "l02-export-"))
    try {
      const child = spawn(process.execPath, [main, "machines", "export", "--out", join(dir, "machines")], { stdio: ["ignore", "pipe", "pipe"] })
      const code = await new Promise<number | null>((resolve) => child.on("exit", resolve))
      expect(code).toBe(0)
      expect(JSON.parse(await readFile(join(dir, "machines", "agent.json"), "utf8"))).toEqual(agent)
      expect(JSON.parse(await readFile(join(dir, "machines", "fleet.json"), "utf8"))).toEqual(machineJson("fleet"))
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})
