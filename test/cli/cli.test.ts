// The CLI as a person meets it, on the embedded default (process backend, SQLite store): a missing
// argument shows help and fails without an internal error line; spawn takes a whole agent config, a
// program and flags; exec shows the agent's words, not protocol lines, and says when it resumes a
// suspended agent.
import { execFile, spawn, spawnSync } from "node:child_process"
import { existsSync } from "node:fs"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { promisify } from "node:util"
import { afterAll, describe, expect, it } from "vitest"

const run = promisify(execFile)
const main = new URL("../../src/cli/main.ts", import.meta.url).pathname
const dataDir = mkdtempSync(join(tmpdir(), "l02-cli-"))
const l02 = async (...args: Array<string>) => l02With({}, ...args)
const l02With = async (env: Record<string, string>, ...args: Array<string>) => {
  try {
    const { stdout, stderr } = await run(process.execPath, [main, ...args, "--data-dir", dataDir], { timeout: 60_000, env: { ...process.env, ...env } })
    return { stdout, stderr, code: 0 }
  } catch (error) {
    const e = error as { stdout: string; stderr: string; code: number }
    return { stdout: e.stdout, stderr: e.stderr, code: e.code }
  }
}
const spawned: Array<string> = []
afterAll(async () => {
  for (const id of spawned) await l02("terminate", id, "--force")
  rmSync(dataDir, { recursive: true, force: true })
})

describe("l02 for a person", () => {
  it("shows help for a missing argument and fails (exit 2) without an internal error line", async () => {
    const missing = await l02("get")
    expect(missing.code).toBe(2)
    expect(missing.stdout + missing.stderr).toContain("Missing required argument: agent-id")
    expect(missing.stdout + missing.stderr).not.toContain("ShowHelp")
    const help = await l02("spawn", "--help")
    for (const flag of ["--trust", "--image", "--cpu", "--memory", "--command", "--model", "--agent-config"]) {
      expect(help.stdout, flag).toMatch(new RegExp(`${flag}[^\\n]*\\n?\\s+\\S`))
    }
    expect(help.stdout).toContain("the process backend hosts only these")
  }, 60_000)

  it("gives an agent without --trust the configured default, and says in CLI words how out of E2041", async () => {
    const refused = await l02("spawn", "plain")
    expect(refused.code).toBe(1)
    expect(refused.stderr).toMatch(/^E2041: trust level STANDARD needs runtime class gvisor/m)
    expect(refused.stderr).toContain("--trust TRUSTED")
    expect(refused.stderr).toContain("--backend docker")
    expect(JSON.parse((await l02("ls", "--json")).stdout)).toEqual([])
    const trusted = await l02With({ L02_SANDBOX__DEFAULT_TRUST_LEVEL: "TRUSTED" }, "spawn", "plain", "--json")
    expect(trusted.code).toBe(0)
    const agent = JSON.parse(trusted.stdout) as { agentId: string; sandbox: { trustLevel: string } }
    spawned.push(agent.agentId)
    expect(agent.sandbox.trustLevel).toBe("TRUSTED")
  }, 60_000)

  it("spawns from a whole agent config with a program, renders exec for a person, and says when it resumes a suspended agent", async () => {
    const file = join(dataDir, "agent.yaml")
    writeFileSync(file, "name: from-file\ntrustLevel: TRUSTED\nlabels:\n  team: cli\n")
    const program = 'while read l; do echo "{\\"type\\":\\"heartbeat\\"}"; echo "{\\"type\\":\\"output\\",\\"text\\":\\"got it\\"}"; echo "{\\"type\\":\\"done\\"}"; done'
    const spawn = await l02("spawn", "worker", "--agent-config", file, "--command", program, "--json")
    expect(spawn.code).toBe(0)
    const { agentId } = JSON.parse(spawn.stdout) as { agentId: string }
    spawned.push(agentId)
    const got = JSON.parse((await l02("get", agentId)).stdout) as { name: string; config: { labels: Record<string, string>; command: Array<string> } }
    expect(got).toMatchObject({ name: "worker", config: { labels: { team: "cli" }, command: ["/bin/sh", "-c", program] } })
    const exec = await l02("exec", agentId, "hello")
    expect(exec).toMatchObject({ code: 0, stdout: "got it\n" })
    expect(exec.stderr).not.toContain("heartbeat")
    expect((await l02("suspend", agentId)).code).toBe(0)
    const resumed = await l02("exec", agentId, "again")
    expect(resumed.stdout).toBe("got it\n")
    expect(resumed.stderr).toContain(`agent ${agentId} is suspended: resuming it for this step`)
    const bad = await l02("spawn", "bad", "--agent-config", join(dataDir, "missing.yaml"))
    expect(bad.code).toBe(1)
    expect(bad.stderr).toMatch(/^E2001: --agent-config .*missing\.yaml is not an agent config/m)
  }, 120_000)
})

describe("l02 on an older Node", () => {
  // The host's own Node, when it is older than the engines allow (the Node npm ci installs is newer).
  const hostNode = ["/usr/bin/node", "/usr/local/bin/node"].find((path) => existsSync(path) && Number(spawnSync(path, ["-p", "process.versions.node.split('.')[0]"], { encoding: "utf8" }).stdout.trim()) < 22)
  it.runIf(hostNode !== undefined)("refuses with one line saying which Node it needs and how to run it", () => {
    const bin = new URL("../../bin/l02.js", import.meta.url).pathname
    const result = spawnSync(hostNode!, [bin, "ls"], { encoding: "utf8" })
    expect(result.status).toBe(1)
    expect(result.stderr.trim().split("\n")).toHaveLength(1)
    expect(result.stderr).toMatch(/^l02 needs Node >= 22\.19, and this is v\d+/)
    expect(result.stderr).toContain("npx l02")
  })
})

describe("l02 beside a running l02 serve", () => {
  it("talks to the server that holds the data directory instead of failing on its store, and goes back to embedding once it stops", async () => {
    const served = mkdtempSync(join(tmpdir(), "l02-cli-served-"))
    const server = spawn(process.execPath, [main, "serve", "--port", "0", "--data-dir", served], { stdio: ["ignore", "pipe", "inherit"] })
    try {
      const url = await new Promise<string>((resolvePromise, reject) => {
        let out = ""
        server.stdout!.on("data", (d: Buffer) => {
          out += d.toString()
          const match = /serving on (http:\/\/\S+?) /.exec(out)
          if (match !== null) resolvePromise(match[1]!)
        })
        server.on("exit", (code) => reject(new Error(`l02 serve exited with ${code}: ${out}`)))
      })
      expect(existsSync(join(served, "serve.json"))).toBe(true)
      const at = (...args: Array<string>) => run(process.execPath, [main, ...args, "--data-dir", served], { timeout: 60_000 })
      const spawned = await at("spawn", "beside", "--trust", "TRUSTED", "--json")
      expect(spawned.stderr).toBe("")
      const { agentId } = JSON.parse(spawned.stdout) as { agentId: string }
      const listed = await at("ls")
      expect(listed.stderr).toContain(`l02 serve holds ${served}: talking to it at ${url}`)
      expect(listed.stdout).toContain(agentId)
      const remote = (await (await fetch(`${url}/v1/agents`)).json()) as { agents: Array<{ agentId: string }> }
      expect(remote.agents.map((a) => a.agentId)).toEqual([agentId])
      await at("terminate", agentId, "--force")
      server.kill("SIGTERM")
      await new Promise((r) => server.once("exit", r))
      expect(existsSync(join(served, "serve.json"))).toBe(false)
      // Embedded again: the store the server left answers.
      const after = JSON.parse((await at("ls", "--json")).stdout) as Array<{ agentId: string; state: string }>
      expect(after).toMatchObject([{ agentId, state: "terminated" }])
      // A file left by a server that died: nothing answers there, so it is ignored.
      writeFileSync(join(served, "serve.json"), JSON.stringify({ url: "http://127.0.0.1:9", pid: 1 }))
      const stale = await at("ls")
      expect(stale.stderr).not.toContain("talking to it")
      expect(stale.stdout).toContain(agentId)
    } finally {
      server.kill("SIGKILL")
      rmSync(served, { recursive: true, force: true })
    }
  }, 120_000)
})

describe("l02 workflow", () => {
  it("runs the worked example of docs/workflows.md on the embedded default, showing each node, then lists and shows the run", async () => {
    const example = new URL("../../docs/examples/review.yaml", import.meta.url).pathname
    const ran = await l02("workflow", "run", example, "--input", '{"topic":"a CSV parser"}')
    expect(ran.code).toBe(0)
    for (const line of ["▶ plan", "✓ plan", "✓ draft", "✓ tests", "✓ review", "- rework skipped", "✓ publish", "run completed"]) expect(ran.stderr).toContain(line)
    expect(ran.stdout).toMatch(/plan-draft-review {2}completed/)
    expect(ran.stdout).toContain('output: {"publish":{"text":"echo: publish a CSV parser"')
    const runs = JSON.parse((await l02("workflow", "ls", "--json")).stdout) as Array<{ workflowId: string; state: string }>
    expect(runs.at(-1)!.state).toBe("completed")
    const shown = JSON.parse((await l02("workflow", "get", runs.at(-1)!.workflowId, "--json")).stdout) as { nodes: Record<string, { state: string }> }
    expect(shown.nodes.rework!.state).toBe("skipped")
    const signal = await l02("workflow", "signal", runs.at(-1)!.workflowId, "review", "{}")
    expect(signal.code).toBe(1)
    expect(signal.stderr).toMatch(/^E2031: /m)
    const bad = await l02("workflow", "run", example, "--input", "{not json")
    expect(bad.stderr).toMatch(/^E2001: --input is not JSON/m)
  }, 120_000)
})
