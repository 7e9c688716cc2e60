/**
 * What the public operations take, checked before anything is looked up or changed: ids are UUIDs
 * (any case, answered in lowercase, the one spelling the runtime keeps), options are objects with
 * only the fields they declare, of their declared types. Anything else is E2001 naming the argument.
 */
import * as Effect from "effect/Effect"
import { InputInvalid } from "../../domain/Errors.ts"
import { type RunStatus, runStatuses } from "../../domain/ExecutionRun.ts"
import type { RunQuery } from "../../services/RunLog.ts"
import type { AttachOptions, ExecuteOptions, SuspendOptions, TerminateOptions } from "../AgentRuntimeApi.ts"

const uuidPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

/** A value as a message shows it: its type, and a short spelling of it. */
const shown = (value: unknown): string => {
  if (value === null) return "null"
  if (Array.isArray(value)) return "an array"
  if (typeof value === "string") return JSON.stringify(value.length > 60 ? `${value.slice(0, 60)}...` : value)
  if (typeof value === "object") return "an object"
  return `${typeof value} ${String(value).slice(0, 40)}`
}

/** A UUID argument in its canonical (lowercase) spelling, or E2001 naming the argument. */
export const uuidOf = (value: unknown, key: string, what: string): Effect.Effect<string, InputInvalid> =>
  typeof value === "string" && uuidPattern.test(value)
    ? Effect.succeed(value.toLowerCase())
    : Effect.fail(new InputInvalid({ message: `${key} must be ${what}, a UUID like 6f1c2d0e-9a4b-4c1e-8f55-2f1d3a7b9c10; got ${shown(value)}`, key }))

/** An agent id argument, canonical. */
export const agentIdOf = (value: unknown): Effect.Effect<string, InputInvalid> => uuidOf(value, "agentId", "an agent id (l02 ls, GET /v1/agents and runtime.list() show them)")

/** An optional checkpoint id argument, canonical. */
export const checkpointIdOf = (value: unknown): Effect.Effect<string | undefined, InputInvalid> =>
  value === undefined ? Effect.succeed(undefined) : uuidOf(value, "checkpointId", "a checkpoint id (runtime.checkpoints(agentId) lists them)")

type FieldType = "boolean" | "string" | "positiveInteger" | "sequence" | "statusList" | "abortSignal"

const fits = (type: FieldType, value: unknown): boolean =>
  type === "boolean"
    ? typeof value === "boolean"
    : type === "string"
      ? typeof value === "string" && value.length <= 4096
      : type === "positiveInteger"
        ? typeof value === "number" && Number.isInteger(value) && value > 0
        : type === "sequence"
          ? typeof value === "number" && Number.isSafeInteger(value) && value >= 0
          : type === "statusList"
            ? (typeof value === "string" ? [value] : Array.isArray(value) ? value : [undefined]).every((s) => runStatuses.includes(s as RunStatus))
            : value instanceof AbortSignal

const spelled: Readonly<Record<FieldType, string>> = {
  boolean: "true or false",
  string: "a string of at most 4096 characters",
  positiveInteger: "a positive integer",
  sequence: "a sequence number: an integer of 0 or more",
  statusList: `a run status or an array of them (${runStatuses.join(", ")})`,
  abortSignal: "an AbortSignal"
}

/** An options argument: undefined, or an object with only `fields`, each of its type (undefined allowed). */
const optionsOf = <A>(value: unknown, key: string, fields: Readonly<Record<string, FieldType>>): Effect.Effect<A | undefined, InputInvalid> =>
  Effect.suspend(() => {
    if (value === undefined) return Effect.succeed(undefined)
    if (typeof value !== "object" || value === null || Array.isArray(value)) {
      return Effect.fail(new InputInvalid({ message: `${key} must be an object with ${Object.keys(fields).join(", ")}; got ${shown(value)}`, key }))
    }
    for (const [name, field] of Object.entries(value)) {
      const type = fields[name]
      if (type === undefined) {
        return Effect.fail(new InputInvalid({ message: `${key}.${name} is not an option here; the options are ${Object.keys(fields).join(", ")}`, key: `${key}.${name}` }))
      }
      if (field !== undefined && !fits(type, field)) {
        return Effect.fail(new InputInvalid({ message: `${key}.${name} must be ${spelled[type]}; got ${shown(field)}`, key: `${key}.${name}` }))
      }
    }
    return Effect.succeed(value as A)
  })

/** The options of suspend. */
export const suspendOptionsOf = (value: unknown) => optionsOf<SuspendOptions>(value, "options", { checkpoint: "boolean" })

/** The options of terminate. */
export const terminateOptionsOf = (value: unknown) => optionsOf<TerminateOptions>(value, "options", { reason: "string", force: "boolean" })

/** The options of execute. */
export const executeOptionsOf = (value: unknown) =>
  optionsOf<ExecuteOptions>(value, "options", { timeoutMs: "positiveInteger", signal: "abortSignal", cancelOnDisconnect: "boolean" })

/** The options of runs.attach: `from`, a sequence number (0 or more). */
export const attachOptionsOf = (value: unknown): Effect.Effect<AttachOptions | undefined, InputInvalid> =>
  optionsOf<AttachOptions>(value, "options", { from: "sequence" })

/** The query of runs.list: an agent id (canonical), a status or statuses, a limit (1-1000). */
export const runQueryOf = (value: unknown): Effect.Effect<RunQuery | undefined, InputInvalid> =>
  Effect.gen(function* () {
    const query = yield* optionsOf<{ agentId?: unknown; status?: unknown; limit?: unknown }>(value, "query", { agentId: "string", status: "statusList", limit: "positiveInteger" })
    if (query === undefined) return undefined
    const agentId = query.agentId === undefined ? undefined : yield* uuidOf(query.agentId, "query.agentId", "an agent id")
    if (typeof query.limit === "number" && query.limit > 1000) {
      return yield* new InputInvalid({ message: `query.limit must be at most 1000; got ${query.limit}`, key: "query.limit" })
    }
    return {
      ...(agentId === undefined ? {} : { agentId }),
      ...(query.status === undefined ? {} : { status: query.status as RunQuery["status"] }),
      ...(query.limit === undefined ? {} : { limit: query.limit as number })
    }
  })

/** A run id argument, canonical. */
export const runIdOf = (value: unknown): Effect.Effect<string, InputInvalid> =>
  uuidOf(value, "runId", "a run id (the done event's executionId, runs.list(), GET /v1/runs and l02 runs show them)")
