/**
 * The live dashboard of `l02 serve` (GET /dashboard): one self-contained HTML page, inline CSS and
 * JavaScript, no external assets, so it works where no CDN can be reached.
 *
 * The page reads the fleet over the HTTP API (GET /v1/fleet, /v1/agents, /v1/workflows, /healthz) and
 * follows it live over Server-Sent Events from GET /v1/events. A selected workflow run's graph is drawn
 * with each node's live state. The agent machine is drawn server-side as SVG and the
 * selected agent's current state is highlighted on it. With API keys configured the page asks for a
 * key, sends it as a bearer token, and passes it to the event stream as `?access_token=` (EventSource
 * cannot send headers; the server accepts that parameter on the event stream only, for read scope).
 */
import { createHash } from "node:crypto"
import type { AnyStateMachine } from "xstate"
import { exportableMachines } from "../../runtime/inspector.ts"
import { machineSvg } from "./machineSvg.ts"

const style = `
:root{--bg:#0f1419;--panel:#171d24;--line:#2a333d;--text:#d7dde4;--muted:#8a96a3;--accent:#4fb3ff;--ok:#3fb950;--warn:#d29922;--bad:#f85149;--sus:#a371f7}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;background:var(--bg);color:var(--text)}
header{display:flex;align-items:center;gap:16px;padding:12px 20px;border-bottom:1px solid var(--line);background:var(--panel)}
header h1{font-size:16px;margin:0;font-weight:600}
header .meta{color:var(--muted);font-size:13px}
#conn{margin-left:auto;padding:2px 10px;border-radius:10px;font-size:12px;background:var(--line)}
#conn.live{background:#12361f;color:var(--ok)}#conn.down{background:#3d1a1a;color:var(--bad)}
main{display:grid;grid-template-columns:minmax(0,3fr) minmax(0,2fr);gap:16px;padding:16px 20px}
section{background:var(--panel);border:1px solid var(--line);border-radius:8px;padding:12px 14px;min-width:0}
section h2{font-size:13px;text-transform:uppercase;letter-spacing:.06em;color:var(--muted);margin:0 0 10px}
.wide{grid-column:1/-1}
#cards{display:flex;flex-wrap:wrap;gap:10px}
.card{border:1px solid var(--line);border-radius:6px;padding:6px 12px;min-width:96px}
.card b{display:block;font-size:20px}.card span{color:var(--muted);font-size:12px}
table{width:100%;border-collapse:collapse;font-size:13px}
th{text-align:left;color:var(--muted);font-weight:500;border-bottom:1px solid var(--line);padding:4px 6px}
td{padding:5px 6px;border-bottom:1px solid #1f262e;white-space:nowrap;overflow:hidden;text-overflow:ellipsis;max-width:220px}
tbody tr{cursor:pointer}tbody tr:hover{background:#1c242d}tbody tr.selected{background:#1d2c3b}
.pill{display:inline-block;padding:0 8px;border-radius:9px;background:var(--line)}
.pill.running{background:#12361f;color:var(--ok)}.pill.suspended,.pill.suspending,.pill.resuming{background:#2a1d45;color:var(--sus)}
.pill.failed{background:#3d1a1a;color:var(--bad)}.pill.spawning,.pill.pending{background:#3a2e12;color:var(--warn)}
.pill.terminated,.pill.terminating{color:var(--muted)}
.bad{color:var(--bad)}.muted{color:var(--muted)}
#transitions{list-style:none;margin:0;padding:0;max-height:320px;overflow:auto;font:12px/1.5 ui-monospace,monospace}
#transitions li{border-bottom:1px solid #1f262e;padding:2px 0}
svg.machine{width:100%;height:auto;display:block}
svg.machine .state rect{fill:#1c242d;stroke:#3a4652;stroke-width:1.5}
svg.machine .state.child rect{fill:#202a35}
svg.machine .state.final rect{stroke-width:3}
svg.machine .state text{fill:var(--text);font-size:13px}
svg.machine .state.child text{font-size:11px}
svg.machine .state.current>rect{fill:#173a5c;stroke:var(--accent);stroke-width:3}
svg.machine .edge line,svg.machine .edge path{stroke:#56626e;stroke-width:1.2;fill:none}
svg.machine .edge text{fill:var(--muted);font-size:9px;paint-order:stroke;stroke:var(--panel);stroke-width:3px;stroke-linejoin:round}
svg.machine .arrowhead{fill:#56626e}
svg.machine .note{fill:var(--muted);font-size:11px}
#detail{font-size:13px;margin-top:8px;display:flex;flex-wrap:wrap;gap:4px 24px}
svg.graph{width:100%;height:auto;display:block}
svg.graph .node rect{fill:#1c242d;stroke:#3a4652;stroke-width:1.5}
svg.graph .node text{fill:var(--text);font-size:12px}
svg.graph .node text.sub{fill:var(--muted);font-size:10px}
svg.graph .node.running rect,svg.graph .node.waiting rect{stroke:var(--accent);stroke-width:3}
svg.graph .node.completed rect{stroke:var(--ok)}svg.graph .node.failed rect{stroke:var(--bad);stroke-width:3}
svg.graph .node.skipped rect,svg.graph .node.cancelled rect{stroke-dasharray:4 3}svg.graph .node.compensated rect{stroke:var(--sus)}
svg.graph path{stroke:#56626e;stroke-width:1.2;fill:none}
#auth{position:fixed;inset:0;background:rgba(5,8,12,.85);display:flex;align-items:center;justify-content:center}
#auth[hidden]{display:none}
#auth form{background:var(--panel);border:1px solid var(--line);border-radius:8px;padding:20px;width:360px}
#auth input{width:100%;padding:8px;margin:8px 0;background:var(--bg);color:var(--text);border:1px solid var(--line);border-radius:4px}
#auth button{padding:6px 14px;background:var(--accent);border:0;border-radius:4px;color:#001018;font-weight:600;cursor:pointer}
#auth .bad{min-height:1.4em;font-size:12px}
`

const script = `
"use strict"
const $ = (selector) => document.querySelector(selector)
const state = { key: sessionStorage.getItem("l02.apiKey") || "", agents: new Map(), selected: undefined, source: undefined, refreshTimer: undefined, transitions: 0, runs: [], run: undefined, runTimer: undefined }

class HttpError extends Error { constructor(status, message) { super(message); this.status = status } }

async function api(path) {
  const response = await fetch(path, { headers: state.key ? { authorization: "Bearer " + state.key } : {} })
  const body = await response.json().catch(() => ({}))
  if (!response.ok) throw new HttpError(response.status, body.error ? body.error.code + ": " + body.error.message : "HTTP " + response.status)
  return body
}

function setConn(text, kind) { const el = $("#conn"); el.textContent = text; el.className = kind || "" }

function cell(row, text, className) { const td = document.createElement("td"); td.textContent = text; if (className) td.className = className; row.appendChild(td); return td }

function bytes(n) { if (n === undefined) return "-"; const u = ["B", "KiB", "MiB", "GiB"]; let i = 0; while (n >= 1024 && i < u.length - 1) { n /= 1024; i++ } return n.toFixed(i === 0 ? 0 : 1) + " " + u[i] }

function renderAgents() {
  const body = $("#agents tbody")
  body.replaceChildren()
  const agents = [...state.agents.values()].sort((a, b) => (a.createdAt || "").localeCompare(b.createdAt || ""))
  for (const agent of agents) {
    const row = document.createElement("tr")
    row.dataset.agentId = agent.agentId
    if (agent.agentId === state.selected) row.className = "selected"
    cell(row, agent.agentId, "id").title = agent.agentId
    cell(row, agent.name || "")
    const st = cell(row, "", "state")
    const pill = document.createElement("span")
    pill.className = "pill " + agent.state
    pill.textContent = agent.activity ? agent.state + "/" + agent.activity : agent.state
    st.appendChild(pill)
    cell(row, String(agent.restartCount ?? 0))
    const usage = agent.resourceUsage || {}
    cell(row, usage.cpuPercent === undefined ? "-" : usage.cpuPercent.toFixed(1) + " %")
    cell(row, bytes(usage.memoryBytes))
    cell(row, usage.tokensUsed === undefined ? "-" : String(usage.tokensUsed))
    const health = agent.lastError ? agent.lastError.code : "ok"
    cell(row, health, agent.lastError ? "bad health" : "health").title = agent.lastError ? agent.lastError.message : ""
    cell(row, agent.updatedAt ? new Date(agent.updatedAt).toLocaleTimeString() : "-", "muted")
    row.addEventListener("click", () => select(agent.agentId))
    body.appendChild(row)
  }
  $("#empty").hidden = agents.length > 0
  highlight()
}

function renderFleet(fleet, health) {
  const cards = $("#cards")
  cards.replaceChildren()
  const add = (label, value, id) => {
    const card = document.createElement("div"); card.className = "card"; if (id) card.id = id
    const b = document.createElement("b"); b.textContent = String(value)
    const span = document.createElement("span"); span.textContent = label
    card.append(b, span); cards.appendChild(card)
  }
  add("agents", fleet.total, "fleet-total")
  for (const [name, count] of Object.entries(fleet.byState)) if (count > 0) add(name, count, "fleet-" + name)
  add("hibernated", fleet.hibernated)
  add("restarts pending", fleet.pendingRestarts)
  add("restarts total", fleet.restartsTotal)
  add("server", health ? health.status : "?", "server-health")
  $("#runtime").textContent = fleet.runtimeId + " on " + fleet.backend
}

function highlight() {
  for (const el of document.querySelectorAll("svg.machine .state.current")) el.classList.remove("current")
  const agent = state.selected && state.agents.get(state.selected)
  const detail = $("#detail")
  if (!agent) { $("#selected").textContent = "select an agent"; detail.replaceChildren(); return }
  $("#selected").textContent = agent.agentId + " (" + (agent.name || "") + ")"
  const paths = [agent.state]
  if (agent.activity) paths.push(agent.state + "." + agent.activity)
  for (const path of paths) { const el = document.querySelector('svg.machine .state[data-state="' + CSS.escape(path) + '"]'); if (el) el.classList.add("current") }
  const lines = [["state", agent.activity ? agent.state + "/" + agent.activity : agent.state], ["sandbox", agent.sandboxId || "-"], ["backend", agent.backend || "-"], ["trust", agent.sandbox ? agent.sandbox.trustLevel : "-"], ["restarts", String(agent.restartCount ?? 0)], ["checkpoint", agent.checkpointId || "-"], ["last error", agent.lastError ? agent.lastError.code + ": " + agent.lastError.message : "-"]]
  detail.replaceChildren(...lines.map(([k, v]) => { const div = document.createElement("div"); const b = document.createElement("span"); b.className = "muted"; b.textContent = k + ": "; div.append(b, document.createTextNode(v)); return div }))
}

function select(agentId) { state.selected = agentId; renderAgents() }

function addTransition(event) {
  const list = $("#transitions")
  const li = document.createElement("li")
  const time = new Date(event.at).toLocaleTimeString()
  const change = event.toState ? (event.fromState ? event.fromState + " → " : "→ ") + event.toState : ""
  li.textContent = time + "  " + event.agentId + "  " + event.type + (change ? "  " + change : "")
  list.prepend(li)
  while (list.children.length > 100) list.lastElementChild.remove()
  state.transitions++
}

async function refreshFleet() {
  const [fleet, health] = await Promise.all([api("/v1/fleet"), api("/healthz").catch(() => undefined)])
  renderFleet(fleet, health)
}

async function refreshAll() {
  const [list] = await Promise.all([api("/v1/agents"), refreshFleet(), refreshRuns().catch(() => undefined)])
  // The list carries no live usage: a running agent's own answer has it (sampled from its sandbox).
  const previous = state.agents
  state.agents = new Map(list.agents.map((a) => [a.agentId, { ...a, resourceUsage: a.resourceUsage || (previous.get(a.agentId) || {}).resourceUsage }]))
  if (state.selected === undefined && list.agents.length > 0) state.selected = list.agents[0].agentId
  renderAgents()
  const running = list.agents.filter((a) => a.state === "running").slice(0, 50)
  await Promise.all(running.map((a) => api("/v1/agents/" + encodeURIComponent(a.agentId)).then((full) => state.agents.set(a.agentId, full)).catch(() => undefined)))
  if (running.length > 0) renderAgents()
}

const dirty = new Set()
function scheduleRefresh(agentId) {
  dirty.add(agentId)
  if (state.refreshTimer !== undefined) return
  state.refreshTimer = setTimeout(async () => {
    state.refreshTimer = undefined
    const ids = [...dirty]; dirty.clear()
    await Promise.all(ids.map((id) => api("/v1/agents/" + encodeURIComponent(id)).then((a) => state.agents.set(id, a)).catch(() => undefined)))
    renderAgents()
    await refreshFleet().catch(() => undefined)
  }, 150)
}

const svgNs = "http://www.w3.org/2000/svg"
function svgEl(name, attrs) { const el = document.createElementNS(svgNs, name); for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v)); return el }

// A run's graph in columns by depth (the longest path from a node without incoming edges), each node
// drawn with its live state.
function drawRun(run) {
  const holder = $("#graph")
  holder.replaceChildren()
  if (!run) { $("#run-title").textContent = "select a run"; return }
  $("#run-title").textContent = run.name + " (" + run.workflowId + "): " + run.state + (run.error ? "  " + run.error.code + ": " + run.error.message : "")
  const nodes = run.graph.nodes, edges = run.graph.edges || []
  const depth = new Map(nodes.map((n) => [n.id, 0]))
  for (let i = 0; i < nodes.length; i++) for (const e of edges) depth.set(e.to, Math.max(depth.get(e.to), depth.get(e.from) + 1))
  const columns = new Map()
  for (const n of nodes) { const d = depth.get(n.id); if (!columns.has(d)) columns.set(d, []); columns.get(d).push(n) }
  const w = 130, h = 42, gapX = 60, gapY = 20, pos = new Map()
  let rows = 0
  for (const [d, list] of columns) { list.forEach((n, i) => pos.set(n.id, { x: 10 + d * (w + gapX), y: 10 + i * (h + gapY) })); rows = Math.max(rows, list.length) }
  const svg = svgEl("svg", { class: "graph", viewBox: "0 0 " + (20 + columns.size * (w + gapX) - gapX) + " " + (20 + rows * (h + gapY) - gapY), role: "img" })
  svg.appendChild(svgEl("title")).textContent = "workflow " + run.name
  for (const e of edges) {
    const a = pos.get(e.from), b = pos.get(e.to)
    if (!a || !b) continue
    const x1 = a.x + w, y1 = a.y + h / 2, x2 = b.x, y2 = b.y + h / 2
    svg.appendChild(svgEl("path", { d: "M" + x1 + " " + y1 + " C" + (x1 + gapX / 2) + " " + y1 + " " + (x2 - gapX / 2) + " " + y2 + " " + x2 + " " + y2 }))
  }
  for (const n of nodes) {
    const p = pos.get(n.id), record = run.nodes[n.id] || { state: "pending", attempts: 0 }
    const g = svgEl("g", { class: "node " + record.state, "data-node": n.id, transform: "translate(" + p.x + "," + p.y + ")" })
    g.appendChild(svgEl("rect", { width: w, height: h, rx: 6 }))
    const label = svgEl("text", { x: 8, y: 17 }); label.textContent = n.id + " (" + n.kind + ")"; g.appendChild(label)
    const sub = svgEl("text", { x: 8, y: 33, class: "sub" }); sub.textContent = record.state + (record.attempts > 1 ? ", try " + record.attempts : ""); g.appendChild(sub)
    svg.appendChild(g)
  }
  holder.appendChild(svg)
}

function renderRuns() {
  const body = $("#runs tbody")
  body.replaceChildren()
  for (const run of state.runs) {
    const row = document.createElement("tr")
    row.dataset.workflowId = run.workflowId
    if (state.run && state.run.workflowId === run.workflowId) row.className = "selected"
    cell(row, run.workflowId, "id").title = run.workflowId
    cell(row, run.name)
    const st = cell(row, "", "state"); const pill = document.createElement("span"); pill.className = "pill " + run.state; pill.textContent = run.state; st.appendChild(pill)
    cell(row, run.updatedAt ? new Date(run.updatedAt).toLocaleTimeString() : "-", "muted")
    row.addEventListener("click", () => selectRun(run.workflowId))
    body.appendChild(row)
  }
  $("#no-runs").hidden = state.runs.length > 0
}

async function selectRun(workflowId) {
  state.run = await api("/v1/workflows/" + encodeURIComponent(workflowId))
  renderRuns()
  drawRun(state.run)
}

async function refreshRuns() {
  state.runs = (await api("/v1/workflows")).workflows
  if (!state.run && state.runs.length > 0) { await selectRun(state.runs[state.runs.length - 1].workflowId); return }
  renderRuns()
}

function scheduleRunRefresh(workflowId) {
  if (state.runTimer !== undefined) return
  state.runTimer = setTimeout(async () => {
    state.runTimer = undefined
    await refreshRuns().catch(() => undefined)
    if (state.run && state.run.workflowId === workflowId) await selectRun(workflowId).catch(() => undefined)
  }, 150)
}

function onEvent(event) {
  addTransition(event)
  if (event.type.startsWith("workflow.")) { scheduleRunRefresh(event.agentId); return }
  const known = state.agents.get(event.agentId) || { agentId: event.agentId, restartCount: 0 }
  // A replayed event older than what the agent's own answer says changes only the list above.
  if (event.toState && !(known.updatedAt && event.at < known.updatedAt)) {
    const activity = event.toState === "running" ? known.activity : undefined
    state.agents.set(event.agentId, { ...known, state: event.toState, activity, updatedAt: event.at })
    if (state.selected === undefined) state.selected = event.agentId
    renderAgents()
  }
  scheduleRefresh(event.agentId)
}

function connect() {
  if (state.source) state.source.close()
  // The newest recorded transitions first, so the list is not empty until something happens.
  const source = new EventSource("/v1/events?recent=50" + (state.key ? "&access_token=" + encodeURIComponent(state.key) : ""))
  state.source = source
  setConn("connecting", "")
  source.onopen = () => { setConn("live", "live"); refreshAll().catch(() => undefined) }
  source.onmessage = (message) => onEvent(JSON.parse(message.data))
  source.onerror = () => {
    setConn(source.readyState === EventSource.CLOSED ? "disconnected" : "reconnecting", "down")
    if (source.readyState === EventSource.CLOSED) setTimeout(() => start(), 3000)
  }
}

function askForKey(message) {
  if (state.source) { state.source.close(); state.source = undefined }
  setConn("needs an API key", "down")
  $("#auth-error").textContent = message || ""
  $("#auth").hidden = false
  $("#key").focus()
}

async function start() {
  try {
    await refreshAll()
    $("#auth").hidden = true
    connect()
  } catch (error) {
    if (error.status === 401 || error.status === 403) askForKey(state.key ? error.message : "")
    else { setConn("error: " + error.message, "down"); setTimeout(() => start(), 3000) }
  }
}

$("#auth form").addEventListener("submit", (e) => {
  e.preventDefault()
  state.key = $("#key").value.trim()
  sessionStorage.setItem("l02.apiKey", state.key)
  start()
})
setInterval(() => { if (state.source && state.source.readyState === EventSource.OPEN) refreshAll().catch(() => undefined) }, 5000)
// The event stream opens after the page has loaded: an open stream would keep it loading.
if (document.readyState === "complete") start()
else window.addEventListener("load", () => start(), { once: true })
`

const hash = (text: string) => `'sha256-${createHash("sha256").update(text, "utf8").digest("base64")}'`

/** The rendered page and the Content-Security-Policy that allows exactly its inline script and style. */
export interface DashboardPage {
  readonly html: string
  readonly contentSecurityPolicy: string
}

/** Renders the dashboard page for `machine` (default the agent machine); pure, so it can be cached. */
export const dashboardPage = (machine: AnyStateMachine = exportableMachines.agent): DashboardPage => {
  const diagram = machineSvg(machine)
  const html = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>L02 dashboard</title>
<link rel="icon" href="data:,">
<style>${style}</style>
</head>
<body>
<header><h1>L02 Agent Runtime</h1><span class="meta" id="runtime"></span><span id="conn">loading</span></header>
<main>
<section class="wide"><h2>Fleet</h2><div id="cards"></div></section>
<section><h2>Agents</h2>
<table id="agents"><thead><tr><th>agent</th><th>name</th><th>state</th><th>restarts</th><th>cpu</th><th>memory</th><th>tokens</th><th>health</th><th>updated</th></tr></thead><tbody></tbody></table>
<p id="empty" class="muted">No agents yet: spawn one with POST /v1/agents or <code>l02 spawn</code>.</p>
</section>
<section><h2>Recent transitions</h2><ul id="transitions"></ul></section>
<section><h2>Workflow runs</h2>
<table id="runs"><thead><tr><th>run</th><th>name</th><th>state</th><th>updated</th></tr></thead><tbody></tbody></table>
<p id="no-runs" class="muted">No workflow runs yet: start one with POST /v1/workflows or <code>l02 workflow run</code>.</p>
</section>
<section><h2>Workflow: <span id="run-title">select a run</span></h2><div id="graph"></div></section>
<section class="wide"><h2>Agent machine: <span id="selected">select an agent</span></h2>${diagram.svg}<div id="detail"></div></section>
</main>
<div id="auth" hidden><form><h2>API key</h2><p class="muted">This server needs an API key with the read scope (operate to act on agents). It is kept in this tab's session storage only.</p>
<input id="key" type="password" autocomplete="off" placeholder="API key"><div id="auth-error" class="bad"></div><button type="submit">Connect</button></form></div>
<script>${script}</script>
</body>
</html>
`
  return {
    html,
    contentSecurityPolicy: `default-src 'none'; script-src ${hash(script)}; style-src ${hash(style)}; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'`
  }
}
