/**
 * The CLI against a running `l02 serve`: the operations the commands use, over the HTTP API, with the
 * server's coded errors rebuilt as the same errors (and exit codes) as embedded. The API key goes in the
 * Authorization header only; no message ever contains it.
 */
import type { AgentInstance, SpawnResult } from "../domain/AgentInstance.ts"
import type { AgentState } from "../domain/AgentState.ts"
import type { Checkpoint } from "../domain/Checkpoint.ts"
import type { ErrorCode } from "../domain/ErrorCatalog.ts"
import { BackendUnavailable, fromErrorData, type RuntimeError } from "../domain/Errors.ts"
import type { FleetStatus } from "../domain/FleetStatus.ts"
import type { PoolStatus } from "../domain/PoolStatus.ts"
import type { LifecycleEvent } from "../domain/LifecycleEvent.ts"
import type { WorkflowRun, WorkflowSummary } from "../domain/WorkflowRun.ts"
import type { ExecutionRun, RunEvent } from "../domain/ExecutionRun.ts"
import type { L02Runtime } from "../runtime/createRuntime.ts"

/** What the CLI's commands use of a runtime, embedded or remote. */
export type CliRuntime = Pick<
  L02Runtime,
  "spawn" | "list" | "getState" | "suspend" | "resume" | "terminate" | "checkpoints" | "execute" | "runs" | "fleetStatus" | "scale" | "fleetOperations" | "pools" | "shutdown" | "workflows"
> & {
  /** The server's URL when the runtime is a server's (runs then outlive the command); absent when embedded. */
  readonly server?: string | undefined
}

type FleetOperation = Awaited<ReturnType<L02Runtime["scale"]>>

/** The server's error body, rebuilt as the coded error it reports. */
const errorOf = (status: number, body: unknown): RuntimeError => {
  const error = (body as { error?: { code?: unknown; message?: unknown; agentId?: unknown } } | undefined)?.error
  if (typeof error?.code === "string" && typeof error.message === "string") {
    try {
      return fromErrorData({ code: error.code as ErrorCode, message: error.message, retryable: false }, typeof error.agentId === "string" ? error.agentId : undefined)
    } catch {
      // an unknown code: fall through
    }
  }
  return new BackendUnavailable({ message: `the l02 server answered HTTP ${status} without a coded error; is the URL that of \`l02 serve\`?` })
}

/** The response's body as JSON, or undefined when it is empty or not JSON. */
const jsonOf = async (response: Response): Promise<unknown> => {
  const text = await response.text()
  if (text === "") return undefined
  try {
    return JSON.parse(text) as unknown
  } catch {
    return undefined
  }
}

/** The data of each Server-Sent Event of a response; `event: error` throws the error it carries. */
async function* sseEvents(response: Response): AsyncIterable<unknown> {
  const decoder = new TextDecoder()
  let buffer = ""
  let event = "message"
  let data: Array<string> = []
  for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
    buffer += decoder.decode(chunk, { stream: true })
    let newline: number
    while ((newline = buffer.indexOf("\n")) !== -1) {
      const line = buffer.slice(0, newline).replace(/\r$/, "")
      buffer = buffer.slice(newline + 1)
      if (line === "") {
        if (data.length > 0) {
          const parsed = JSON.parse(data.join("\n")) as unknown
          if (event === "error") throw errorOf(500, parsed)
          yield parsed
        }
        event = "message"
        data = []
      } else if (line.startsWith("event:")) event = line.slice(6).trim()
      else if (line.startsWith("data:")) data.push(line.slice(5).trimStart())
    }
  }
}

/** A runtime served elsewhere, reached at `url` (e.g. http://127.0.0.1:8080) with an optional API key. */
export const remoteRuntime = (url: string, apiKey: string | undefined): CliRuntime => {
  const base = url.replace(/\/+$/, "")
  const headers = (json: boolean): Record<string, string> => ({
    ...(apiKey === undefined || apiKey === "" ? {} : { authorization: `Bearer ${apiKey}` }),
    ...(json ? { "content-type": "application/json" } : {})
  })
  const send = async (method: string, path: string, body?: unknown): Promise<Response> => {
    try {
      return await fetch(`${base}${path}`, { method, headers: headers(body !== undefined), ...(body === undefined ? {} : { body: JSON.stringify(body) }) })
    } catch (error) {
      throw new BackendUnavailable({ message: `no l02 server answers at ${base} (${(error as Error).cause instanceof Error ? ((error as Error).cause as Error).message : (error as Error).message}); start \`l02 serve\` or fix --url / L02_URL` })
    }
  }
  const call = async <A>(method: string, path: string, body?: unknown): Promise<A> => {
    const response = await send(method, path, body)
    const json = await jsonOf(response)
    if (!response.ok) throw errorOf(response.status, json)
    return json as A
  }
  const id = (agentId: string) => encodeURIComponent(agentId)
  const getWorkflow = (workflowId: string) => call<WorkflowRun>("GET", `/v1/workflows/${id(workflowId)}`)
  const workflowEvents = (workflowId: string): AsyncIterable<LifecycleEvent> => ({
    [Symbol.asyncIterator]: async function* () {
      const response = await send("GET", `/v1/workflows/${id(workflowId)}/events`)
      if (!response.ok) throw errorOf(response.status, await jsonOf(response))
      yield* sseEvents(response) as AsyncIterable<LifecycleEvent>
    }
  })

  return {
    server: base,
    spawn: (config, initialContext) => call<SpawnResult>("POST", "/v1/agents", { config, ...(initialContext === undefined ? {} : { initialContext }) }),
    list: async () => (await call<{ agents: ReadonlyArray<AgentInstance> }>("GET", "/v1/agents")).agents,
    getState: (agentId) => call<AgentInstance>("GET", `/v1/agents/${id(agentId)}`),
    suspend: async (agentId, options) =>
      (await call<{ checkpointId?: string }>("POST", `/v1/agents/${id(agentId)}/suspend`, { checkpoint: options?.checkpoint === true })).checkpointId,
    resume: async (agentId, checkpointId) =>
      (await call<{ state: AgentState }>("POST", `/v1/agents/${id(agentId)}/resume`, checkpointId === undefined ? {} : { checkpointId })).state,
    terminate: async (agentId, options) => {
      await call("DELETE", `/v1/agents/${id(agentId)}`, { ...(options?.force === undefined ? {} : { force: options.force }), ...(options?.reason === undefined ? {} : { reason: options.reason }) })
    },
    checkpoints: async (agentId) => (await call<{ checkpoints: ReadonlyArray<Checkpoint> }>("GET", `/v1/agents/${id(agentId)}/checkpoints`)).checkpoints,
    fleetStatus: () => call<FleetStatus>("GET", "/v1/fleet"),
    scale: (pool, replicas, options) =>
      call<FleetOperation>("POST", "/v1/fleet/scale", {
        pool,
        replicas,
        ...(options?.template === undefined ? {} : { template: options.template }),
        ...(options?.reason === undefined ? {} : { reason: options.reason }),
        ...(options?.priority === undefined ? {} : { priority: options.priority })
      }),
    fleetOperations: async (limit) => (await call<{ operations: ReadonlyArray<FleetOperation> }>("GET", `/v1/fleet/operations${limit === undefined ? "" : `?limit=${limit}`}`)).operations,
    pools: async () => (await call<{ pools: ReadonlyArray<PoolStatus> }>("GET", "/v1/pools")).pools,
    /** Streams the step's events as the server sends them (Server-Sent Events); `event: error` ends it with that error. */
    execute: (agentId, input, options) => ({
      [Symbol.asyncIterator]: async function* () {
        const response = await send("POST", `/v1/agents/${id(agentId)}/execute`, { input, ...(options?.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }) })
        if (!response.ok) throw errorOf(response.status, await jsonOf(response))
        for await (const event of sseEvents(response)) {
          yield event as never
          if ((event as { type?: unknown }).type === "done") return
        }
      }
    }),
    runs: {
      start: (agentId, input, options) =>
        call<ExecutionRun>("POST", `/v1/agents/${id(agentId)}/execute`, { input, detach: true, ...(options?.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }) }),
      /** The run's events after `from` as the server sends them, ending with its end event. */
      attach: (runId, options) => ({
        [Symbol.asyncIterator]: async function* () {
          const response = await send("GET", `/v1/runs/${id(runId)}/events${options?.from === undefined ? "" : `?from=${options.from}`}`)
          if (!response.ok) throw errorOf(response.status, await jsonOf(response))
          for await (const event of sseEvents(response)) {
            yield event as RunEvent
            if ((event as RunEvent).event?.type === "end") return
          }
        }
      }),
      get: (runId) => call<ExecutionRun>("GET", `/v1/runs/${id(runId)}`),
      list: async (query) => {
        const params = new URLSearchParams()
        if (query?.agentId !== undefined) params.set("agentId", query.agentId)
        if (query?.status !== undefined) params.set("status", typeof query.status === "string" ? query.status : query.status.join(","))
        if (query?.limit !== undefined) params.set("limit", String(query.limit))
        const search = params.toString()
        return (await call<{ runs: ReadonlyArray<ExecutionRun> }>("GET", `/v1/runs${search === "" ? "" : `?${search}`}`)).runs
      },
      cancel: (runId) => call<ExecutionRun>("POST", `/v1/runs/${id(runId)}/cancel`)
    },
    workflows: {
      start: (graph, input) => call<WorkflowRun>("POST", "/v1/workflows", { graph, ...(input === undefined ? {} : { input }) }),
      get: getWorkflow,
      list: async () => (await call<{ workflows: ReadonlyArray<WorkflowSummary> }>("GET", "/v1/workflows")).workflows,
      signal: (workflowId, node, value) => call<WorkflowRun>("POST", `/v1/workflows/${id(workflowId)}/signal`, { node, ...(value === undefined ? {} : { value }) }),
      cancel: (workflowId, reason) => call<WorkflowRun>("POST", `/v1/workflows/${id(workflowId)}/cancel`, reason === undefined ? {} : { reason }),
      events: workflowEvents,
      /** The run's event stream ends with its end: then the run is read. */
      wait: async (workflowId) => {
        for await (const _ of workflowEvents(workflowId)) {
          // drained
        }
        return getWorkflow(workflowId)
      },
      actorOf: () => undefined
    },
    shutdown: async () => {}
  }
}
