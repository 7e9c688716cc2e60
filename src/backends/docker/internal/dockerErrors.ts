// Translation of dockerode / HTTP / socket errors into the runtime's coded errors, at the edge.
import * as Effect from "effect/Effect"
import { BackendUnavailable, SandboxNotFound, SandboxOperationFailed, type SandboxError } from "../../../domain/Errors.ts"

/** The parts of a dockerode error this module reads. */
interface DockerodeError {
  readonly statusCode?: number
  readonly code?: string
  readonly message?: string
  readonly json?: { readonly message?: string } | null
  readonly reason?: string
}

const connectionCodes = new Set(["ECONNREFUSED", "ENOENT", "EACCES", "ECONNRESET", "EPIPE", "ETIMEDOUT", "EHOSTUNREACH", "ENOTFOUND"])

/** The engine's own message for an HTTP error, else the error's message. */
export const engineMessage = (error: unknown): string => {
  const e = error as DockerodeError
  const json = e?.json?.message
  if (typeof json === "string" && json !== "") return json.trim()
  return String(e?.message ?? error).trim()
}

/** The HTTP status of a dockerode error, if it has one. */
export const statusOf = (error: unknown): number | undefined => (error as DockerodeError)?.statusCode

/** True when the error means the engine could not be reached at all. */
export const isConnectionError = (error: unknown): boolean => {
  const code = (error as DockerodeError)?.code
  return typeof code === "string" && connectionCodes.has(code)
}

/** What the translation needs to name in its messages. */
export interface TranslateContext {
  /** Where the engine is expected, for BackendUnavailable's message. */
  readonly endpoint: string
  /** What was being done, e.g. `start sandbox 1a2b`. */
  readonly operation: string
  readonly sandboxId?: string | undefined
  readonly agentId?: string | undefined
}

/** Maps a foreign error to a coded one: unreachable engine -> E2047, 404 -> E2045, anything else -> E2046. */
export const translate = (error: unknown, context: TranslateContext): SandboxError => {
  const agent = context.agentId === undefined ? {} : { agentId: context.agentId }
  if (isConnectionError(error)) {
    return new BackendUnavailable({
      message: `the Docker engine at ${context.endpoint} does not answer (${(error as DockerodeError).code}) while trying to ${context.operation}; start dockerd (.ci/setup-docker.sh) or point docker.socket_path / DOCKER_HOST at a running engine`,
      ...agent
    })
  }
  if (statusOf(error) === 404 && context.sandboxId !== undefined) {
    return new SandboxNotFound({
      message: `no Docker sandbox "${context.sandboxId}" (${engineMessage(error)}); it was removed or never existed`,
      ...agent
    })
  }
  return new SandboxOperationFailed({
    message: `Docker could not ${context.operation}: ${engineMessage(error)}${statusOf(error) === undefined ? "" : ` (HTTP ${statusOf(error)})`}`,
    ...agent
  })
}

/** Runs a dockerode promise, translating its failure with {@link translate}. */
export const call = <A>(context: TranslateContext, f: () => Promise<A>): Effect.Effect<A, SandboxError> =>
  Effect.tryPromise({ try: f, catch: (error) => translate(error, context) })
