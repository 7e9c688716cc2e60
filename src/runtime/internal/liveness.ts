/**
 * Whether an agent's sandbox is alive, from three sources: the backend's events (an exit, an OOM
 * kill, a failed health check), a periodic look at every sandbox this runtime owns (events can be
 * missed: an engine restart, a dropped stream), and the agent's own heartbeats. Each turns into a
 * `sandbox.exited` event of the agent's machine, which restarts it per policy; `healthOf` answers
 * `health()` from what was last seen.
 */
import * as Effect from "effect/Effect"
import type * as Fiber from "effect/Fiber"
import * as Stream from "effect/Stream"
import type { AgentEvent } from "../../../machines/agentMachine.ts"
import type { AgentConfig } from "../../domain/AgentConfig.ts"
import type { AgentInstance } from "../../domain/AgentInstance.ts"
import type { ErrorData } from "../../domain/ErrorCatalog.ts"
import type { SandboxError } from "../../domain/Errors.ts"
import type { HealthStatus } from "../../domain/HealthStatus.ts"
import { OwnershipLabels } from "../../domain/Ids.ts"
import type { SandboxBackendShape, SandboxEvent } from "../../services/SandboxBackend.ts"
import type { Clock } from "../ActorHost.ts"
import type { AgentHandle } from "./agentHandle.ts"
import { makeHeartbeatWatch } from "./heartbeats.ts"

/** What heartbeats need: the backend to read output, the runtime's clock, the agents. */
export interface AgentHeartbeatDeps {
  readonly backend: SandboxBackendShape
  readonly fork: (effect: Effect.Effect<void>) => Fiber.Fiber<void>
  readonly now: () => number
  readonly clock?: Clock | undefined
  readonly timeoutMsOf: (config: AgentConfig) => number
  readonly agent: (agentId: string) => AgentHandle | undefined
  /** Sends an event to the agent's actor if its state accepts it. */
  readonly send: (h: AgentHandle, event: AgentEvent) => boolean
}

/** The heartbeat watch of the runtime's agents; `watch(h)` keeps it in step with the agent's state. */
export const makeAgentHeartbeats = (deps: AgentHeartbeatDeps) => {
  const timers: Clock = deps.clock ?? {
    setTimeout: (fn, ms) => {
      const timer = setTimeout(fn, ms)
      timer.unref()
      return timer
    },
    clearTimeout: (id) => clearTimeout(id)
  }
  const watch = makeHeartbeatWatch({
    attach: (sandboxId) => deps.backend.attach(sandboxId),
    fork: deps.fork,
    now: deps.now,
    setTimeout: (fn, ms) => timers.setTimeout(fn, ms),
    clearTimeout: (id) => timers.clearTimeout(id),
    onMissed: (agentId, sandboxId, silentMs) => {
      const h = deps.agent(agentId)
      if (h === undefined || h.state !== "running" || h.lastContext.sandboxId !== sandboxId) return
      const error: ErrorData = {
        code: "E2049",
        message: `the agent sent no heartbeat for ${(silentMs / 1000).toFixed(1)} s (its heartbeat timeout is ${deps.timeoutMsOf(h.config) / 1000} s); its sandbox is replaced per the restart policy`,
        retryable: true
      }
      deps.send(h, { type: "sandbox.exited", exitCode: undefined, error })
    }
  })
  return {
    /** Keeps the heartbeat watch in step with the agent's state. */
    watch: (h: AgentHandle) => {
      const timeoutMs = deps.timeoutMsOf(h.config)
      if (timeoutMs === 0) return
      const sandboxId = h.lastContext.sandboxId
      if (h.state === "running" && sandboxId !== undefined) watch.running(h.agentId, sandboxId, timeoutMs)
      else if (h.state === "suspending" || h.state === "suspended" || h.state === "resuming") watch.paused(h.agentId)
      else watch.stop(h.agentId)
    },
    overdue: watch.overdue,
    lastHeartbeatAt: watch.lastHeartbeatAt,
    /** Forgets one agent (it is hosted elsewhere now). */
    stop: watch.stop,
    stopAll: watch.stopAll
  }
}

/** The heartbeats as `healthOf` reads them. */
export type AgentHeartbeats = ReturnType<typeof makeAgentHeartbeats>

/** What reconciliation needs: the backend, the agents, and the warm pools' ready sandboxes. */
export interface ReconciliationDeps {
  readonly backend: SandboxBackendShape
  readonly runtimeId: string
  readonly iso: () => string
  readonly agents: () => Iterable<AgentHandle>
  readonly agent: (agentId: string) => AgentHandle | undefined
  readonly send: (h: AgentHandle, event: AgentEvent) => boolean
  readonly warm: { readonly drop: (sandboxId: string) => unknown; readonly readySandboxIds: () => Iterable<string> }
  /** Removes a sandbox in the background. */
  readonly removeQuietly: (sandboxId: string) => void
  readonly removeNow: (sandboxId: string) => Effect.Effect<void, SandboxError>
}

/** The sandbox an event or a look found dead, as the agent's machine hears it. */
const exitOf = (event: Pick<SandboxEvent, "type" | "exitCode" | "healthy" | "forkRefused">, resources: { readonly memory: string; readonly pids: number }): ErrorData =>
  event.type === "oom"
    ? { code: "E2048", message: `the sandbox exceeded its memory limit (${resources.memory}) and was killed`, retryable: true }
    : event.forkRefused === true
    ? {
      code: "E2050",
      message: `the sandbox's program ended (exit code ${event.exitCode ?? "unknown"}) after it was refused a new process: it reached its process limit (resources.pids ${resources.pids}); raise resources.pids in the agent config or sandbox.default_pids`,
      retryable: true
    }
    : event.type === "health"
    ? { code: "E2027", message: "the sandbox reported itself unhealthy (its health check failed); it is replaced", retryable: true }
    : event.type === "removed"
    ? { code: "E2027", message: "the sandbox was removed by someone other than this runtime (its container or Pod was deleted); it is replaced per the restart policy", retryable: true }
    : { code: "E2027", message: `the sandbox exited with code ${event.exitCode ?? "unknown"}`, retryable: true }

/** Follows the backend's events and looks at the sandboxes; answers health from what it saw. */
export const makeReconciliation = (deps: ReconciliationDeps) => {
  let lastCheckAt: string | undefined
  const seen = new Map<string, string>()

  const onSandboxEvent = (event: Pick<SandboxEvent, "sandboxId" | "agentId" | "type" | "exitCode" | "healthy" | "forkRefused">) => {
    const unhealthy = event.type === "health" && event.healthy === false
    if (event.type !== "exited" && event.type !== "oom" && event.type !== "removed" && !unhealthy) return
    // A ready warm sandbox that died leaves its pool (which makes another) and the engine.
    if (deps.warm.drop(event.sandboxId) !== undefined) {
      deps.removeQuietly(event.sandboxId)
      return
    }
    const h = deps.agent(event.agentId)
    if (h === undefined || h.lastContext.sandboxId !== event.sandboxId) return
    deps.send(h, { type: "sandbox.exited", exitCode: event.exitCode, error: exitOf(event, h.sandbox.resources) })
  }

  const reconcile = Effect.gen(function* () {
    const expected = new Map<string, string>()
    for (const h of deps.agents()) {
      const sandboxId = h.lastContext.sandboxId
      if (sandboxId !== undefined && (h.state === "running" || h.state === "suspended")) expected.set(h.agentId, sandboxId)
    }
    const owned = yield* deps.backend.list({ [OwnershipLabels.runtimeId]: deps.runtimeId })
    const byId = new Map(owned.map((info) => [info.sandboxId, info]))
    seen.clear()
    for (const info of owned) seen.set(info.sandboxId, info.status)
    // Ready warm sandboxes that died or vanished leave their pools too.
    for (const sandboxId of deps.warm.readySandboxIds()) {
      const info = byId.get(sandboxId)
      if (info === undefined || info.status === "exited" || info.status === "removed") {
        deps.warm.drop(sandboxId)
        if (info !== undefined) yield* Effect.ignore(deps.removeNow(sandboxId))
      }
    }
    for (const [agentId, sandboxId] of expected) {
      const h = deps.agent(agentId)
      // Only judge agents whose sandbox did not change while we looked.
      if (h === undefined || h.lastContext.sandboxId !== sandboxId || (h.state !== "running" && h.state !== "suspended")) continue
      const info = byId.get(sandboxId)
      if (info === undefined || info.status === "exited" || info.status === "removed") {
        const type = info === undefined || info.status === "removed" ? "removed" : info.oomKilled === true ? "oom" : "exited"
        onSandboxEvent({ sandboxId, agentId, type, exitCode: info?.exitCode, forkRefused: info?.forkRefused })
      }
    }
    lastCheckAt = deps.iso()
  })

  // The event stream ends or fails when the engine restarts or the connection drops: subscribe again
  // after a pause, and look at every sandbox at once, since events may have been missed meanwhile.
  let eventStreams = 0
  const followEvents = Effect.suspend(() => {
    eventStreams += 1
    return eventStreams === 1 ? Effect.void : Effect.ignore(reconcile)
  }).pipe(
    Effect.andThen(deps.backend.events.pipe(Stream.runForEach((event) => Effect.sync(() => onSandboxEvent(event))))),
    Effect.catchCause(() => Effect.void),
    Effect.andThen(Effect.sleep("1 second")),
    Effect.forever
  )

  return {
    onSandboxEvent,
    /** Follows the backend's events forever, resubscribing (and reconciling) after a break. */
    followEvents,
    /** Reconciles every `seconds`, forever. */
    checkEvery: (seconds: number) => reconcile.pipe(Effect.catchCause(() => Effect.void), Effect.delay(`${seconds} seconds`), Effect.forever),
    /** Liveness and readiness of an agent from its state, its sandbox's last seen status and its heartbeats. */
    healthOf: (instance: AgentInstance, heartbeats: AgentHeartbeats, heartbeatTimeoutMs: number): HealthStatus => {
      const status = instance.sandboxId === undefined ? undefined : seen.get(instance.sandboxId)
      const inState = instance.state === "running" || instance.state === "suspended"
      const silent = heartbeats.overdue(instance.agentId)
      const live = !silent && inState && (lastCheckAt === undefined || status === "running" || status === "paused" || status === undefined)
      const ready = instance.state === "running" && instance.activity === "idle" && live
      const heard = heartbeats.lastHeartbeatAt(instance.agentId)
      return {
        agentId: instance.agentId,
        live,
        ready,
        ...(heard === undefined ? {} : { lastHeartbeatAt: new Date(heard).toISOString() }),
        checkedAt: lastCheckAt ?? deps.iso(),
        ...(ready
          ? {}
          : {
            reason: silent
              ? `no heartbeat within the agent's heartbeat timeout (${heartbeatTimeoutMs / 1000} s)`
              : (instance.lastError?.message ?? `agent is ${instance.activity === undefined ? instance.state : `${instance.state} (${instance.activity})`}`)
          })
      }
    }
  }
}
