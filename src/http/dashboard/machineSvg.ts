/**
 * Draws a machine's states and transitions as inline SVG, server-side, so the dashboard shows the
 * machine without fetching a diagram library from a CDN. Generated from the machine definition itself.
 *
 * Layout: top-level states in columns by their distance from the initial state (states reached only
 * through machine-wide transitions follow at the end), one child box per substate inside its parent.
 * Every state box carries `data-state="<path>"` (`running`, `running.idle`) for the page to highlight.
 */
import type { AnyStateMachine } from "xstate"
import type { MachineNode } from "../../runtime/machineDiagram.ts"

/** A drawn machine: the SVG and the state paths it contains. */
export interface MachineSvg {
  readonly svg: string
  /** Every drawn state path, e.g. `running`, `running.idle`. */
  readonly states: ReadonlyArray<string>
}

const escapeXml = (text: string) => text.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;").replaceAll('"', "&quot;")

const eventLabel = (event: string): string => {
  const done = /^xstate\.done\.actor\.(.+)$/.exec(event)
  if (done) return `${done[1]} done`
  const error = /^xstate\.error\.actor\.(.+)$/.exec(event)
  if (error) return `${error[1]} error`
  const after = /^xstate\.after\.([^.]+)\./.exec(event)
  if (after) return `after ${after[1]}`
  return event
}

const boxWidth = 124
const boxHeight = 44
const childHeight = 30
// Wide enough for an edge label's line (about 18 characters at the labels' size) between two boxes.
const columnGap = 100
const labelChars = 18
const labelLineHeight = 10
/** How far an arc over a row rises above it (the top margin leaves room for it). */
const arcRise = 22
const rowGap = 56
const margin = 24

interface Box {
  readonly path: string
  readonly x: number
  readonly y: number
  readonly w: number
  readonly h: number
}

/** Where the segment from the centre of `from` towards `to` leaves the box `from`. */
const exitPoint = (from: Box, toX: number, toY: number): readonly [number, number] => {
  const cx = from.x + from.w / 2
  const cy = from.y + from.h / 2
  const dx = toX - cx
  const dy = toY - cy
  if (dx === 0 && dy === 0) return [cx, cy]
  const scale = Math.min(dx === 0 ? Infinity : from.w / 2 / Math.abs(dx), dy === 0 ? Infinity : from.h / 2 / Math.abs(dy))
  return [cx + dx * scale, cy + dy * scale]
}

/** Renders `machine` as an SVG state graph (see the module comment for the layout). */
export const machineSvg = (machine: AnyStateMachine): MachineSvg => {
  const root = machine.root as unknown as MachineNode
  const prefix = `${root.id}.`
  const pathOf = (id: string) => (id.startsWith(prefix) ? id.slice(prefix.length) : id)
  const topOf = (id: string) => pathOf(id).split(".")[0]!
  const top = Object.values(root.states)

  // Edges between top-level states, labels merged per ordered pair.
  const edges = new Map<string, { readonly from: string; readonly to: string; readonly labels: Set<string> }>()
  const global: Array<{ readonly to: string; readonly label: string }> = []
  const visit = (node: MachineNode) => {
    for (const [event, transitions] of node.transitions) {
      for (const t of transitions) {
        for (const target of t.target ?? []) {
          if (node === root) {
            global.push({ to: pathOf(target.id), label: eventLabel(event) })
            continue
          }
          const from = topOf(node.id)
          const to = topOf(target.id)
          if (from === to) continue
          const key = `${from}>${to}`
          const edge = edges.get(key) ?? { from, to, labels: new Set<string>() }
          edge.labels.add(eventLabel(event))
          edges.set(key, edge)
        }
      }
    }
    for (const child of Object.values(node.states)) visit(child)
  }
  visit(root)

  // Columns by breadth-first distance from the initial state.
  const rank = new Map<string, number>()
  const initial = root.initial?.target[0]
  const queue: Array<string> = initial === undefined ? [] : [topOf(initial.id)]
  if (queue[0] !== undefined) rank.set(queue[0], 0)
  while (queue.length > 0) {
    const current = queue.shift()!
    for (const edge of edges.values()) {
      if (edge.from === current && !rank.has(edge.to)) {
        rank.set(edge.to, rank.get(current)! + 1)
        queue.push(edge.to)
      }
    }
  }
  let next = Math.max(-1, ...rank.values()) + 1
  for (const state of top) {
    if (rank.has(state.key)) continue
    rank.set(state.key, next)
    // Place what this state leads to right after it.
    for (const edge of edges.values()) if (edge.from === state.key && !rank.has(edge.to)) rank.set(edge.to, next + 1)
    next = Math.max(-1, ...rank.values()) + 1
  }

  const columns = new Map<number, Array<MachineNode>>()
  for (const state of top) {
    const r = rank.get(state.key)!
    columns.set(r, [...(columns.get(r) ?? []), state])
  }
  const heightOf = (state: MachineNode) => (Object.keys(state.states).length > 0 ? boxHeight + childHeight + 8 : boxHeight)
  const boxes = new Map<string, Box>()
  const children: Array<Box> = []
  let maxY = 0
  for (const [r, states] of [...columns].sort((a, b) => a[0] - b[0])) {
    let y = margin + arcRise * 2
    for (const state of states) {
      const box: Box = { path: state.key, x: margin + r * (boxWidth + columnGap), y, w: boxWidth, h: heightOf(state) }
      boxes.set(state.key, box)
      const subs = Object.values(state.states)
      const w = (boxWidth - 8 - 4 * (subs.length - 1)) / Math.max(1, subs.length)
      subs.forEach((sub, i) => children.push({ path: pathOf(sub.id), x: box.x + 4 + i * (w + 4), y: box.y + boxHeight - 8, w, h: childHeight }))
      y += box.h + rowGap
      maxY = Math.max(maxY, box.y + box.h)
    }
  }
  const width = margin * 2 + next * boxWidth + (next - 1) * columnGap
  const noteY = maxY + 36
  const height = noteY + 18 * Math.max(1, global.length) + margin

  const parts: Array<string> = []
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" class="machine" viewBox="0 0 ${width} ${height}" role="img" aria-label="${escapeXml(root.id)} machine: states and transitions">`,
    `<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" class="arrowhead"/></marker></defs>`
  )
  for (const edge of edges.values()) {
    const a = boxes.get(edge.from)!
    const b = boxes.get(edge.to)!
    // Between states of one row with others in between, a straight line would run through them: arc over.
    if (a.y === b.y && Math.abs(a.x - b.x) > boxWidth + columnGap) {
      const label = [...edge.labels].join(", ")
      const x1 = a.x + a.w / 2 + (b.x > a.x ? 12 : -12)
      const x2 = b.x + b.w / 2 + (b.x > a.x ? -12 : 12)
      const top = a.y - arcRise
      const mid = (x1 + x2) / 2
      const shown = label.length > labelChars * 2 ? `${label.slice(0, labelChars * 2 - 1)}…` : label
      parts.push(
        `<g class="edge" data-from="${escapeXml(edge.from)}" data-to="${escapeXml(edge.to)}"><title>${escapeXml(`${edge.from} → ${edge.to}: ${label}`)}</title>` +
          `<path d="M${x1.toFixed(1)},${a.y} Q${mid.toFixed(1)},${(top - arcRise).toFixed(1)} ${x2.toFixed(1)},${b.y}" marker-end="url(#arrow)"/>` +
          `<text text-anchor="middle"><tspan x="${mid.toFixed(1)}" y="${(top - 2).toFixed(1)}">${escapeXml(shown)}</tspan></text></g>`
      )
      continue
    }
    // Two edges between the same pair are drawn apart.
    const offset = edges.has(`${edge.to}>${edge.from}`) ? 7 : 0
    const ax = a.x + a.w / 2
    const ay = a.y + boxHeight / 2
    const bx = b.x + b.w / 2
    const by = b.y + boxHeight / 2
    const len = Math.hypot(bx - ax, by - ay) || 1
    const nx = (-(by - ay) / len) * offset
    const ny = ((bx - ax) / len) * offset
    const [x1, y1] = exitPoint({ ...a, h: boxHeight }, bx + nx, by + ny)
    const [x2, y2] = exitPoint({ ...b, h: boxHeight }, ax + nx, ay + ny)
    const label = [...edge.labels].join(", ")
    // One event per line, each short enough for the gap; lines grow away from the edge, so the labels of
    // the two directions between a pair never meet.
    const events = [...edge.labels]
    const lines = (events.length > 3 ? [...events.slice(0, 2), `+${events.length - 2} more`] : events).map((l) => (l.length > labelChars ? `${l.slice(0, labelChars - 1)}…` : l))
    const below = ny > 0 || (offset === 0 && Math.abs(by - ay) > 1)
    const lx = (x1 + x2) / 2 + nx * 1.6
    const ly = (y1 + y2) / 2 + ny * 1.6 + (below ? 9 : -3 - (lines.length - 1) * labelLineHeight)
    const text = lines.map((line, i) => `<tspan x="${lx.toFixed(1)}" y="${(ly + i * labelLineHeight).toFixed(1)}">${escapeXml(line)}</tspan>`).join("")
    parts.push(
      `<g class="edge" data-from="${escapeXml(edge.from)}" data-to="${escapeXml(edge.to)}"><title>${escapeXml(`${edge.from} → ${edge.to}: ${label}`)}</title>` +
        `<line x1="${(x1 + nx).toFixed(1)}" y1="${(y1 + ny).toFixed(1)}" x2="${(x2 + nx).toFixed(1)}" y2="${(y2 + ny).toFixed(1)}" marker-end="url(#arrow)"/>` +
        `<text text-anchor="middle">${text}</text></g>`
    )
  }
  for (const state of top) {
    const box = boxes.get(state.key)!
    const final = state.type === "final" ? " final" : ""
    parts.push(
      `<g class="state${final}" data-state="${escapeXml(box.path)}"><rect x="${box.x}" y="${box.y}" width="${box.w}" height="${box.h}" rx="10"/>` +
        `<text x="${box.x + box.w / 2}" y="${box.y + 26}" text-anchor="middle">${escapeXml(state.key)}</text></g>`
    )
  }
  for (const child of children) {
    parts.push(
      `<g class="state child" data-state="${escapeXml(child.path)}"><rect x="${child.x.toFixed(1)}" y="${child.y}" width="${child.w.toFixed(1)}" height="${child.h}" rx="7"/>` +
        `<text x="${(child.x + child.w / 2).toFixed(1)}" y="${child.y + 19}" text-anchor="middle">${escapeXml(child.path.split(".").at(-1)!)}</text></g>`
    )
  }
  global.forEach((g, i) =>
    parts.push(`<text class="note" x="${margin}" y="${noteY + i * 18}">from any state: ${escapeXml(g.label)} → ${escapeXml(g.to)}</text>`)
  )
  parts.push("</svg>")
  return { svg: parts.join(""), states: [...boxes.keys(), ...children.map((c) => c.path)] }
}
