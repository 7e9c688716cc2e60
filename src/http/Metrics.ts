/**
 * Prometheus metrics of the runtime, computed from its lifecycle events, its fleet status and the
 * usage of its running agents.
 *
 * Latencies come from the events' own timestamps (`at`), so they measure the runtime, not the HTTP
 * round trip: spawn is `agent.created` to `running`, suspend is `suspending` to `suspended`, resume is
 * `resuming` to `running`. Rendered in the Prometheus text exposition format 0.0.4.
 */
import type { AgentInstance } from "../domain/AgentInstance.ts"
import { errorCatalog, type ErrorCode } from "../domain/ErrorCatalog.ts"
import type { FleetStatus } from "../domain/FleetStatus.ts"
import type { LifecycleEvent } from "../domain/LifecycleEvent.ts"

/** Histogram bucket upper bounds, in seconds. */
export const latencyBuckets: ReadonlyArray<number> = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300]

/** Every agent state, so each `l02_agents` series exists even at zero. */
const agentStates = ["pending", "spawning", "running", "suspending", "suspended", "resuming", "terminating", "terminated", "failed"]

class Histogram {
  readonly counts: Array<number> = latencyBuckets.map(() => 0)
  count = 0
  sum = 0
  observe(seconds: number) {
    this.count += 1
    this.sum += seconds
    latencyBuckets.forEach((bound, i) => {
      if (seconds <= bound) this.counts[i]! += 1
    })
  }
}

type Operation = "spawn" | "suspend" | "resume"

/** The metric state of one server. */
export interface Metrics {
  /** Feeds one lifecycle event. */
  readonly observe: (event: LifecycleEvent) => void
  /** Counts one answered HTTP request. */
  readonly countRequest: (endpoint: string, status: number) => void
  /** The exposition text, with gauges from the fleet status and the usage of the agents given. */
  readonly render: (fleet: FleetStatus, agents?: ReadonlyArray<AgentInstance>) => string
}

const escapeLabel = (value: string) => value.replaceAll("\\", "\\\\").replaceAll("\n", "\\n").replaceAll('"', '\\"')

const errorCodeOf = (event: LifecycleEvent): string | undefined => {
  const data = event.data as { error?: { code?: unknown }; code?: unknown } | undefined | null
  const code = data?.error?.code ?? (event.type === "fleet.escalate" ? data?.code : undefined)
  return typeof code === "string" ? code : undefined
}

/** Creates empty metrics. */
export const makeMetrics = (): Metrics => {
  const histograms: Record<Operation, Histogram> = { spawn: new Histogram(), suspend: new Histogram(), resume: new Histogram() }
  /** When each agent entered the state whose end an operation's latency measures. */
  const started = new Map<string, { operation: Operation; at: number }>()
  const errors = new Map<string, number>()
  const eventsByType = new Map<string, number>()
  const requests = new Map<string, number>()
  const runEnds = new Map<string, number>([["completed", 0], ["failed", 0], ["cancelled", 0]])
  const nodeOutcomes = new Map<string, number>([["completed", 0], ["failed", 0], ["skipped", 0], ["retry", 0], ["cancelled", 0]])
  let runsStarted = 0
  let executeRunsStarted = 0
  const executeRunEnds = new Map<string, number>([["completed", 0], ["failed", 0], ["cancelled", 0], ["interrupted", 0]])
  const nodeDurations = new Histogram()
  /** When each workflow node's current try started, by run and node. */
  const nodeStarted = new Map<string, number>()

  const observeWorkflow = (event: LifecycleEvent) => {
    const node = (event.data as { node?: unknown } | undefined)?.node
    const key = `${event.agentId}/${String(node)}`
    if (event.type === "workflow.created") runsStarted += 1
    const end = /^workflow\.(completed|failed|cancelled)$/.exec(event.type)?.[1]
    if (end !== undefined) runEnds.set(end, (runEnds.get(end) ?? 0) + 1)
    const outcome = /^workflow\.node\.(completed|failed|skipped|retry|cancelled)$/.exec(event.type)?.[1]
    if (outcome !== undefined) nodeOutcomes.set(outcome, (nodeOutcomes.get(outcome) ?? 0) + 1)
    if (event.type === "workflow.node.started") nodeStarted.set(key, Date.parse(event.at))
    else if (outcome !== undefined && outcome !== "skipped") {
      const at = nodeStarted.get(key)
      nodeStarted.delete(key)
      if (outcome === "completed" && at !== undefined && Number.isFinite(at)) nodeDurations.observe(Math.max(0, Date.parse(event.at) - at) / 1000)
    }
  }

  const observe = (event: LifecycleEvent) => {
    eventsByType.set(event.type, (eventsByType.get(event.type) ?? 0) + 1)
    if (event.type.startsWith("workflow.")) return observeWorkflow(event)
    if (event.type === "run.started") executeRunsStarted += 1
    if (event.type === "run.ended") {
      const status = String((event.data as { status?: unknown } | undefined)?.status)
      if (executeRunEnds.has(status)) executeRunEnds.set(status, executeRunEnds.get(status)! + 1)
    }
    const at = Date.parse(event.at)
    if (event.type === "agent.created") started.set(event.agentId, { operation: "spawn", at })
    if (event.type === "agent.state") {
      const code = errorCodeOf(event)
      const category = code === undefined ? undefined : errorCatalog.get(code as ErrorCode)?.category
      if (code !== undefined && (category === "backend" || category === "sandbox" || code === "E2022" || code === "E2027")) {
        errors.set(code, (errors.get(code) ?? 0) + 1)
      }
      const open = started.get(event.agentId)
      if (event.toState === "suspending") started.set(event.agentId, { operation: "suspend", at })
      else if (event.toState === "resuming") started.set(event.agentId, { operation: "resume", at })
      else if (open !== undefined) {
        const done =
          (open.operation === "spawn" && event.toState === "running") ||
          (open.operation === "suspend" && event.toState === "suspended") ||
          (open.operation === "resume" && event.toState === "running")
        const over = done || event.toState === "failed" || event.toState === "terminated" || event.toState === "terminating" || (open.operation === "suspend" && event.toState === "running")
        if (done && Number.isFinite(at) && Number.isFinite(open.at)) histograms[open.operation].observe(Math.max(0, at - open.at) / 1000)
        if (over) started.delete(event.agentId)
      }
    }
  }

  const render = (fleet: FleetStatus, agents: ReadonlyArray<AgentInstance> = []): string => {
    const lines: Array<string> = []
    const family = (name: string, type: string, help: string) => lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`)
    family("l02_agents", "gauge", "Agents supervised by this runtime, by state.")
    const states = new Set([...agentStates, ...Object.keys(fleet.byState)])
    for (const state of states) lines.push(`l02_agents{state="${escapeLabel(state)}"} ${fleet.byState[state] ?? 0}`)
    family("l02_agents_total", "gauge", "All agents supervised by this runtime.")
    lines.push(`l02_agents_total ${fleet.total}`)
    family("l02_agents_hibernated", "gauge", "Idle agents whose actors are hibernated (their state kept in the store).")
    lines.push(`l02_agents_hibernated ${fleet.hibernated}`)
    family("l02_pending_restarts", "gauge", "Failed agents waiting for their restart backoff.")
    lines.push(`l02_pending_restarts ${fleet.pendingRestarts}`)
    family("l02_restarts_total", "counter", "Restarts the fleet supervisor has made since the runtime started.")
    lines.push(`l02_restarts_total ${fleet.restartsTotal}`)
    family("l02_backend_errors_total", "counter", "Agent failures caused by the sandbox backend, by error code.")
    for (const [code, n] of [...errors].sort()) lines.push(`l02_backend_errors_total{code="${escapeLabel(code)}"} ${n}`)
    family("l02_lifecycle_events_total", "counter", "Lifecycle events seen by this server, by type.")
    for (const [type, n] of [...eventsByType].sort()) lines.push(`l02_lifecycle_events_total{type="${escapeLabel(type)}"} ${n}`)
    const histogram = (name: string, help: string, h: Histogram) => {
      family(name, "histogram", help)
      latencyBuckets.forEach((bound, i) => lines.push(`${name}_bucket{le="${bound}"} ${h.counts[i]}`))
      lines.push(`${name}_bucket{le="+Inf"} ${h.count}`, `${name}_sum ${h.sum}`, `${name}_count ${h.count}`)
    }
    for (const operation of ["spawn", "suspend", "resume"] as const) {
      histogram(`l02_${operation}_duration_seconds`, `Time from asking to ${operation} an agent until it reached its target state.`, histograms[operation])
    }
    const usage = (name: string, help: string, value: (u: NonNullable<AgentInstance["resourceUsage"]>) => number | undefined) => {
      family(name, "gauge", help)
      for (const agent of agents) {
        const v = agent.resourceUsage === undefined ? undefined : value(agent.resourceUsage)
        if (v !== undefined) lines.push(`${name}{agent_id="${escapeLabel(agent.agentId)}",name="${escapeLabel(agent.name)}"} ${v}`)
      }
    }
    usage("l02_agent_cpu_percent", "A running agent's CPU use, sampled from its sandbox (100 = one core).", (u) => u.cpuPercent)
    usage("l02_agent_memory_bytes", "A running agent's resident memory, sampled from its sandbox.", (u) => u.memoryBytes)
    usage("l02_agent_tokens_used", "Model tokens an agent's conversation has used (input plus output).", (u) => u.tokensUsed)
    family("l02_workflow_runs_started_total", "counter", "Workflow runs started on this runtime since the server started.")
    lines.push(`l02_workflow_runs_started_total ${runsStarted}`)
    family("l02_workflow_runs_ended_total", "counter", "Workflow runs that ended, by how.")
    for (const [end, n] of runEnds) lines.push(`l02_workflow_runs_ended_total{end="${end}"} ${n}`)
    family("l02_workflow_nodes_total", "counter", "Workflow node outcomes (retry: a try failed and another follows).")
    for (const [outcome, n] of nodeOutcomes) lines.push(`l02_workflow_nodes_total{outcome="${outcome}"} ${n}`)
    histogram("l02_workflow_node_duration_seconds", "From a workflow node's try starting to the node completing.", nodeDurations)
    family("l02_execute_runs_started_total", "counter", "Execute runs (steps) started since the server started.")
    lines.push(`l02_execute_runs_started_total ${executeRunsStarted}`)
    family("l02_execute_runs_ended_total", "counter", "Execute runs that ended, by status.")
    for (const [status, n] of executeRunEnds) lines.push(`l02_execute_runs_ended_total{status="${status}"} ${n}`)
    family("l02_http_requests_total", "counter", "HTTP requests answered, by endpoint and status.")
    for (const [key, n] of [...requests].sort()) {
      const [endpoint, status] = key.split(" ")
      lines.push(`l02_http_requests_total{endpoint="${escapeLabel(endpoint!)}",status="${status}"} ${n}`)
    }
    return `${lines.join("\n")}\n`
  }

  return {
    observe,
    countRequest: (endpoint, status) => {
      const key = `${endpoint} ${status}`
      requests.set(key, (requests.get(key) ?? 0) + 1)
    },
    render
  }
}
