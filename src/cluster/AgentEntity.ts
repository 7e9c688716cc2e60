/**
 * The agent as an Effect Cluster entity: one entity per agent id, hosted by the runner that owns
 * the id's shard. Its messages are the agent operations; those that change an agent (spawn,
 * suspend, resume, terminate) are persisted in the cluster's message storage before they are
 * delivered, so one accepted by a runner that then dies is still carried out by the agent's owner,
 * once (each carries the id of its request as primary key, so a redelivery is answered, not redone).
 *
 * Values cross runners as JSON-safe data; a coded error crosses as {@link RemoteFailure} (its code
 * and fields) and is rebuilt on the caller's side, so a caller sees the same coded errors as a
 * local one.
 */
import * as Entity from "effect/cluster/Entity"
import * as ClusterSchema from "effect/cluster/ClusterSchema"
import * as Rpc from "effect/rpc/Rpc"
import * as Schema from "effect/Schema"

/** A coded error raised on the agent's owner: its code and fields, rebuilt by the caller. */
export class RemoteFailure extends Schema.TaggedError<RemoteFailure>()("RemoteFailure", {
  code: Schema.String,
  fields: Schema.Record(Schema.String, Schema.Unknown)
}) {}

const Json = Schema.Unknown

/** Operations that change the agent: persisted, deduplicated by their request id. */
const requestId = Schema.String
const byRequest = (p: { readonly requestId: string }) => p.requestId

/** The agent entity's protocol. */
export const AgentEntity = Entity.make("l02/agent", [
  Rpc.make("spawn", { payload: { requestId, config: Json, initialContext: Json, policy: Json }, success: Json, error: RemoteFailure, primaryKey: byRequest })
    .annotate(ClusterSchema.Persisted, true)
    .annotate(ClusterSchema.Uninterruptible, "server"),
  Rpc.make("terminate", { payload: { requestId, options: Json }, success: Json, error: RemoteFailure, primaryKey: byRequest })
    .annotate(ClusterSchema.Persisted, true)
    .annotate(ClusterSchema.Uninterruptible, "server"),
  Rpc.make("suspend", { payload: { requestId, options: Json }, success: Json, error: RemoteFailure, primaryKey: byRequest })
    .annotate(ClusterSchema.Persisted, true)
    .annotate(ClusterSchema.Uninterruptible, "server"),
  Rpc.make("resume", { payload: { requestId, checkpointId: Schema.optional(Schema.String) }, success: Json, error: RemoteFailure, primaryKey: byRequest })
    .annotate(ClusterSchema.Persisted, true)
    .annotate(ClusterSchema.Uninterruptible, "server"),
  Rpc.make("getState", { success: Json, error: RemoteFailure }),
  Rpc.make("health", { success: Json, error: RemoteFailure }),
  Rpc.make("checkpoints", { success: Json, error: RemoteFailure }),
  Rpc.make("execute", {
    payload: { input: Json, timeoutMs: Schema.optional(Schema.Number), cancelOnDisconnect: Schema.optional(Schema.Boolean) },
    success: Json,
    error: RemoteFailure,
    stream: true
  }),
  // Durable execute runs (the run's events are read from the shared store, through any runner).
  Rpc.make("startRun", { payload: { input: Json, timeoutMs: Schema.optional(Schema.Number) }, success: Json, error: RemoteFailure }),
  Rpc.make("cancelRun", { payload: { runId: Schema.String }, success: Json, error: RemoteFailure })
])
