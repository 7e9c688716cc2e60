// The generated documents of docs/machines, shared by the generator and the drift test.
import type { AnyStateMachine } from "xstate"
import { toMermaid } from "../src/runtime/machineDiagram.ts"

export const machineDocs = (machines: Record<string, AnyStateMachine>): Record<string, string> =>
  Object.fromEntries(
    Object.entries(machines).map(([name, machine]) => [
      `${name}.md`,
      `# The ${name} machine\n\nGenerated from \`machines/${name}Machine.ts\` by \`npm run docs:machines\`; a test fails when this file drifts from the definition.\n\n\`\`\`mermaid\n${toMermaid(machine)}\`\`\`\n`
    ])
  )
