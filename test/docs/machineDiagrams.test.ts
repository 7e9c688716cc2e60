import { readFileSync } from "node:fs"
import { describe, expect, it } from "vitest"
import { agentMachine } from "../../machines/agentMachine.ts"
import { fleetMachine } from "../../machines/fleetMachine.ts"
import { workflowMachine } from "../../machines/workflowMachine.ts"
import { machineDocs } from "../../scripts/machineDocs.ts"

describe("docs/machines", () => {
  it("matches the machine definitions (run `npm run docs:machines` after changing a machine)", () => {
    for (const [file, expected] of Object.entries(machineDocs({ agent: agentMachine, fleet: fleetMachine, workflow: workflowMachine }))) {
      expect(readFileSync(new URL(`../../docs/machines/${file}`, import.meta.url), "utf8"), file).toBe(expected)
    }
  })

  it("shows every state and every user operation of the agent machine", () => {
    const text = machineDocs({ agent: agentMachine })["agent.md"]!
    for (const s of ["pending", "spawning", "running_idle", "running_busy", "suspending", "suspended", "resuming", "terminating_graceful", "terminating_forced", "terminated", "failed"]) {
      expect(text).toContain(`agent_${s}`)
    }
    for (const e of ["agent.spawn", "agent.suspend", "agent.resume", "agent.terminate", "agent.restart", "after spawnTimeout", "after gracePeriod"]) {
      expect(text).toContain(e)
    }
  })
})
