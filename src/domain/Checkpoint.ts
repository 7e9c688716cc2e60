/**
 * A checkpoint: an agent's persisted actor state plus, when taken, its workspace archive.
 */
import * as Schema from "effect/Schema"

/** Why a checkpoint was taken. */
export const CheckpointType = Schema.Literals(["suspend", "manual", "pre_terminate"])
/** @see CheckpointType */
export type CheckpointType = typeof CheckpointType.Type

/** Checkpoint metadata, as kept in agent_checkpoints. */
export const Checkpoint = Schema.Struct({
  checkpointId: Schema.String,
  agentId: Schema.String,
  sessionId: Schema.String,
  checkpointType: CheckpointType,
  storageLocation: Schema.String,
  sizeBytes: Schema.Number,
  sha256: Schema.String,
  createdAt: Schema.String,
  expiresAt: Schema.optional(Schema.String)
})
/** @see Checkpoint */
export type Checkpoint = typeof Checkpoint.Type

/** The content of a checkpoint: the actor state as JSON and the workspace as a tar archive. */
export interface CheckpointContent {
  readonly actorState: unknown
  readonly workspace?: Uint8Array | undefined
}
