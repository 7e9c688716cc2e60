/**
 * Renders an XState machine definition as a Mermaid state diagram, so the diagrams in docs/machines
 * are generated from the machines themselves and cannot drift from them.
 */
import type { AnyStateMachine } from "xstate"

/** The parts of an XState state node that the renderers read (Mermaid here, SVG for the dashboard). */
export interface MachineNode {
  readonly id: string
  readonly key: string
  readonly type: string
  readonly initial?: { readonly target: ReadonlyArray<{ readonly id: string }> } | undefined
  readonly states: Readonly<Record<string, MachineNode>>
  readonly transitions: ReadonlyMap<
    string,
    ReadonlyArray<{ readonly target?: ReadonlyArray<{ readonly id: string }> | undefined; readonly guard?: unknown; readonly actions: ReadonlyArray<unknown> }>
  >
  readonly invoke: ReadonlyArray<{ readonly id: string; readonly src: unknown }>
}

const nameOf = (id: string) => id.replaceAll(".", "_")

const labelOf = (event: string, guard: unknown): string => {
  let label = event
  const done = /^xstate\.done\.actor\.(.+)$/.exec(event)
  const error = /^xstate\.error\.actor\.(.+)$/.exec(event)
  const after = /^xstate\.after\.([^.]+)\./.exec(event)
  if (done) label = `${done[1]} done`
  else if (error) label = `${error[1]} error`
  else if (after) label = `after ${after[1]}`
  const guardName = typeof guard === "string" ? guard : (guard as { type?: string } | undefined)?.type
  return guardName === undefined ? label : `${label} [${guardName}]`
}

/** Mermaid `stateDiagram-v2` source of the machine: states, nesting, invoked actors and every transition. */
export const toMermaid = (machine: AnyStateMachine): string => {
  const lines: Array<string> = ["stateDiagram-v2"]
  const emit = (node: MachineNode, depth: number) => {
    const pad = "  ".repeat(depth)
    const children = Object.values(node.states)
    if (node.initial !== undefined && node.initial.target.length > 0) {
      lines.push(`${pad}[*] --> ${nameOf(node.initial.target[0]!.id)}`)
    }
    for (const child of children) {
      if (Object.keys(child.states).length > 0) {
        lines.push(`${pad}state ${nameOf(child.id)} {`)
        emit(child, depth + 1)
        lines.push(`${pad}}`)
      }
      for (const inv of child.invoke) lines.push(`${pad}${nameOf(child.id)} : invoke ${String(inv.src)}`)
      if (child.type === "final") lines.push(`${pad}${nameOf(child.id)} --> [*]`)
    }
  }
  const root = machine.root as unknown as MachineNode
  emit(root, 1)
  const all: Array<MachineNode> = []
  const collect = (n: MachineNode) => {
    all.push(n)
    for (const c of Object.values(n.states)) collect(c)
  }
  collect(root)
  for (const node of all) {
    for (const [event, transitions] of node.transitions) {
      for (const t of transitions) {
        const label = labelOf(event, t.guard)
        const targets = t.target ?? []
        if (targets.length === 0) {
          if (t.actions.length > 0 && node !== root) lines.push(`  ${nameOf(node.id)} --> ${nameOf(node.id)} : ${label}`)
          continue
        }
        const from = node === root ? "(any state)" : nameOf(node.id)
        for (const target of targets) {
          if (node === root) lines.push(`  note right of ${nameOf(target.id)} : any state on ${label}`)
          else lines.push(`  ${from} --> ${nameOf(target.id)} : ${label}`)
        }
      }
    }
  }
  return `${lines.join("\n")}\n`
}
