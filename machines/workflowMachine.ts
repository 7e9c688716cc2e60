/**
 * The workflow machine: one workflow run's lifecycle, pure and inspectable.
 *
 * States:
 * - pending: accepted, its record written, not yet started by the engine (`workflow.start` -> running)
 * - running: nodes are running; `workflow.waiting` (an approval node waits) -> waiting
 * - waiting: at least one approval node waits for a signal (other branches may still run);
 *   `workflow.signal` for a waiting node (guard `waitsForNode`) takes it, as does its timeout
 *   (`workflow.timedOut`), and once none waits the run is running again (guard `lastWaiting`)
 * - cancelling: `workflow.cancel` was accepted; the engine stops the nodes, terminates the agents
 *   they started and runs the compensations (`workflow.cancelled` -> cancelled)
 * - completed, failed, cancelled: final
 *
 * The nodes themselves run on the durable workflow engine (effect/workflow); the machine decides what
 * an operation may do in the run's state. An event the state does not accept is ignored by the
 * machine; the runtime checks `snapshot.can(event)` first and refuses it with E2031, so a refused
 * operation changes nothing. This file imports nothing but xstate and domain types.
 */
import { assign, setup } from "xstate"
import type { ErrorData } from "../src/domain/ErrorCatalog.ts"
export type { WorkflowStateValue } from "../src/domain/WorkflowRun.ts"

/** What a workflow actor starts with. */
export interface WorkflowInput {
  readonly workflowId: string
  readonly name: string
}

/** The workflow actor's context: plain, JSON-safe data. */
export interface WorkflowContext {
  readonly workflowId: string
  readonly name: string
  /** Approval nodes waiting for a signal. */
  readonly waiting: ReadonlyArray<string>
  readonly output: unknown
  readonly error: ErrorData | undefined
  readonly cancelReason: string | undefined
}

/** Events the workflow machine accepts. */
export type WorkflowEvent =
  | { readonly type: "workflow.start" }
  | { readonly type: "workflow.waiting"; readonly node: string }
  | { readonly type: "workflow.signal"; readonly node: string }
  | { readonly type: "workflow.timedOut"; readonly node: string }
  | { readonly type: "workflow.completed"; readonly output: unknown }
  | { readonly type: "workflow.failed"; readonly error: ErrorData }
  | { readonly type: "workflow.cancel"; readonly reason?: string | undefined }
  | { readonly type: "workflow.cancelled" }

const ends = {
  "workflow.completed": { target: "completed", actions: "recordOutput" },
  "workflow.failed": { target: "failed", actions: "recordError" },
  "workflow.cancel": { target: "cancelling", actions: "recordCancel" }
} as const

/** The workflow lifecycle machine. */
export const workflowMachine = setup({
  types: {
    context: {} as WorkflowContext,
    events: {} as WorkflowEvent,
    input: {} as WorkflowInput
  },
  actions: {
    recordOutput: assign({ output: ({ event }) => (event.type === "workflow.completed" ? event.output : undefined), waiting: () => [] }),
    recordError: assign({ error: ({ context, event }) => (event.type === "workflow.failed" ? event.error : context.error), waiting: () => [] }),
    recordCancel: assign({ cancelReason: ({ event }) => (event.type === "workflow.cancel" ? event.reason : undefined), waiting: () => [] }),
    addWaiting: assign({
      waiting: ({ context, event }) =>
        event.type !== "workflow.waiting" || context.waiting.includes(event.node) ? context.waiting : [...context.waiting, event.node]
    }),
    removeWaiting: assign({
      waiting: ({ context, event }) =>
        event.type === "workflow.signal" || event.type === "workflow.timedOut" ? context.waiting.filter((n) => n !== event.node) : context.waiting
    })
  },
  guards: {
    waitsForNode: ({ context, event }) => (event.type === "workflow.signal" || event.type === "workflow.timedOut") && context.waiting.includes(event.node),
    lastWaiting: ({ context, event }) =>
      (event.type === "workflow.signal" || event.type === "workflow.timedOut") && context.waiting.length === 1 && context.waiting[0] === event.node
  }
}).createMachine({
  id: "workflow",
  context: ({ input }) => ({
    workflowId: input.workflowId,
    name: input.name,
    waiting: [],
    output: undefined,
    error: undefined,
    cancelReason: undefined
  }),
  initial: "pending",
  states: {
    pending: {
      on: {
        "workflow.start": { target: "running" },
        "workflow.failed": ends["workflow.failed"],
        "workflow.cancel": ends["workflow.cancel"]
      }
    },
    running: {
      on: {
        "workflow.waiting": { target: "waiting", actions: "addWaiting" },
        ...ends
      }
    },
    waiting: {
      on: {
        "workflow.waiting": { actions: "addWaiting" },
        "workflow.signal": [
          { guard: "lastWaiting", target: "running", actions: "removeWaiting" },
          { guard: "waitsForNode", actions: "removeWaiting" }
        ],
        // An approval's timeout passed before its signal.
        "workflow.timedOut": [
          { guard: "lastWaiting", target: "running", actions: "removeWaiting" },
          { guard: "waitsForNode", actions: "removeWaiting" }
        ],
        ...ends
      }
    },
    cancelling: {
      on: {
        "workflow.cancelled": { target: "cancelled" },
        // A run that ended on its own while its cancel was under way ends as it did.
        "workflow.completed": ends["workflow.completed"],
        "workflow.failed": ends["workflow.failed"]
      }
    },
    completed: { type: "final" },
    failed: { type: "final" },
    cancelled: { type: "final" }
  }
})
