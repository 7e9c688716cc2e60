/**
 * The handlers of the workflow routes (WorkflowsApi.ts) over a runtime's `workflows`. A graph sent
 * over HTTP is started with the request's policy: its agent configs are checked as remote ones, within
 * the API key's trust levels, and its run keeps that origin for every spawn it makes later.
 */
import { InputInvalid } from "../domain/Errors.ts"
import type { WorkflowStateValue } from "../domain/WorkflowRun.ts"
import type { L02Runtime } from "../runtime/createRuntime.ts"
import { answerOfUnknown } from "./ErrorResponse.ts"
import { type Answer, type Handler, json, lastEventIdOf, orThrow, startSse, writeEvent } from "./internal/answers.ts"
import { decode } from "./internal/decode.ts"
import { CancelRequest, SignalRequest, StartWorkflowRequest, WorkflowListQuery, WorkflowPath } from "./WorkflowsApi.ts"

const runStates: ReadonlyArray<WorkflowStateValue> = ["pending", "running", "waiting", "cancelling", "completed", "failed", "cancelled"]

/** The names of the workflow endpoints. */
export type WorkflowEndpoint = "startWorkflow" | "listWorkflows" | "getWorkflow" | "signalWorkflow" | "cancelWorkflow" | "workflowEvents"

/** Builds the workflow handlers; `track` registers an open stream so the server can end it on close. */
export const workflowHandlers = (runtime: L02Runtime, track: (end: () => void) => () => void): Record<WorkflowEndpoint, Handler> => ({
  startWorkflow: async ({ body, policy }) => {
    const request = orThrow(decode(StartWorkflowRequest, body, "body"))
    return json(201, await runtime.workflows.start(request.graph, request.input, { policy }))
  },
  listWorkflows: async ({ query }) => {
    const q = orThrow(decode(WorkflowListQuery, query, "query"))
    const states = q.state === undefined ? undefined : q.state.split(",")
    const bad = states?.find((s) => !runStates.includes(s as WorkflowStateValue))
    if (bad !== undefined) {
      throw new InputInvalid({ message: `query.state: ${JSON.stringify(bad.slice(0, 100))} is not a run state; use ${runStates.join(", ")}`, key: "query.state" })
    }
    const workflows = await runtime.workflows.list({
      ...(states === undefined ? {} : { state: states as Array<WorkflowStateValue> }),
      ...(q.parentId === undefined ? {} : { parentId: q.parentId })
    })
    return json(200, { workflows })
  },
  getWorkflow: async ({ params }) => json(200, await runtime.workflows.get(orThrow(decode(WorkflowPath, params, "path")).workflowId)),
  signalWorkflow: async ({ params, body }) => {
    const { workflowId } = orThrow(decode(WorkflowPath, params, "path"))
    const request = orThrow(decode(SignalRequest, body, "body"))
    return json(200, await runtime.workflows.signal(workflowId, request.node, request.value))
  },
  cancelWorkflow: async ({ params, body }) => {
    const { workflowId } = orThrow(decode(WorkflowPath, params, "path"))
    const request = orThrow(decode(CancelRequest, body === undefined ? {} : body, "body"))
    return json(200, await runtime.workflows.cancel(workflowId, request.reason))
  },
  workflowEvents: async ({ params, req, res }) => {
    const { workflowId } = orThrow(decode(WorkflowPath, params, "path"))
    // Unknown runs answer 404 before the stream starts.
    await runtime.workflows.get(workflowId)
    const after = lastEventIdOf(req) ?? 0
    const events = runtime.workflows.events(workflowId)[Symbol.asyncIterator]()
    const stop = () => void events.return?.().catch(() => undefined)
    const untrack = track(stop)
    res.once("close", stop)
    startSse(res)
    res.write(": connected\n\n")
    try {
      for (;;) {
        const next = await events.next()
        if (next.done) break
        if ((next.value.eventId ?? 0) <= after) continue
        if (!writeEvent(res, { ...(next.value.eventId === undefined ? {} : { id: next.value.eventId }), data: next.value })) break
      }
    } catch (error) {
      writeEvent(res, { event: "error", data: answerOfUnknown(error).body })
    } finally {
      untrack()
      res.off("close", stop)
      stop()
      res.end()
    }
    return { _tag: "Streamed" } satisfies Answer
  }
})
