// The CLI in a terminal, as a person types it: a shell in a pseudo-terminal (util-linux `script`),
// where `l02` runs with a real TTY on stdin, stdout and stderr, so its progress indicator draws and
// its output is what a person reads. Spawn, exec, suspend, resume, terminate on the embedded default
// (process backend, SQLite store); the checks read the screen, with carriage returns applied and
// escape sequences removed, as a terminal shows it.
import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process"
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { screenOf } from "./terminalSupport.ts"

const main = new URL("../../src/cli/main.ts", import.meta.url).pathname
const prompt = "person$ "

describe("l02 in a terminal, as a person types it", () => {
  const home = mkdtempSync(join(tmpdir(), "l02-tty-"))
  let shell: ChildProcessWithoutNullStreams
  let output = ""

  beforeAll(() => {
    // `l02` on the PATH, as `npm link` or an installed package puts it there.
    writeFileSync(join(home, "l02"), `#!/bin/sh\nexec "${process.execPath}" "${main}" "$@"\n`)
    chmodSync(join(home, "l02"), 0o755)
    // The agent's program (the protocol: one output line and done per input line), readable by the sandbox's own uid.
    writeFileSync(
      join(home, "agent.sh"),
      `while read l; do t=$(printf '%s' "$l" | sed -n 's/.*"input":"\\([^"]*\\)".*/\\1/p'); printf '{"type":"output","text":"you said: %s"}\\n{"type":"done"}\\n' "$t"; done\n`
    )
    // The data directory's parents must let the sandboxes' uids through, as a home directory does.
    chmodSync(home, 0o711)
    shell = spawn("script", ["-qfec", "sh -i", "/dev/null"], {
      env: { PATH: `${home}:${process.env.PATH ?? "/usr/bin:/bin"}`, HOME: home, PS1: prompt, TERM: "xterm", L02_RUNTIME__DATA_DIR: join(home, "data") }
    })
    shell.stdout.on("data", (d: Buffer) => (output += d.toString("utf8")))
    shell.stderr.on("data", (d: Buffer) => (output += d.toString("utf8")))
  })
  afterAll(() => {
    shell.kill("SIGKILL")
    rmSync(home, { recursive: true, force: true })
  })

  /** Types a line and waits for the next prompt; returns the screen lines between (the command's own output). */
  const type = async (line: string, timeoutMs = 60_000): Promise<Array<string>> => {
    const from = output.length
    shell.stdin.write(`${line}\n`)
    const deadline = Date.now() + timeoutMs
    while (!output.slice(from).includes(`\n${prompt}`) && !output.slice(from).includes(`\r${prompt}`)) {
      if (Date.now() > deadline) throw new Error(`no prompt after ${JSON.stringify(line)}; the screen shows:\n${screenOf(output.slice(from)).join("\n")}`)
      await new Promise((r) => setTimeout(r, 50))
    }
    const lines = screenOf(output.slice(from))
    // The echo of what was typed first, the next prompt last.
    return lines.slice(1, -1).filter((l) => l !== "")
  }

  it("spawns, executes, suspends, resumes and terminates, each answer a line a person reads", async () => {
    // The first prompt.
    const deadline = Date.now() + 10_000
    while (!output.includes(prompt) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50))
    expect(output).toContain(prompt)
    const spawned = await type(`l02 spawn helper --trust TRUSTED --command 'sh ${home}/agent.sh'; echo "exit=$?"`)
    const line = spawned.find((l) => /running/.test(l))
    expect(line, spawned.join("\n")).toMatch(/^[0-9a-f-]{36}  running  sandbox \S+$/)
    expect(spawned.at(-1)).toBe("exit=0")
    // The indicator was drawn on the terminal and erased: nothing of it stays on the screen.
    expect(output).toMatch(/spawning helper \d+\.\ds/)
    expect(spawned.filter((l) => /spawning/.test(l))).toEqual([])
    const agentId = line!.split(" ")[0]!

    const said = await type(`l02 exec ${agentId} hello there; echo "exit=$?"`)
    expect(said).toEqual(["you said: hello there", "exit=0"])

    const listed = await type("l02 ls")
    expect(listed[0]).toMatch(/^AGENT\s+NAME\s+STATE/)
    expect(listed.find((l) => l.startsWith(agentId))).toMatch(/helper\s+running\/idle\s+TRUSTED/)

    const suspended = await type(`l02 suspend ${agentId}; echo "exit=$?"`)
    expect(suspended[0]).toMatch(/^suspended/)
    expect(suspended.at(-1)).toBe("exit=0")
    const resumed = await type(`l02 resume ${agentId}; echo "exit=$?"`)
    expect(resumed).toEqual(["running", "exit=0"])
    expect(await type(`l02 exec ${agentId} again`)).toEqual(["you said: again"])

    // A mistake reads as one coded line, with the exit status a script can test.
    const wrong = await type(`l02 resume ${agentId}; echo "exit=$?"`)
    expect(wrong[0]).toMatch(/^E2020: /)
    expect(wrong).toHaveLength(2)
    expect(wrong.at(-1)).toBe("exit=1")

    expect(await type(`l02 terminate ${agentId}; echo "exit=$?"`)).toEqual(["terminated", "exit=0"])
    const gone = await type(`l02 get ${agentId} --json`)
    expect(JSON.parse(gone.join("\n"))).toMatchObject({ agentId, state: "terminated" })
  }, 240_000)
})
