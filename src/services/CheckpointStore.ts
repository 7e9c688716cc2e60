/**
 * The port for checkpoints: metadata rows plus content blobs, verified by SHA-256 on load.
 */
import { Context, type Effect } from "effect"
import type { Checkpoint, CheckpointContent, CheckpointType } from "../domain/Checkpoint.ts"
import type { CheckpointCorrupt, CheckpointNotFound, StoreFailed } from "../domain/Errors.ts"

/** What to store. */
export interface CheckpointRequest {
  readonly checkpointId: string
  readonly agentId: string
  readonly sessionId: string
  readonly checkpointType: CheckpointType
  readonly content: CheckpointContent
  readonly expiresAt?: string | undefined
}

/** The shape of the checkpoint store. */
export interface CheckpointStoreShape {
  readonly save: (request: CheckpointRequest) => Effect.Effect<Checkpoint, StoreFailed>
  /** Loads and verifies a checkpoint: missing -> E2061, hash mismatch or expired -> E2062. */
  readonly load: (
    checkpointId: string
  ) => Effect.Effect<{ readonly checkpoint: Checkpoint; readonly content: CheckpointContent }, StoreFailed | CheckpointNotFound | CheckpointCorrupt>
  readonly list: (agentId: string) => Effect.Effect<ReadonlyArray<Checkpoint>, StoreFailed>
  readonly remove: (checkpointId: string) => Effect.Effect<void, StoreFailed>
  /** Removes checkpoints whose expiry lies before `now` (ISO time); returns how many. */
  readonly removeExpired: (now: string) => Effect.Effect<number, StoreFailed>
}

/** The checkpoint store port. */
export class CheckpointStore extends Context.Service<CheckpointStore, CheckpointStoreShape>()("l02/CheckpointStore") {}
