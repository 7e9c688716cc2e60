// A long step in a terminal, against `l02 serve` holding the data directory: Ctrl-C detaches from
// `l02 exec` without cancelling and says how to go on; `l02 attach RUN --from N` continues where it
// left off; `l02 runs` and `l02 cancel` show and end runs. Process backend, SQLite store.
import { type ChildProcess, spawn } from "node:child_process"
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { createInterface } from "node:readline"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { openTerminal } from "./terminalSupport.ts"

const main = new URL("../../src/cli/main.ts", import.meta.url).pathname
const prompt = "person$ "
// Answers each input line with `tick 1` ... `tick 25`, one every 200 ms, then its done line.
const ticker = `while read l; do i=0; while [ $i -lt 25 ]; do i=$((i+1)); printf '{"type":"output","text":"tick %d"}\\n' $i; sleep 0.2; done; printf '{"type":"done"}\\n'; done`

describe("a run in a terminal, held by l02 serve", () => {
  const home = mkdtempSync(join(tmpdir(), "l02-tty-runs-"))
  const env = { PATH: `${home}:${process.env.PATH ?? "/usr/bin:/bin"}`, HOME: home, L02_RUNTIME__DATA_DIR: join(home, "data") }
  let server: ChildProcess
  let url = ""
  const terminal = openTerminal({ env, prompt })

  beforeAll(async () => {
    writeFileSync(join(home, "l02"), `#!/bin/sh\nexec "${process.execPath}" "${main}" "$@"\n`)
    chmodSync(join(home, "l02"), 0o755)
    writeFileSync(join(home, "ticker.sh"), `${ticker}\n`)
    chmodSync(home, 0o711)
    server = spawn(process.execPath, [main, "serve", "--port", "0"], { env: { ...env, L02_POOLS__WARM: "[]" }, stdio: ["ignore", "pipe", "inherit"] })
    url = await new Promise<string>((resolve, reject) => {
      createInterface({ input: server.stdout! }).on("line", (line) => {
        const m = /serving on (http:\/\/\S+)/.exec(line)
        if (m !== null) resolve(m[1]!)
      })
      server.once("exit", (code) => reject(new Error(`l02 serve exited with ${code}`)))
    })
    await terminal.ready()
  }, 90_000)
  afterAll(async () => {
    terminal.close()
    server.kill("SIGTERM")
    await new Promise((resolve) => server.once("exit", resolve))
    rmSync(home, { recursive: true, force: true })
  }, 60_000)

  it("Ctrl-C detaches from l02 exec and the run goes on; l02 attach --from continues it without a gap or a repeat", async () => {
    const spawned = await terminal.type(`l02 spawn ticker --trust TRUSTED --command 'sh ${home}/ticker.sh'`)
    const agentId = spawned.find((l) => /running/.test(l))!.split(" ")[0]!
    expect(agentId, spawned.join("\n")).toMatch(/^[0-9a-f-]{36}$/)

    const from = terminal.output().length
    terminal.write(`l02 exec ${agentId} go\n`)
    await terminal.waitFor(from, (screen) => screen.includes("tick 3"), "third tick")
    terminal.write("\x03")
    const detached = await terminal.waitFor(from, () => terminal.prompted(from), "prompt after Ctrl-C")
    const runLine = detached.find((l) => /^run [0-9a-f-]{36} \(Ctrl-C detaches/.test(l))
    expect(runLine, detached.join("\n")).toBeDefined()
    const runId = runLine!.split(" ")[1]!
    const note = detached.find((l) => l.startsWith(`detached from run ${runId} after event `))
    expect(note, detached.join("\n")).toBeDefined()
    const seen = Number(/after event (\d+)/.exec(note!)![1])
    expect(note).toContain(`l02 attach ${runId} --from ${seen}`)
    const before = detached.filter((l) => /^tick \d+$/.test(l))
    expect(before.length).toBe(seen)

    // The run went on in the server.
    expect(((await (await fetch(`${url}/v1/runs/${runId}`)).json()) as { status: string }).status).toBe("running")
    const rest = await terminal.type(`l02 attach ${runId} --from ${seen}; echo "exit=$?"`, 30_000)
    const after = rest.filter((l) => /^tick \d+$/.test(l))
    expect([...before, ...after]).toEqual(Array.from({ length: 25 }, (_, i) => `tick ${i + 1}`))
    expect(rest.at(-1)).toBe("exit=0")

    const listed = await terminal.type(`l02 runs ${agentId}`)
    expect(listed.find((l) => l.startsWith("l02 serve holds"))).toContain(`talking to it at ${url}`)
    expect(listed.find((l) => /^RUN\s+AGENT\s+STATUS\s+EVENTS/.test(l)), listed.join("\n")).toBeDefined()
    expect(listed.find((l) => l.startsWith(runId))).toMatch(/completed\s+27\s/)

    // A detached step, cancelled.
    const started = await terminal.type(`l02 exec ${agentId} --detach again`)
    const second = started.find((l) => /^[0-9a-f-]{36}$/.test(l))!
    expect(second, started.join("\n")).toBeDefined()
    const cancelled = await terminal.type(`l02 cancel ${second}`)
    expect(cancelled.at(-1)).toMatch(new RegExp(`^${second} cancelled after event \\d+$`))
    const attachedToCancelled = await terminal.type(`l02 attach ${second} --from 1000; echo "exit=$?"`)
    expect(attachedToCancelled.find((l) => l.startsWith("E2037:")), attachedToCancelled.join("\n")).toBeDefined()
    expect(attachedToCancelled.at(-1)).toBe("exit=1")
  }, 120_000)
})
