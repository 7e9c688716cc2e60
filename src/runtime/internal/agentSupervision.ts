/**
 * The runtime's agents, hosted and supervised: the agent machine with its side effects provided,
 * its actor host, the heartbeat watch and the fleet actor that hear of every transition, and the
 * reporting of actor errors. What it returns is what the operations and liveness use.
 */
import type * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import type * as Fiber from "effect/Fiber"
import type { AgentConfig } from "../../domain/AgentConfig.ts"
import type { RuntimeConfig } from "../../domain/RuntimeConfig.ts"
import type { CheckpointStore, CheckpointStoreShape } from "../../services/CheckpointStore.ts"
import type { EventLog } from "../../services/EventLog.ts"
import type { SandboxBackend, SandboxBackendShape } from "../../services/SandboxBackend.ts"
import type { StateStore } from "../../services/StateStore.ts"
import type { AgentRuntimeOptions } from "../AgentRuntimeApi.ts"
import { makeAgentHost, type AgentHostDeps } from "./agentHost.ts"
import { makeDefectReporter } from "./defects.ts"
import { makeFleetSupervision } from "./fleetSupervision.ts"
import { makeAgentHeartbeats } from "./liveness.ts"
import { makeSandboxEffects } from "./sandboxEffects.ts"

/** What hosting and supervising the agents needs. */
export interface AgentSupervisionDeps {
  readonly config: RuntimeConfig
  readonly options: AgentRuntimeOptions
  readonly backend: SandboxBackendShape
  readonly checkpoints: CheckpointStoreShape
  readonly services: Context.Context<SandboxBackend | StateStore | CheckpointStore | EventLog>
  readonly now: () => number
  readonly random: () => number
  readonly iso: () => string
  /** Records a supervision decision or a defect as a lifecycle event. */
  readonly record: (agentId: string, type: string, data: unknown) => void
  readonly fork: (effect: Effect.Effect<void>) => Fiber.Fiber<void>
  /** Suspends an idle agent (the fleet's decision). */
  readonly suspendIdle: (agentId: string) => void
  /** Writes agents' records and events (one batch). */
  readonly write: AgentHostDeps["write"]
}

/** The agents' host and what supervises them. */
export const superviseAgents = (deps: AgentSupervisionDeps) => {
  const { config, options, backend, checkpoints, services, now, random, iso } = deps
  const lifecycle = config.lifecycle
  // ---- heartbeats --------------------------------------------------------------------------------
  const heartbeatTimeoutMs = (c: AgentConfig) => (c.heartbeatTimeoutSeconds ?? lifecycle.heartbeat_timeout_seconds) * 1000
  const heartbeats = makeAgentHeartbeats({
    backend,
    fork: deps.fork,
    now,
    clock: options.clock,
    timeoutMsOf: heartbeatTimeoutMs,
    agent: (agentId) => host.get(agentId),
    send: (h, event) => host.sendIfAccepted(h, event)
  })
  const watchHeartbeat = heartbeats.watch

  const fleetEvent = deps.record
  const { fleet, supervise: superviseFleet } = makeFleetSupervision({
    lifecycle,
    backoffJitter: options.backoffJitter ?? 0.1,
    now,
    random,
    inspect: options.inspect,
    clock: options.clock,
    agent: (agentId) => host.get(agentId),
    send: (h, event) => host.live(h).send(event),
    suspendIdle: deps.suspendIdle,
    record: fleetEvent,
    onError: (error) => reportDefect("fleet", error)
  })

  // Actor errors are bugs of this runtime: logged and recorded as lifecycle events, bounded.
  const reportDefect = makeDefectReporter({
    record: (who, data) => fleetEvent(who.startsWith("agent:") ? who.slice("agent:".length) : "", "runtime.defect", { actor: who, ...data })
  })

  // ---- side effects of the agent machine ------------------------------------------------------------
  const { specFor, removeQuietly, writeMayWait, machine: provided } = makeSandboxEffects({
    backend,
    checkpoints,
    services,
    runtimeId: options.runtimeId,
    lifecycle,
    now,
    defaultCommand: options.defaultCommand,
    heartbeatTimeoutMs
  })

  // ---- actors ------------------------------------------------------------------------------------
  const host = makeAgentHost({
    machine: provided,
    config,
    now,
    iso,
    write: deps.write,
    writeMayWait,
    afterTransition: (h, from, fromActivity) => {
      watchHeartbeat(h)
      superviseFleet(h, from, fromActivity)
    },
    onError: (h, error) => reportDefect(`agent:${h.agentId}`, error),
    inspect: options.inspect,
    clock: options.clock
  })

  return { host, heartbeats, heartbeatTimeoutMs, fleet, specFor, removeQuietly }
}
