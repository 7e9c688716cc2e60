// The edge where the Kubernetes client's errors (ApiException, fetch and WebSocket failures) become
// the runtime's coded errors, each message naming the operation and what to do about it.
import * as Effect from "effect/Effect"
import {
  BackendUnavailable,
  SandboxConfigInvalid,
  SandboxNotFound,
  SandboxOperationFailed,
  type SandboxError
} from "../../../domain/Errors.ts"

/** What was being done, for messages. */
export interface CallContext {
  readonly server: string
  readonly namespace: string
  readonly operation: string
  readonly sandboxId?: string | undefined
  readonly agentId?: string | undefined
}

/** The HTTP status of a client error: ApiException's `code`, a watch error's `statusCode`, or a refused WebSocket upgrade. */
export const statusOf = (error: unknown): number | undefined => {
  if (typeof error !== "object" || error === null) return undefined
  const e = error as { code?: unknown; statusCode?: unknown; message?: unknown }
  if (typeof e.code === "number") return e.code
  if (typeof e.statusCode === "number") return e.statusCode
  const upgrade = typeof e.message === "string" ? /Unexpected server response: (\d{3})/.exec(e.message) : null
  return upgrade === null ? undefined : Number(upgrade[1])
}

/** The API server's own message (a Status object's `message`), else the error's message. */
export const apiMessage = (error: unknown): string => {
  if (typeof error === "object" && error !== null) {
    const body = (error as { body?: unknown }).body
    if (typeof body === "string") {
      try {
        const parsed = JSON.parse(body) as { message?: unknown }
        if (typeof parsed.message === "string") return parsed.message
      } catch {
        if (body.trim() !== "") return body.trim()
      }
    } else if (typeof body === "object" && body !== null && typeof (body as { message?: unknown }).message === "string") {
      return (body as { message: string }).message
    }
    const cause = (error as { cause?: unknown }).cause
    // A refused WebSocket upgrade arrives as the ws library's ErrorEvent: not an Error, but with a message.
    const own = (error as { message?: unknown }).message
    const message = error instanceof Error ? error.message : typeof own === "string" && own !== "" ? own : String(error)
    if (cause instanceof Error && cause.message !== "" && !message.includes(cause.message)) return `${message}: ${cause.message}`
    return message
  }
  return String(error)
}

/** The `reason` of a Status body (AlreadyExists, NotFound, Conflict, Invalid...), when there is one. */
export const apiReason = (error: unknown): string | undefined => {
  const body = typeof error === "object" && error !== null ? (error as { body?: unknown }).body : undefined
  try {
    const parsed = (typeof body === "string" ? JSON.parse(body) : body) as { reason?: unknown } | undefined
    return typeof parsed?.reason === "string" ? parsed.reason : undefined
  } catch {
    return undefined
  }
}

/** Translates a client error into the runtime's coded error for the operation in `ctx`. */
export const translate = (error: unknown, ctx: CallContext): SandboxError => {
  const status = statusOf(error)
  const message = apiMessage(error)
  const about = { ...(ctx.agentId === undefined ? {} : { agentId: ctx.agentId }) }
  const where = `the Kubernetes API at ${ctx.server}`
  if (status === undefined) {
    return new BackendUnavailable({
      message: `cannot reach ${where} to ${ctx.operation}: ${message}; check the server address and credentials (kubernetes.kubeconfig / kubernetes.context) and that the cluster is up`,
      ...about
    })
  }
  switch (status) {
    case 401:
      return new BackendUnavailable({
        message: `${where} refused the credentials to ${ctx.operation} (401 Unauthorized: ${message}); refresh the token or the kubeconfig`,
        ...about
      })
    case 403:
      return new SandboxOperationFailed({
        message: `${where} forbids this to ${ctx.operation} in namespace ${ctx.namespace} (403: ${message}); bind the runtime's service account to the Role and ClusterRole of config/kubernetes/rbac.yaml`,
        ...about
      })
    case 404:
      if (ctx.sandboxId !== undefined) {
        return new SandboxNotFound({ message: `no sandbox ${ctx.sandboxId} in namespace ${ctx.namespace} (${message}); it was removed or never provisioned`, ...about })
      }
      return new SandboxOperationFailed({
        message: `${where} has no such object to ${ctx.operation} (404: ${message}); if the namespace ${ctx.namespace} is missing, apply config/kubernetes/namespace.yaml`,
        ...about
      })
    case 409:
      return new SandboxOperationFailed({ message: `conflict to ${ctx.operation} (409: ${message}): the object changed concurrently; read it again and retry`, ...about })
    case 400:
    case 422:
      return new SandboxConfigInvalid({ message: `${where} rejected the request to ${ctx.operation} (${status}: ${message}); fix the sandbox configuration it names`, ...about })
    default:
      return new SandboxOperationFailed({ message: `${where} failed to ${ctx.operation} (${status}: ${message}); retry, and check the API server's health if it persists`, ...about })
  }
}

/** Runs a client call, translating its failure. */
export const call = <A>(ctx: CallContext, f: () => Promise<A>): Effect.Effect<A, SandboxError> =>
  Effect.tryPromise({ try: f, catch: (error) => translate(error, ctx) })

/** Runs a client call; a 404 is `undefined`, any other failure is translated. */
export const callOptional = <A>(ctx: CallContext, f: () => Promise<A>): Effect.Effect<A | undefined, SandboxError> =>
  Effect.tryPromise({ try: f, catch: (error) => error }).pipe(
    Effect.map((a): A | undefined => a),
    Effect.catch((error) => (statusOf(error) === 404 ? Effect.succeed(undefined) : Effect.fail(translate(error, ctx))))
  )
