/**
 * The agent machine: one agent's lifecycle, pure and inspectable.
 *
 * States:
 * - pending: created, nothing provisioned (`agent.spawn` -> spawning)
 * - spawning: invokes `provisionSandbox`; bounded by the `spawnTimeout` delay (E2022)
 * - running: `idle` or `busy` (an execute step in progress; `agent.busy` / `agent.idle`)
 * - suspending: invokes `suspendSandbox` (pause, or checkpoint and remove)
 * - suspended: paused or checkpointed
 * - resuming: invokes `resumeSandbox` (unpause, or restore from a checkpoint)
 * - terminating: `graceful` invokes `stopSandbox` for the `gracePeriod` delay, then `forced`
 * - terminated: final
 * - failed: the sandbox died or an operation failed; `agent.restart` (from the fleet) spawns again,
 *   `agent.escalate` marks the failure final (E2025)
 *
 * An event a state does not accept is ignored by the machine; the runtime checks `snapshot.can(event)`
 * first and refuses it with E2020, so a refused operation changes nothing.
 *
 * Side effects are the named actors `provisionSandbox`, `suspendSandbox`, `resumeSandbox` and
 * `stopSandbox`, provided by the runtime; this file imports nothing but xstate and domain types.
 */
import { assign, fromPromise, setup } from "xstate"
import type { AgentConfig } from "../src/domain/AgentConfig.ts"
import type { ErrorData } from "../src/domain/ErrorCatalog.ts"
import type { SandboxConfiguration } from "../src/domain/SandboxConfiguration.ts"

/** Who an agent is: what its side effects need to make, restore or checkpoint its sandbox. */
export interface AgentIdentity {
  readonly agentId: string
  readonly sessionId: string
  readonly config: AgentConfig
  readonly sandbox: SandboxConfiguration
  /** The caller's initial context, kept with every checkpoint. */
  readonly initialContext: unknown
}

/** A warm sandbox a spawn claimed: made for this agent id, paused or ready. */
export interface WarmClaim {
  readonly sandboxId: string
  readonly paused: boolean
}

/** What an agent actor starts with. */
export interface AgentInput {
  readonly agent: AgentIdentity
  readonly spawnTimeoutMs: number
  readonly graceMs: number
}

/** The agent actor's context: plain, JSON-safe data. */
export interface AgentContext {
  readonly agentId: string
  /** Who the agent is, handed as is to every side effect; the record stores it, a stored context leaves it out. */
  readonly agent: AgentIdentity
  readonly spawnTimeoutMs: number
  readonly graceMs: number
  /** The warm sandbox the pending spawn claimed; cleared once the spawn's provisioning ends. */
  readonly claim: WarmClaim | undefined
  readonly sandboxId: string | undefined
  readonly checkpointId: string | undefined
  readonly restartCount: number
  readonly lastError: ErrorData | undefined
  /** True once the fleet gave up on this agent (E2025); it can then only be terminated. */
  readonly escalated: boolean
  readonly terminateReason: string | undefined
}

/** Events the agent machine accepts. */
export type AgentEvent =
  | { readonly type: "agent.spawn"; readonly claim?: WarmClaim | undefined }
  | { readonly type: "agent.suspend"; readonly checkpoint: boolean }
  | { readonly type: "agent.resume"; readonly checkpointId?: string | undefined }
  | { readonly type: "agent.terminate"; readonly reason?: string | undefined; readonly force?: boolean | undefined }
  | { readonly type: "agent.restart" }
  | { readonly type: "agent.escalate"; readonly error: ErrorData }
  | { readonly type: "agent.busy" }
  | { readonly type: "agent.idle" }
  | { readonly type: "sandbox.exited"; readonly exitCode: number | undefined; readonly error: ErrorData }

/**
 * Input of `provisionSandbox`: `replaceSandboxId` is the dead sandbox a restart replaces, `claim`
 * the warm sandbox a first spawn takes instead of making one.
 */
export interface ProvisionInput {
  readonly agent: AgentIdentity
  readonly replaceSandboxId: string | undefined
  readonly claim: WarmClaim | undefined
}
/** Input of `suspendSandbox`: `context` is the actor state a checkpoint keeps. */
export interface SuspendInput {
  readonly agent: AgentIdentity
  readonly sandboxId: string | undefined
  readonly checkpoint: boolean
  readonly context: AgentContext
}
/** Input of `resumeSandbox`: `checkpointId` set when the sandbox must be restored from a checkpoint. */
export interface ResumeInput {
  readonly agent: AgentIdentity
  readonly sandboxId: string | undefined
  readonly checkpointId: string | undefined
}
/** Input of `stopSandbox`. */
export interface StopInput {
  readonly agentId: string
  readonly sandboxId: string | undefined
  readonly force: boolean
  readonly graceMs: number
}

const unprovided = (name: string) =>
  fromPromise<never, unknown>(() =>
    Promise.reject<never>({
      code: "E2046",
      message: `${name} was not provided: run the agent machine through the runtime (createRuntime) or provide it with machine.provide({ actors })`,
      retryable: false
    } satisfies ErrorData)
  )

const asErrorData = (error: unknown, code: ErrorData["code"], what: string): ErrorData => {
  if (typeof error === "object" && error !== null && "code" in error && "message" in error) {
    const e = error as { code: ErrorData["code"]; message: string; retryable?: boolean }
    return { code: e.code, message: e.message, retryable: e.retryable ?? false }
  }
  return { code, message: `${what}: ${String(error)}`, retryable: true }
}

/** The agent lifecycle machine. */
export const agentMachine = setup({
  types: {
    context: {} as AgentContext,
    events: {} as AgentEvent,
    input: {} as AgentInput
  },
  actors: {
    provisionSandbox: unprovided("provisionSandbox") as unknown as ReturnType<
      typeof fromPromise<{ readonly sandboxId: string }, ProvisionInput>
    >,
    suspendSandbox: unprovided("suspendSandbox") as unknown as ReturnType<
      typeof fromPromise<{ readonly checkpointId: string | undefined; readonly sandboxRemoved: boolean }, SuspendInput>
    >,
    resumeSandbox: unprovided("resumeSandbox") as unknown as ReturnType<
      typeof fromPromise<{ readonly sandboxId: string }, ResumeInput>
    >,
    stopSandbox: unprovided("stopSandbox") as unknown as ReturnType<typeof fromPromise<void, StopInput>>
  },
  delays: {
    spawnTimeout: ({ context }) => context.spawnTimeoutMs,
    gracePeriod: ({ context }) => context.graceMs
  },
  guards: {
    canRestart: ({ context }) => !context.escalated,
    isForced: ({ event }) => event.type === "agent.terminate" && event.force === true
  }
}).createMachine({
  id: "agent",
  context: ({ input }) => ({
    agentId: input.agent.agentId,
    agent: input.agent,
    spawnTimeoutMs: input.spawnTimeoutMs,
    graceMs: input.graceMs,
    claim: undefined,
    sandboxId: undefined,
    checkpointId: undefined,
    restartCount: 0,
    lastError: undefined,
    escalated: false,
    terminateReason: undefined
  }),
  initial: "pending",
  on: {
    "agent.terminate": [
      {
        guard: "isForced",
        target: ".terminating.forced",
        actions: assign({ terminateReason: ({ event }) => event.reason ?? "requested" })
      },
      { target: ".terminating", actions: assign({ terminateReason: ({ event }) => event.reason ?? "requested" }) }
    ]
  },
  states: {
    pending: {
      on: { "agent.spawn": { target: "spawning", actions: assign({ claim: ({ event }) => event.claim }) } }
    },
    spawning: {
      // A claim is taken by the first provisioning only: a restart makes a sandbox of its own.
      exit: assign({ claim: undefined }),
      invoke: {
        id: "provision",
        src: "provisionSandbox",
        input: ({ context }) => ({
          agent: context.agent,
          replaceSandboxId: context.sandboxId,
          claim: context.sandboxId === undefined ? context.claim : undefined
        }),
        onDone: {
          target: "running",
          actions: assign({ sandboxId: ({ event }) => event.output.sandboxId, lastError: undefined })
        },
        onError: {
          target: "failed",
          actions: assign({ lastError: ({ event }) => asErrorData(event.error, "E2022", "spawn failed") })
        }
      },
      after: {
        spawnTimeout: {
          target: "failed",
          actions: assign({
            lastError: ({ context }) => ({
              code: "E2022" as const,
              message: `spawn did not finish within spawn_timeout_seconds (${context.spawnTimeoutMs / 1000} s); raise lifecycle.spawn_timeout_seconds or check the backend`,
              retryable: true
            })
          })
        }
      }
    },
    running: {
      initial: "idle",
      states: {
        idle: { on: { "agent.busy": "busy", "agent.suspend": "#agent.suspending" } },
        busy: { on: { "agent.idle": "idle" } }
      },
      on: {
        "sandbox.exited": { target: "failed", actions: assign({ lastError: ({ event }) => event.error }) }
      }
    },
    suspending: {
      invoke: {
        id: "suspend",
        src: "suspendSandbox",
        input: ({ context, event }) => ({
          agent: context.agent,
          sandboxId: context.sandboxId,
          checkpoint: event.type === "agent.suspend" ? event.checkpoint : false,
          context
        }),
        onDone: {
          target: "suspended",
          actions: assign({
            checkpointId: ({ event }) => event.output.checkpointId,
            sandboxId: ({ context, event }) => (event.output.sandboxRemoved ? undefined : context.sandboxId),
            lastError: undefined
          })
        },
        onError: {
          target: "running",
          actions: assign({ lastError: ({ event }) => asErrorData(event.error, "E2023", "suspend failed") })
        }
      }
    },
    suspended: {
      on: {
        "agent.resume": "resuming",
        "sandbox.exited": { target: "failed", actions: assign({ lastError: ({ event }) => event.error }) }
      }
    },
    resuming: {
      invoke: {
        id: "resume",
        src: "resumeSandbox",
        input: ({ context, event }) => ({
          agent: context.agent,
          sandboxId: context.sandboxId,
          checkpointId: (event.type === "agent.resume" ? event.checkpointId : undefined) ?? context.checkpointId
        }),
        onDone: {
          target: "running",
          actions: assign({ sandboxId: ({ event }) => event.output.sandboxId, lastError: undefined })
        },
        onError: {
          target: "suspended",
          actions: assign({ lastError: ({ event }) => asErrorData(event.error, "E2024", "resume failed") })
        }
      }
    },
    terminating: {
      initial: "graceful",
      on: { "agent.terminate": undefined },
      states: {
        graceful: {
          on: { "agent.terminate": { guard: "isForced", target: "forced" } },
          invoke: {
            id: "stopGraceful",
            src: "stopSandbox",
            input: ({ context }) => ({
              agentId: context.agentId,
              sandboxId: context.sandboxId,
              force: false,
              graceMs: context.graceMs
            }),
            onDone: { target: "#agent.terminated" },
            onError: { target: "forced" }
          },
          after: { gracePeriod: "forced" }
        },
        forced: {
          invoke: {
            id: "stopForced",
            src: "stopSandbox",
            input: ({ context }) => ({ agentId: context.agentId, sandboxId: context.sandboxId, force: true, graceMs: 0 }),
            onDone: { target: "#agent.terminated" },
            onError: {
              target: "#agent.failed",
              actions: assign({ lastError: ({ event }) => asErrorData(event.error, "E2026", "terminate failed") })
            }
          }
        }
      }
    },
    terminated: {
      type: "final",
      entry: assign({ sandboxId: undefined })
    },
    failed: {
      on: {
        "agent.restart": {
          guard: "canRestart",
          target: "spawning",
          actions: assign({ restartCount: ({ context }) => context.restartCount + 1 })
        },
        "agent.escalate": { actions: assign({ escalated: true, lastError: ({ event }) => event.error }) }
      }
    }
  }
})

/** The agent machine's type, for typed actors and snapshots. */
export type AgentMachine = typeof agentMachine

/** Whether an agent in `snapshot` accepts `event`: the check the runtime makes before sending anything. */
export const accepts = (snapshot: { readonly status: string; can: (event: AgentEvent) => boolean }, event: AgentEvent): boolean =>
  snapshot.status === "active" && snapshot.can(event)
