// `npm start` (l02 demo) on the embedded default: the whole lifecycle, an agent loop with a tool call
// executed in the sandbox, and nothing left running afterwards.
import { execFile } from "node:child_process"
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { promisify } from "node:util"
import { describe, expect, it } from "vitest"

const run = promisify(execFile)

describe("l02 demo", () => {
  it("runs an agent through its lifecycle and a model's tool call in its sandbox", async () => {
    const dir = await mkdtemp(join(tmpdir(), "l02-demo-"))
    try {
      const { stdout } = await run(process.execPath, [new URL("../../src/cli/main.ts", import.meta.url).pathname, "demo", "--data-dir", dir], {
        timeout: 120_000
      })
      for (const transition of ["pending -> spawning", "spawning -> running", "running -> suspending", "suspending -> suspended", "suspended -> resuming", "resuming -> running", "running -> terminating", "terminating -> terminated"]) {
        expect(stdout).toContain(transition)
      }
      expect(stdout).toContain("agent says: echo: hello from the demo")
      expect(stdout).toMatch(/resume while running is refused: E2020/)
      expect(stdout).toMatch(/tool shell -> exit code 0 \| --- stdout --- \| hello from Linux in /)
      expect(stdout).toContain("model answers: The sandbox says hello")
      expect(stdout).toMatch(/done: \d+ state changes; fleet \{\}/)

      // A second run on the same data directory, with an agent of another run in it: the demo says what it is.
      const main = new URL("../../src/cli/main.ts", import.meta.url).pathname
      const leftover = JSON.parse((await run(process.execPath, [main, "spawn", "leftover", "--trust", "TRUSTED", "--json", "--data-dir", dir], { timeout: 60_000 })).stdout) as { agentId: string }
      const again = await run(process.execPath, [main, "demo", "--data-dir", dir], { timeout: 120_000 })
      expect(again.stdout).toMatch(/done: \d+ state changes; fleet \{"running":1\}/)
      expect(again.stdout).toContain(`also in the fleet, from an earlier run: ${leftover.agentId} "leftover" is running (l02 terminate ${leftover.agentId} removes it)`)
      await run(process.execPath, [main, "terminate", leftover.agentId, "--force", "--data-dir", dir], { timeout: 60_000 })
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  }, 180_000)
})
