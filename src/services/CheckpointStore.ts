/**
 * The port for checkpoints: metadata rows plus content blobs, verified by SHA-256 on load.
 */
import { createHash } from "node:crypto"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as HashMap from "effect/HashMap"
import * as Layer from "effect/Layer"
import * as Ref from "effect/Ref"
import type { Checkpoint, CheckpointContent, CheckpointType } from "../domain/Checkpoint.ts"
import { CheckpointCorrupt, CheckpointNotFound, type StoreFailed } from "../domain/Errors.ts"

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
  /** Stores the content and its metadata (replacing a checkpoint with the same id). */
  readonly save: (request: CheckpointRequest) => Effect.Effect<Checkpoint, StoreFailed>
  /** Loads and verifies a checkpoint: missing -> E2061, hash mismatch or expired -> E2062. */
  readonly load: (
    checkpointId: string
  ) => Effect.Effect<{ readonly checkpoint: Checkpoint; readonly content: CheckpointContent }, StoreFailed | CheckpointNotFound | CheckpointCorrupt>
  /** An agent's checkpoints, oldest first (ties by id). */
  readonly list: (agentId: string) => Effect.Effect<ReadonlyArray<Checkpoint>, StoreFailed>
  /** Removes a checkpoint and its content; removing a missing one is not an error. */
  readonly remove: (checkpointId: string) => Effect.Effect<void, StoreFailed>
  /** Removes checkpoints whose expiry lies before `now` (ISO time); returns how many. */
  readonly removeExpired: (now: string) => Effect.Effect<number, StoreFailed>
}

/** The checkpoint store port. */
export class CheckpointStore extends Context.Service<CheckpointStore, CheckpointStoreShape>()("l02/CheckpointStore") {}

const magic = [0x4c, 0x30, 0x32, 0x43] // "L02C"
const formatVersion = 1
const headerBytes = 10

/**
 * Encodes checkpoint content as the blob every implementation stores and hashes.
 *
 * Layout: "L02C", format version (1 byte), flags (1 byte, bit 0: workspace present), length of
 * the JSON part (uint32 big-endian), the JSON `{"actorState": ...}`, then the workspace archive.
 * The actor state must be JSON; anything else is a bug of the caller (a defect).
 */
export const encodeCheckpointContent = (content: CheckpointContent): Uint8Array => {
  const json = Buffer.from(JSON.stringify({ actorState: content.actorState }), "utf8")
  const workspace = content.workspace
  const out = new Uint8Array(headerBytes + json.length + (workspace?.length ?? 0))
  out.set(magic, 0)
  out[4] = formatVersion
  out[5] = workspace === undefined ? 0 : 1
  new DataView(out.buffer).setUint32(6, json.length)
  out.set(json, headerBytes)
  if (workspace !== undefined) out.set(workspace, headerBytes + json.length)
  return out
}

/** Decodes a blob written by {@link encodeCheckpointContent}; a malformed blob is E2062. */
export const decodeCheckpointContent = (
  bytes: Uint8Array,
  checkpointId: string
): Effect.Effect<CheckpointContent, CheckpointCorrupt> =>
  Effect.suspend(() => {
    const corrupt = (why: string) =>
      Effect.fail(
        new CheckpointCorrupt({
          message: `checkpoint ${checkpointId} is corrupt (${why}); take a new checkpoint or resume the agent without one`
        })
      )
    if (bytes.length < headerBytes || magic.some((b, i) => bytes[i] !== b)) return corrupt("not a checkpoint blob")
    if (bytes[4] !== formatVersion) return corrupt(`unknown format version ${bytes[4]}`)
    const jsonLength = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(6)
    if (headerBytes + jsonLength > bytes.length) return corrupt("truncated")
    let parsed: { readonly actorState?: unknown }
    try {
      parsed = JSON.parse(Buffer.from(bytes.subarray(headerBytes, headerBytes + jsonLength)).toString("utf8"))
    } catch {
      return corrupt("actor state is not JSON")
    }
    const hasWorkspace = (bytes[5]! & 1) === 1
    if (!hasWorkspace && bytes.length !== headerBytes + jsonLength) return corrupt("trailing bytes")
    return Effect.succeed<CheckpointContent>(
      hasWorkspace
        ? { actorState: parsed.actorState, workspace: bytes.slice(headerBytes + jsonLength) }
        : { actorState: parsed.actorState }
    )
  })

/** The SHA-256 of `bytes`, lowercase hex, as kept in `Checkpoint.sha256`. */
export const sha256Hex = (bytes: Uint8Array): string => createHash("sha256").update(bytes).digest("hex")

/** Checkpoints in listing order: oldest first, ties by id. */
export const compareCheckpoints = (a: Checkpoint, b: Checkpoint): number =>
  a.createdAt < b.createdAt ? -1 : a.createdAt > b.createdAt ? 1 : a.checkpointId < b.checkpointId ? -1 : a.checkpointId > b.checkpointId ? 1 : 0

/** Whether a checkpoint's expiry lies before `nowMillis`. */
export const isExpired = (checkpoint: Checkpoint, nowMillis: number): boolean =>
  checkpoint.expiresAt !== undefined && Date.parse(checkpoint.expiresAt) < nowMillis

/**
 * Verifies a loaded blob against its metadata (expiry by the Effect `Clock`, then SHA-256) and
 * decodes it: the one check every implementation applies on load.
 */
export const verifyCheckpoint = (
  checkpoint: Checkpoint,
  bytes: Uint8Array
): Effect.Effect<{ readonly checkpoint: Checkpoint; readonly content: CheckpointContent }, CheckpointCorrupt> =>
  Effect.gen(function* () {
    const now = yield* Clock.currentTimeMillis
    if (isExpired(checkpoint, now)) {
      return yield* new CheckpointCorrupt({
        message: `checkpoint ${checkpoint.checkpointId} expired at ${checkpoint.expiresAt}; resume the agent without a checkpoint or take a new one`,
        agentId: checkpoint.agentId
      })
    }
    const actual = sha256Hex(bytes)
    if (bytes.length !== checkpoint.sizeBytes || actual !== checkpoint.sha256) {
      return yield* new CheckpointCorrupt({
        message: `checkpoint ${checkpoint.checkpointId} failed its integrity check (expected ${checkpoint.sizeBytes} bytes with sha256 ${checkpoint.sha256}, found ${bytes.length} bytes with sha256 ${actual}); its content was changed or truncated, take a new checkpoint`,
        agentId: checkpoint.agentId
      })
    }
    const content = yield* decodeCheckpointContent(bytes, checkpoint.checkpointId)
    return { checkpoint, content }
  })

/** Builds checkpoint metadata for a request and its encoded blob. */
export const checkpointMetadata = (
  request: CheckpointRequest,
  bytes: Uint8Array,
  storageLocation: string,
  createdAt: string
): Checkpoint => ({
  checkpointId: request.checkpointId,
  agentId: request.agentId,
  sessionId: request.sessionId,
  checkpointType: request.checkpointType,
  storageLocation,
  sizeBytes: bytes.length,
  sha256: sha256Hex(bytes),
  createdAt,
  ...(request.expiresAt === undefined ? {} : { expiresAt: request.expiresAt })
})

interface Stored {
  readonly checkpoint: Checkpoint
  readonly bytes: Uint8Array
}

/**
 * The in-memory checkpoint store: metadata and content bytes in a `Ref`, verified by SHA-256 on
 * load like the durable store. Each build starts empty.
 */
export const layerMemory: Layer.Layer<CheckpointStore> = Layer.effect(
  CheckpointStore,
  Effect.gen(function* () {
    const ref = yield* Ref.make(HashMap.empty<string, Stored>())
    return CheckpointStore.of({
      save: (request) =>
        Effect.gen(function* () {
          const now = yield* Clock.currentTimeMillis
          const bytes = encodeCheckpointContent(request.content)
          const checkpoint = checkpointMetadata(request, bytes, `memory:${request.checkpointId}`, new Date(now).toISOString())
          yield* Ref.update(ref, HashMap.set(request.checkpointId, { checkpoint, bytes }))
          return checkpoint
        }),
      load: (checkpointId) =>
        Effect.gen(function* () {
          const stored = HashMap.get(yield* Ref.get(ref), checkpointId)
          if (stored._tag === "None") {
            return yield* new CheckpointNotFound({
              message: `checkpoint ${checkpointId} does not exist; list the agent's checkpoints to find a valid id`
            })
          }
          return yield* verifyCheckpoint(stored.value.checkpoint, stored.value.bytes)
        }),
      list: (agentId) =>
        Effect.map(Ref.get(ref), (m) =>
          Array.from(HashMap.values(m), (s) => s.checkpoint)
            .filter((c) => c.agentId === agentId)
            .sort(compareCheckpoints)
        ),
      remove: (checkpointId) => Ref.update(ref, HashMap.remove(checkpointId)),
      removeExpired: (now) =>
        Ref.modify(ref, (m) => {
          const cutoff = Date.parse(now)
          const expired = Array.from(HashMap.values(m)).filter((s) => isExpired(s.checkpoint, cutoff))
          return [expired.length, HashMap.removeMany(m, expired.map((s) => s.checkpoint.checkpointId))] as const
        })
    })
  })
)
