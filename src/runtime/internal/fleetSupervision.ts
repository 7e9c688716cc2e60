/**
 * The wiring between the agents and the fleet actor: which transitions the fleet hears of (a
 * supervised agent that failed, an agent that became idle or active, one that is gone), and what its
 * decisions do (restart, escalate, suspend an idle agent), each recorded as a lifecycle event.
 */
import { type Actor, createActor, type InspectionEvent } from "xstate"
import { fleetMachine, type FleetPolicy } from "../../../machines/fleetMachine.ts"
import type { AgentConfig } from "../../domain/AgentConfig.ts"
import type { AgentActivity, AgentState } from "../../domain/AgentState.ts"
import type { ErrorData } from "../../domain/ErrorCatalog.ts"
import type { RuntimeConfig } from "../../domain/RuntimeConfig.ts"
import type { Clock } from "../ActorHost.ts"
import type { AgentHandle } from "./agentHandle.ts"

/** What the fleet's decisions act on. */
export interface FleetSupervisionDeps {
  readonly lifecycle: RuntimeConfig["lifecycle"]
  readonly backoffJitter: number
  readonly now: () => number
  readonly random: () => number
  readonly inspect?: ((event: InspectionEvent) => void) | undefined
  readonly clock?: Clock | undefined
  readonly agent: (agentId: string) => AgentHandle | undefined
  /** Sends an event to the agent's (woken) actor. */
  readonly send: (h: AgentHandle, event: { readonly type: "agent.restart" } | { readonly type: "agent.escalate"; readonly error: ErrorData }) => void
  readonly suspendIdle: (agentId: string) => void
  /** Records a supervision decision (a lifecycle event, and a span when traces are on). */
  readonly record: (agentId: string, type: string, data: unknown) => void
  readonly onError: (error: unknown) => void
}

const unknownError: ErrorData = { code: "E2027", message: "the agent failed", retryable: true }

/** An agent's own restart policy over the configured one. */
const policyOf = (c: AgentConfig): Partial<FleetPolicy> | undefined => {
  const p = c.restartPolicy
  if (p === undefined) return undefined
  return {
    ...(p.maxRestarts === undefined ? {} : { maxRestarts: p.maxRestarts }),
    ...(p.windowSeconds === undefined ? {} : { windowMs: p.windowSeconds * 1000 }),
    ...(p.backoffInitialMs === undefined ? {} : { backoffInitialMs: p.backoffInitialMs }),
    ...(p.backoffFactor === undefined ? {} : { backoffFactor: p.backoffFactor }),
    ...(p.backoffMaxMs === undefined ? {} : { backoffMaxMs: p.backoffMaxMs }),
    ...(p.jitter === undefined ? {} : { backoffJitter: p.jitter })
  }
}

/** The fleet actor, started, and what tells it of an agent's transition. */
export const makeFleetSupervision = (deps: FleetSupervisionDeps) => {
  const { lifecycle } = deps
  const policy: FleetPolicy = {
    maxRestarts: lifecycle.max_restart_count,
    windowMs: lifecycle.restart_window_seconds * 1000,
    backoffInitialMs: lifecycle.restart_backoff_initial_ms,
    backoffFactor: lifecycle.restart_backoff_factor,
    backoffMaxMs: lifecycle.restart_backoff_max_ms,
    backoffJitter: deps.backoffJitter,
    idleSuspendMs: lifecycle.enable_suspend ? lifecycle.suspend_idle_after_seconds * 1000 : 0
  }
  const fleet: Actor<typeof fleetMachine> = createActor(fleetMachine, {
    ...(deps.inspect === undefined ? {} : { inspect: deps.inspect }),
    ...(deps.clock === undefined ? {} : { clock: deps.clock }),
    input: { policy },
    systemId: "fleet"
  })
  fleet.subscribe({ error: deps.onError })
  fleet.on("fleet.restart", ({ agentId, attempt }) => {
    const h = deps.agent(agentId)
    if (h === undefined || h.state !== "failed") return
    deps.record(agentId, "fleet.restart", { attempt })
    deps.send(h, { type: "agent.restart" })
  })
  fleet.on("fleet.escalate", ({ agentId, error }) => {
    const h = deps.agent(agentId)
    if (h === undefined) return
    deps.record(agentId, "fleet.escalate", error)
    deps.send(h, { type: "agent.escalate", error })
  })
  fleet.on("fleet.suspendIdle", ({ agentId }) => {
    const h = deps.agent(agentId)
    if (h === undefined || h.state !== "running" || h.activity !== "idle") return
    deps.record(agentId, "fleet.suspendIdle", undefined)
    deps.suspendIdle(agentId)
  })
  fleet.start()

  /** What the fleet hears of an agent's transition from `from` (and `fromActivity`) to its current state. */
  const supervise = (h: AgentHandle, from: AgentState, fromActivity: AgentActivity | undefined) => {
    const { state, activity, lastContext: context } = h
    // The fleet supervises agents that were running: a sandbox that died, and a restart that failed
    // to come up (e.g. while the engine is down). A first spawn that fails is the caller's to handle.
    const supervised = from === "running" || from === "suspended" || (from === "spawning" && context.restartCount > 0)
    if (state === "failed" && from !== "failed" && supervised) {
      fleet.send({
        type: "fleet.agent.failed",
        agentId: h.agentId,
        at: deps.now(),
        error: context.lastError ?? unknownError,
        random: deps.random(),
        policy: policyOf(h.config)
      })
    }
    if (state === "running" && activity === "idle" && (from !== "running" || fromActivity !== "idle")) {
      fleet.send({ type: "fleet.agent.idle", agentId: h.agentId })
    } else if (from === "running" && fromActivity === "idle" && !(state === "running" && activity === "idle")) {
      fleet.send({ type: "fleet.agent.active", agentId: h.agentId })
    }
    if (state === "terminated") fleet.send({ type: "fleet.agent.removed", agentId: h.agentId })
  }

  return { fleet, supervise }
}
