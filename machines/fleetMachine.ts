/**
 * The fleet machine: a small supervisor deciding restarts and idle suspension for many agents.
 *
 * States:
 * - supervising: the only state; it reacts to agent reports and its own delayed decisions.
 *
 * Agents are root actors of their own; the fleet never holds them as children, so spawning an agent
 * costs the fleet nothing (XState copies a parent's children map on every spawnChild). The fleet keeps
 * per-agent failure times only for agents that failed, and per-agent timers only while they run.
 *
 * Decisions leave the machine as emitted events, which the runtime carries out:
 * - `fleet.restart` {agentId, attempt}: restart the agent now (after the backoff delay elapsed)
 * - `fleet.escalate` {agentId, error}: the agent failed more than maxRestarts times within the
 *   window; mark it failed for good (E2025)
 * - `fleet.suspendIdle` {agentId}: the agent has been idle for idleSuspendMs
 *
 * The machine has no clock: time comes in events (`at`, milliseconds) and delays run on XState's clock,
 * so tests drive both with a simulated clock.
 */
import { assign, cancel, emit, enqueueActions, setup } from "xstate"
import type { ErrorData } from "../src/domain/ErrorCatalog.ts"

/** Restart and idle policy. */
export interface FleetPolicy {
  readonly maxRestarts: number
  readonly windowMs: number
  readonly backoffInitialMs: number
  readonly backoffFactor: number
  readonly backoffMaxMs: number
  /** Fraction of the delay added at random (0 = none); the randomness comes in the failure event. */
  readonly backoffJitter: number
  /** 0 disables idle suspension. */
  readonly idleSuspendMs: number
}

/** What the fleet starts with. */
export interface FleetInput {
  readonly policy: FleetPolicy
}

/** The fleet's context. */
export interface FleetContext {
  readonly policy: FleetPolicy
  /** Failure times (ms) within the window, per agent that failed recently. */
  readonly failures: Readonly<Record<string, ReadonlyArray<number>>>
  /** Agents with a restart scheduled. */
  readonly pendingRestarts: Readonly<Record<string, number>>
  readonly restartsTotal: number
  readonly escalationsTotal: number
}

/** Events the fleet accepts. */
export type FleetEvent =
  | {
      readonly type: "fleet.agent.failed"
      readonly agentId: string
      readonly at: number
      readonly error: ErrorData
      /** A number in [0, 1) from the runtime's random source, for jitter. */
      readonly random?: number | undefined
      /** The agent's own restart policy, overriding the fleet's where given. */
      readonly policy?: Partial<Omit<FleetPolicy, "idleSuspendMs">> | undefined
    }
  | { readonly type: "fleet.agent.removed"; readonly agentId: string }
  | { readonly type: "fleet.agent.idle"; readonly agentId: string }
  | { readonly type: "fleet.agent.active"; readonly agentId: string }
  | { readonly type: "fleet.restart.due"; readonly agentId: string; readonly attempt: number }
  | { readonly type: "fleet.idle.due"; readonly agentId: string }

/** Decisions the fleet emits for the runtime to carry out. */
export type FleetEmitted =
  | { readonly type: "fleet.restart"; readonly agentId: string; readonly attempt: number }
  | { readonly type: "fleet.escalate"; readonly agentId: string; readonly error: ErrorData }
  | { readonly type: "fleet.suspendIdle"; readonly agentId: string }

/** The backoff before restart `attempt` (1-based), without jitter. */
export const backoffDelay = (policy: FleetPolicy, attempt: number): number =>
  Math.min(policy.backoffMaxMs, Math.round(policy.backoffInitialMs * policy.backoffFactor ** (attempt - 1)))

const without = <V>(record: Readonly<Record<string, V>>, key: string): Record<string, V> => {
  const { [key]: _, ...rest } = record
  return rest
}

/** The fleet supervision machine. */
export const fleetMachine = setup({
  types: {
    context: {} as FleetContext,
    events: {} as FleetEvent,
    input: {} as FleetInput,
    emitted: {} as FleetEmitted
  }
}).createMachine({
  id: "fleet",
  context: ({ input }) => ({
    policy: input.policy,
    failures: {},
    pendingRestarts: {},
    restartsTotal: 0,
    escalationsTotal: 0
  }),
  initial: "supervising",
  states: {
    supervising: {
      on: {
        "fleet.agent.failed": {
          actions: enqueueActions(({ context, event, enqueue }) => {
            const policy = event.policy === undefined ? context.policy : { ...context.policy, ...event.policy }
            if (context.pendingRestarts[event.agentId] !== undefined) return
            const recent = [...(context.failures[event.agentId] ?? []).filter((t) => t > event.at - policy.windowMs), event.at]
            enqueue.cancel(`idle:${event.agentId}`)
            if (recent.length > policy.maxRestarts) {
              enqueue.assign({
                failures: without(context.failures, event.agentId),
                escalationsTotal: context.escalationsTotal + 1
              })
              enqueue.emit({
                type: "fleet.escalate",
                agentId: event.agentId,
                error: {
                  code: "E2025",
                  message: `agent ${event.agentId} failed ${recent.length} times within ${policy.windowMs / 1000} s (max_restart_count ${policy.maxRestarts}); last failure ${event.error.code}: ${event.error.message}`,
                  retryable: false
                }
              })
              return
            }
            const attempt = recent.length
            const base = backoffDelay(policy, attempt)
            const delay = Math.round(base * (1 + policy.backoffJitter * (event.random ?? 0)))
            enqueue.assign({
              failures: { ...context.failures, [event.agentId]: recent },
              pendingRestarts: { ...context.pendingRestarts, [event.agentId]: attempt }
            })
            enqueue.raise(
              { type: "fleet.restart.due", agentId: event.agentId, attempt },
              { delay, id: `restart:${event.agentId}` }
            )
          })
        },
        "fleet.restart.due": {
          actions: [
            assign({
              pendingRestarts: ({ context, event }) => without(context.pendingRestarts, event.agentId),
              restartsTotal: ({ context }) => context.restartsTotal + 1
            }),
            emit(({ event }) => ({ type: "fleet.restart" as const, agentId: event.agentId, attempt: event.attempt }))
          ]
        },
        "fleet.agent.removed": {
          actions: [
            cancel(({ event }) => `restart:${event.agentId}`),
            cancel(({ event }) => `idle:${event.agentId}`),
            assign({
              failures: ({ context, event }) => without(context.failures, event.agentId),
              pendingRestarts: ({ context, event }) => without(context.pendingRestarts, event.agentId)
            })
          ]
        },
        "fleet.agent.idle": {
          actions: enqueueActions(({ context, event, enqueue }) => {
            enqueue.cancel(`idle:${event.agentId}`)
            if (context.policy.idleSuspendMs > 0) {
              enqueue.raise(
                { type: "fleet.idle.due", agentId: event.agentId },
                { delay: context.policy.idleSuspendMs, id: `idle:${event.agentId}` }
              )
            }
          })
        },
        "fleet.agent.active": { actions: cancel(({ event }) => `idle:${event.agentId}`) },
        "fleet.idle.due": {
          actions: emit(({ event }) => ({ type: "fleet.suspendIdle" as const, agentId: event.agentId }))
        }
      }
    }
  }
})

/** The fleet machine's type. */
export type FleetMachine = typeof fleetMachine
