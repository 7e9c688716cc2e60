// The runtime on a real Docker engine: lifecycle, execute through the image's agent, checkpoints,
// restarts after an outside kill, and re-attachment after a runtime restart. Gated by L02_TEST_DOCKER.
import { hostname } from "node:os"
import { Context, Effect, Stream } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { buildAgentImage } from "../../src/backends/docker/AgentImage.ts"
import { OwnershipLabels } from "../../src/domain/Ids.ts"
import { createRuntime, type L02Runtime } from "../../src/runtime/createRuntime.ts"
import { EventLog } from "../../src/services/EventLog.ts"
import { StateStore } from "../../src/services/StateStore.ts"
import { dockerEnabled, dockerRuntimeServices, testDocker } from "../backends/docker/dockerTestSupport.ts"
import { eventually } from "./support.ts"

const docker = testDocker()
const runtimeId = `rt-docker-${process.pid}`

describe.skipIf(!dockerEnabled)("runtime on Docker", () => {
  let services: Awaited<ReturnType<typeof dockerRuntimeServices>>
  let runtime: L02Runtime
  const start = (config: Record<string, Record<string, unknown>> = {}) =>
    createRuntime({
      layer: services.layer,
      env: {},
      config: { runtime: { runtime_id: runtimeId, hibernate_idle_after_seconds: 0 }, store: { pglite: "memory" }, ...config }
    })
  const backend = () => services.backend

  beforeAll(async () => {
    await Effect.runPromise(buildAgentImage({ docker, busyboxPath: process.env.L02_BUSYBOX ?? "/bin/busybox" }))
    services = await dockerRuntimeServices(docker, runtimeId)
  }, 120_000)

  afterAll(async () => {
    await runtime?.shutdown()
    await services.close()
  }, 60_000)

  it("runs the whole lifecycle: spawn, execute, pause, checkpoint with the workspace, restore, terminate", async () => {
    runtime = await start({
      lifecycle: { graceful_shutdown_seconds: 2 },
      sandbox: { trust_runtime_classes: { TRUSTED: "runc", STANDARD: "gvisor", UNTRUSTED: "kata", CONFIDENTIAL: "kata-cc" } }
    })
    const { agentId, sandboxId } = await runtime.spawn({ name: "docker-agent", trustLevel: "TRUSTED", command: ["/bin/l02-agent"] })
    const answer: Array<unknown> = []
    for await (const e of runtime.execute(agentId, "hello docker")) answer.push(e)
    expect(answer[0]).toMatchObject({ type: "output", data: { text: "echo: hello docker", agentId } })
    expect(answer.at(-1)).toMatchObject({ type: "done" })

    await runtime.suspend(agentId)
    expect((await docker.getContainer(sandboxId!).inspect()).State.Paused).toBe(true)
    await runtime.resume(agentId)
    expect((await docker.getContainer(sandboxId!).inspect()).State.Running).toBe(true)

    await Effect.runPromise(
      Stream.runDrain(backend().exec(sandboxId!, { command: ["sh", "-c", "echo kept > /workspace/notes.txt"], timeoutMs: 10_000, maxOutputBytes: 1000 }))
    )
    const checkpointId = await runtime.suspend(agentId, { checkpoint: true })
    await expect(docker.getContainer(sandboxId!).inspect()).rejects.toMatchObject({ statusCode: 404 })
    await runtime.resume(agentId, checkpointId)
    const restored = await runtime.getState(agentId)
    expect(restored.sandboxId).not.toBe(sandboxId)
    const chunks = await Effect.runPromise(
      Stream.runCollect(backend().exec(restored.sandboxId!, { command: ["cat", "/workspace/notes.txt"], timeoutMs: 10_000, maxOutputBytes: 1000 }))
    )
    expect(chunks.filter((c) => c._tag === "stdout").map((c) => (c as { data: string }).data).join("")).toBe("kept\n")

    await runtime.terminate(agentId)
    expect(await Effect.runPromise(backend().list({ [OwnershipLabels.agentId]: agentId }))).toEqual([])
  }, 120_000)

  it("runs the agent loop with tool calls executed for real in the container", async () => {
    const { agentId } = await runtime.spawn({
      name: "docker-model",
      trustLevel: "TRUSTED",
      command: ["/bin/l02-agent"],
      model: {
        provider: "scripted",
        model: "scripted-1",
        script: [
          { toolCalls: [{ name: "write_file", arguments: { path: "notes/plan.txt", content: "step one" } }] },
          { toolCalls: [{ name: "shell", arguments: { command: "id -u; cat notes/plan.txt; ls /workspace/notes" } }] },
          { toolCalls: [{ name: "read_file", arguments: { path: "../etc/passwd" } }] },
          { text: "done" }
        ]
      }
    })
    const results: Array<{ name: string; content: string; isError: boolean }> = []
    for await (const e of runtime.execute(agentId, "plan")) if (e.type === "tool.result") results.push(e)
    expect(results[0]).toMatchObject({ name: "write_file", isError: false })
    expect(results[1]!.content).toMatch(/65534[\s\S]*step one[\s\S]*plan\.txt/)
    // Paths stay confined to /workspace.
    expect(results[2]).toMatchObject({ name: "read_file", isError: true })
    expect(results[2]!.content).toContain("E2087")
    await runtime.terminate(agentId)
  }, 120_000)

  it("runs an agent's own stdio MCP server inside its gVisor container, as the sandbox user, never on the host", async () => {
    // A stdio MCP server in busybox sh: newline-delimited JSON-RPC, one tool that says where it runs.
    const server = [
      'while IFS= read -r line; do',
      '  id=$(printf "%s" "$line" | sed -n \'s/.*"id":\\([0-9]*\\).*/\\1/p\')',
      '  case "$line" in',
      '    *\'"method":"initialize"\'*) printf \'{"jsonrpc":"2.0","id":%s,"result":{"protocolVersion":"2025-06-18","capabilities":{"tools":{}},"serverInfo":{"name":"sh","version":"1"}}}\\n\' "$id";;',
      '    *\'"method":"tools/list"\'*) printf \'{"jsonrpc":"2.0","id":%s,"result":{"tools":[{"name":"where","description":"where it runs","inputSchema":{"type":"object"}}]}}\\n\' "$id";;',
      '    *\'"method":"tools/call"\'*) printf \'{"jsonrpc":"2.0","id":%s,"result":{"content":[{"type":"text","text":"uid=%s host=%s"}]}}\\n\' "$id" "$(id -u)" "$(hostname)";;',
      '  esac',
      'done'
    ].join("\n")
    const { agentId, sandboxId } = await runtime.spawn({
      name: "docker-mcp",
      trustLevel: "STANDARD",
      command: ["/bin/l02-agent"],
      model: {
        provider: "scripted",
        model: "scripted-1",
        mcp: [{ name: "box", transport: { type: "stdio", command: "/bin/sh", args: ["-c", server] } }],
        script: [{ toolCalls: [{ name: "where", arguments: {} }] }, { text: "done" }]
      }
    })
    const results: Array<{ name: string; content: string; isError: boolean }> = []
    for await (const e of runtime.execute(agentId, "where are you")) if (e.type === "tool.result") results.push(e)
    const container = await docker.getContainer(sandboxId!).inspect()
    expect(container.HostConfig.Runtime).toBe("runsc")
    expect(results[0]).toMatchObject({ name: "where", isError: false })
    expect(results[0]!.content).toBe(`uid=65534 host=${container.Config.Hostname}`)
    expect(container.Config.Hostname).not.toBe(hostname())
    await runtime.terminate(agentId)
  }, 120_000)

  it("restarts a container killed from outside with backoff, then gives up with E2025", async () => {
    const { agentId } = await runtime.spawn({
      name: "killed",
      trustLevel: "TRUSTED",
      restartPolicy: { maxRestarts: 1, backoffInitialMs: 200, jitter: 0 }
    })
    const first = (await runtime.getState(agentId)).sandboxId!
    await docker.getContainer(first).kill()
    await eventually(async () => expect(await runtime.getState(agentId)).toMatchObject({ state: "running", restartCount: 1 }), 30_000)
    const second = (await runtime.getState(agentId)).sandboxId!
    expect(second).not.toBe(first)
    await docker.getContainer(second).kill()
    await eventually(async () => expect((await runtime.getState(agentId)).lastError).toMatchObject({ code: "E2025" }), 30_000)
    expect((await runtime.getState(agentId)).state).toBe("failed")
    await runtime.terminate(agentId)
    expect(await Effect.runPromise(backend().list({ [OwnershipLabels.agentId]: agentId }))).toEqual([])
  }, 120_000)

  it("reports an OOM kill with E2048 and restarts the agent per its policy", async () => {
    const { agentId } = await runtime.spawn({
      name: "hungry",
      trustLevel: "TRUSTED",
      command: ["/bin/sh", "-c", "sleep 2; head -c 200m /dev/zero | tail"],
      resources: { memory: "32Mi" },
      restartPolicy: { maxRestarts: 0 }
    })
    await eventually(async () => expect((await runtime.getState(agentId)).state).toBe("failed"), 30_000)
    const log = await Effect.runPromise(Context.get(services.context, EventLog).query({ agentId }))
    const failure = log.find((e) => e.toState === "failed")
    expect(failure?.data).toMatchObject({ error: { code: "E2048" } })
    await eventually(async () => expect((await runtime.getState(agentId)).lastError).toMatchObject({ code: "E2025" }), 10_000)
    await runtime.terminate(agentId)
  }, 120_000)

  it("re-attaches to its containers after a restart and reaps the ones nobody owns", async () => {
    const { agentId, sandboxId } = await runtime.spawn({ name: "survivor", trustLevel: "TRUSTED", command: ["/bin/l02-agent"] })
    const orphan = await runtime.spawn({ name: "orphan", trustLevel: "TRUSTED" })
    await runtime.shutdown()
    await Effect.runPromise(Context.get(services.context, StateStore).deleteAgent(orphan.agentId))
    runtime = await start()
    expect(await runtime.getState(agentId)).toMatchObject({ state: "running", sandboxId })
    await expect(docker.getContainer(orphan.sandboxId!).inspect()).rejects.toMatchObject({ statusCode: 404 })
    const answer: Array<unknown> = []
    for await (const e of runtime.execute(agentId, "still here")) answer.push(e)
    expect(answer.at(-1)).toMatchObject({ type: "done" })
    await runtime.terminate(agentId)
  }, 120_000)
})
