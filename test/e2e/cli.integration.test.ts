// The l02 command line end to end: separate invocations on one data directory share the agents
// (PGlite file store, process backend re-adoption); JSON output for scripts; coded errors and exit codes.
import { execFile } from "node:child_process"
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { promisify } from "node:util"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { createRuntime } from "../../src/runtime/createRuntime.ts"
import { answeringAgent, startServer } from "../http/support.ts"

const run = promisify(execFile)
const main = new URL("../../src/cli/main.ts", import.meta.url).pathname
let dir: string

const l02 = async (...args: Array<string>) => l02With({}, ...args)

const l02With = async (env: Record<string, string>, ...args: Array<string>) => {
  try {
    const { stdout, stderr } = await run(process.execPath, [main, ...args, "--data-dir", dir], { timeout: 60_000, env: { ...process.env, L02_RUNTIME__HIBERNATE_IDLE_AFTER_SECONDS: "0", ...env } })
    return { code: 0, stdout, stderr }
  } catch (error) {
    const e = error as { code?: number; stdout?: string; stderr?: string }
    return { code: e.code ?? -1, stdout: e.stdout ?? "", stderr: e.stderr ?? "" }
  }
}

describe("l02 CLI", () => {
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "l02-cli-"))
  })
  afterAll(async () => {
    await l02("fleet", "scale", "cli", "0")
    await rm(dir, { recursive: true, force: true })
  })

  it("spawns, lists, suspends, resumes and terminates across invocations, with exit codes scripts can rely on", async () => {
    const spawned = await l02("spawn", "cli-agent", "--trust", "TRUSTED", "--json")
    expect(spawned.code).toBe(0)
    const { agentId, state } = JSON.parse(spawned.stdout) as { agentId: string; state: string }
    expect(state).toBe("running")

    const listed = await l02("ls", "--json")
    expect(JSON.parse(listed.stdout)).toEqual([expect.objectContaining({ agentId, state: "running", activity: "idle" })])

    const exec = await l02("exec", agentId, "hi there")
    expect(exec.stdout).toContain("echo: hi there")

    expect((await l02("suspend", agentId)).stdout).toContain("suspended")
    const refused = await l02("suspend", agentId)
    expect(refused.code).toBe(1)
    expect(refused.stderr).toMatch(/^E2020: cannot suspend agent .* while it is suspended/m)
    expect(JSON.parse((await l02("resume", agentId, "--json")).stdout)).toEqual({ state: "running" })

    expect((await l02("terminate", agentId)).code).toBe(0)
    const got = await l02("get", agentId)
    expect(JSON.parse(got.stdout)).toMatchObject({ agentId, state: "terminated" })

    const missing = await l02("get", "00000000-0000-4000-8000-000000000000")
    expect(missing.code).toBe(1)
    expect(missing.stderr).toContain("E2021")
  }, 240_000)

  it("refuses bad input with a coded error and a non-zero exit", async () => {
    const bad = await l02("spawn", "Bad_Name")
    expect(bad.code).toBe(1)
    expect(bad.stderr).toMatch(/^E2001: agent config key name is invalid/m)
    const untrusted = await l02("spawn", "ok", "--trust", "UNTRUSTED")
    expect(untrusted.stderr).toMatch(/^E2041: .*kata/m)
    expect(JSON.parse((await l02("ls", "--json")).stdout).filter((a: { state: string }) => a.state !== "terminated")).toEqual([])
  }, 120_000)

  it("shows warm pools, and a one-shot spawn of the template claims a ready sandbox without refilling", async () => {
    const warm = [{ name: "cliwarm", template: { name: "cliwarm", trustLevel: "TRUSTED" }, size: 2 }]
    // A long-running runtime (as `l02 serve` would be) fills the pool and leaves it for the next start.
    const filler = await createRuntime({ backend: "process", dataDir: dir, env: {}, config: { pools: { warm } } })
    for (let i = 0; i < 200 && (await filler.pools())[0]!.ready < 2; i++) await new Promise((r) => setTimeout(r, 50))
    expect((await filler.pools())[0]!.ready).toBe(2)
    await filler.shutdown()

    const env = { L02_POOLS__WARM: JSON.stringify(warm) }
    const listed = await l02With(env, "pools", "--json")
    expect(listed.code).toBe(0)
    expect(JSON.parse(listed.stdout)).toEqual([expect.objectContaining({ name: "cliwarm", ready: 2, creating: 0, createdTotal: 2 })])
    expect((await l02With(env, "pools")).stdout).toMatch(/^POOL +READY/m)

    const spawned = JSON.parse((await l02With(env, "spawn", "cliwarm", "--trust", "TRUSTED", "--json")).stdout) as { agentId: string }
    expect(JSON.parse((await l02With(env, "pools", "--json")).stdout)).toEqual([expect.objectContaining({ ready: 1, createdTotal: 1 })])
    expect((await l02With(env, "terminate", spawned.agentId, "--force")).code).toBe(0)
    // Without the pool in the configuration there is no pool (and that start reaps its last sandbox).
    expect(JSON.parse((await l02("pools", "--json")).stdout)).toEqual([])
  }, 240_000)

  it("works against a running server with --url and L02_API_KEY: the same output, errors and exit codes", async () => {
    const server = await startServer({
      apiKeys: [
        { key_env: "OPERATOR_KEY", scopes: ["operate", "read"], trust_levels: ["TRUSTED"] },
        { key_env: "READER_KEY", scopes: ["read"] }
      ],
      env: { OPERATOR_KEY: "cli-operator-key", READER_KEY: "cli-reader-key" }
    })
    try {
      const as = (key: string) => ({ L02_URL: server.url, L02_API_KEY: key })
      const spawned = await l02With(as("cli-operator-key"), "spawn", "remote-agent", "--trust", "TRUSTED", "--json")
      expect(spawned.code).toBe(0)
      const { agentId, state } = JSON.parse(spawned.stdout) as { agentId: string; state: string }
      expect(state).toBe("running")
      // The agent lives in the server's runtime, not in this data directory.
      expect((await server.runtime.getState(agentId)).state).toBe("running")
      expect(JSON.parse((await l02With(as("cli-reader-key"), "ls", "--json")).stdout)).toEqual([expect.objectContaining({ agentId, state: "running" })])
      expect(JSON.parse((await l02With(as("cli-reader-key"), "get", agentId)).stdout)).toMatchObject({ agentId, state: "running" })

      // exec streams the agent's answer over Server-Sent Events (the in-memory agent echoes its input).
      const operatorWithAgent = await server.runtime.spawn(answeringAgent)
      const exec = await l02With(as("cli-operator-key"), "exec", operatorWithAgent.agentId, "hi remote", "--json")
      expect(exec.code).toBe(0)
      const events = exec.stdout.trim().split("\n").map((l) => JSON.parse(l) as { type: string })
      expect(events.at(-1)).toMatchObject({ type: "done" })

      expect((await l02With(as("cli-operator-key"), "suspend", agentId)).stdout).toContain("suspended")
      const refused = await l02With(as("cli-operator-key"), "suspend", agentId)
      expect(refused.code).toBe(1)
      expect(refused.stderr).toMatch(/^E2020: cannot suspend agent .* while it is suspended/m)
      expect(JSON.parse((await l02With(as("cli-operator-key"), "resume", agentId, "--json")).stdout)).toEqual({ state: "running" })

      const forbidden = await l02With(as("cli-reader-key"), "terminate", agentId)
      expect(forbidden.code).toBe(1)
      expect(forbidden.stderr).toMatch(/^E2003: /m)
      const unknownKey = await l02With(as("not-a-key"), "ls")
      expect(unknownKey.code).toBe(1)
      expect(unknownKey.stderr).toMatch(/^E2002: /m)
      expect(unknownKey.stderr + unknownKey.stdout).not.toContain("not-a-key")
      expect((await l02With(as("cli-operator-key"), "terminate", agentId)).code).toBe(0)
      expect((await server.runtime.getState(agentId)).state).toBe("terminated")

      const down = await l02With({ L02_URL: "http://127.0.0.1:9", L02_API_KEY: "x" }, "ls")
      expect(down.code).toBe(1)
      expect(down.stderr).toMatch(/^E2047: no l02 server answers at http:\/\/127\.0\.0\.1:9/m)
    } finally {
      await server.close()
    }
  }, 240_000)
})
