// Writes docs/machines/*.md: Mermaid diagrams generated from the machine definitions.
import { writeFileSync } from "node:fs"
import { agentMachine } from "../machines/agentMachine.ts"
import { fleetMachine } from "../machines/fleetMachine.ts"
import { workflowMachine } from "../machines/workflowMachine.ts"
import { machineDocs } from "./machineDocs.ts"

for (const [file, text] of Object.entries(machineDocs({ agent: agentMachine, fleet: fleetMachine, workflow: workflowMachine }))) {
  writeFileSync(new URL(`../docs/machines/${file}`, import.meta.url), text)
  console.log(`wrote docs/machines/${file}`)
}
