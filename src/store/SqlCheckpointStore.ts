/**
 * The checkpoint store over `effect/sql` plus a blob directory.
 *
 * Content is encoded once (`encodeCheckpointContent`) and written to `<blobDir>/<checkpointId>.bin`
 * atomically (a temporary file, fsync, then rename), and the metadata row with its size and SHA-256
 * goes to agent_checkpoints. A load reads the row, then the file, and verifies expiry, size and hash
 * before decoding, so a truncated or altered file is E2062, never wrong data.
 */
import { randomUUID } from "node:crypto"
import { mkdir, open, readFile, rename, rm } from "node:fs/promises"
import { join, resolve } from "node:path"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { SqlClient } from "effect/sql/SqlClient"
import type { Checkpoint, CheckpointType } from "../domain/Checkpoint.ts"
import { CheckpointCorrupt, CheckpointNotFound, StoreFailed } from "../domain/Errors.ts"
import { CheckpointStore, checkpointMetadata, encodeCheckpointContent, verifyCheckpoint } from "../services/CheckpointStore.ts"
import { columnList, defaultTarget, dialectOf, isoColumn, isUuid, optional, type StoreTarget, storeFailed } from "./internal/sqlSupport.ts"

/** Options of {@link layer}. */
export interface SqlCheckpointStoreOptions {
  /** The directory holding the content files; created when missing. */
  readonly blobDir: string
  readonly target?: StoreTarget | undefined
}

const columnsPg = [
  "checkpoint_id::text AS checkpoint_id",
  "agent_id::text AS agent_id",
  "session_id::text AS session_id",
  "checkpoint_type",
  "storage_location",
  "size_bytes",
  "sha256",
  isoColumn("created_at"),
  isoColumn("expires_at")
]
const columnsPlain = ["checkpoint_id", "agent_id", "session_id", "checkpoint_type", "storage_location", "size_bytes", "sha256", "created_at", "expires_at"]

type Row = Readonly<Record<string, unknown>>

const toCheckpoint = (row: Row): Checkpoint => ({
  checkpointId: String(row.checkpoint_id),
  agentId: String(row.agent_id),
  sessionId: String(row.session_id),
  checkpointType: String(row.checkpoint_type) as CheckpointType,
  storageLocation: String(row.storage_location),
  sizeBytes: Number(row.size_bytes),
  sha256: String(row.sha256).trim(),
  createdAt: String(row.created_at),
  ...optional("expiresAt", row.expires_at)
})

const fsFailed = (what: string, blobDir: string) => (cause: unknown) =>
  new StoreFailed({
    message: `${what} failed (${cause instanceof Error ? cause.message : String(cause)}); check that the checkpoint directory ${blobDir} exists, is writable and has free space`
  })

const writeAtomically = async (path: string, bytes: Uint8Array) => {
  const temporary = `${path}.${randomUUID()}.tmp`
  const file = await open(temporary, "w", 0o600)
  try {
    await file.writeFile(bytes)
    await file.sync()
  } finally {
    await file.close()
  }
  try {
    await rename(temporary, path)
  } catch (error) {
    await rm(temporary, { force: true })
    throw error
  }
}

/** Builds the SQL checkpoint store over the `SqlClient` in context (migrations must have run). */
export const make = (options: SqlCheckpointStoreOptions) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient
    const dialect = dialectOf(sql)
    const columns = columnList(dialect, columnsPg, columnsPlain)
    const timestamp = (value: string | null) => (dialect === "sqlite" ? sql`${value}` : sql`${value}::timestamp`)
    const target = options.target ?? defaultTarget
    const blobDir = resolve(options.blobDir)
    yield* Effect.tryPromise({ try: () => mkdir(blobDir, { recursive: true }), catch: fsFailed("creating the checkpoint directory", blobDir) })
    const pathOf = (checkpointId: string) => join(blobDir, `${checkpointId}.bin`)
    const removeFiles = (paths: ReadonlyArray<string>) =>
      Effect.forEach(paths, (path) => Effect.tryPromise({ try: () => rm(path, { force: true }), catch: fsFailed(`removing ${path}`, blobDir) }), {
        discard: true
      })

    return CheckpointStore.of({
      save: (request) =>
        Effect.gen(function* () {
          if (!isUuid(request.checkpointId)) {
            return yield* new StoreFailed({
              message: `checkpoint id ${JSON.stringify(request.checkpointId)} is not a UUID; checkpoint ids are UUIDs`,
              agentId: request.agentId
            })
          }
          const now = yield* Clock.currentTimeMillis
          const bytes = encodeCheckpointContent(request.content)
          const path = pathOf(request.checkpointId)
          const checkpoint = checkpointMetadata(request, bytes, path, new Date(now).toISOString())
          yield* Effect.tryPromise({ try: () => writeAtomically(path, bytes), catch: fsFailed(`writing checkpoint ${request.checkpointId}`, blobDir) })
          yield* sql`INSERT INTO agent_checkpoints (checkpoint_id, agent_id, session_id, checkpoint_type, storage_location,
                       size_bytes, sha256, created_at, expires_at)
                     VALUES (${checkpoint.checkpointId}, ${checkpoint.agentId}, ${checkpoint.sessionId}, ${checkpoint.checkpointType},
                       ${checkpoint.storageLocation}, ${checkpoint.sizeBytes}, ${checkpoint.sha256}, ${timestamp(checkpoint.createdAt)},
                       ${timestamp(checkpoint.expiresAt ?? null)})
                     ON CONFLICT (checkpoint_id) DO UPDATE SET
                       agent_id = EXCLUDED.agent_id, session_id = EXCLUDED.session_id, checkpoint_type = EXCLUDED.checkpoint_type,
                       storage_location = EXCLUDED.storage_location, size_bytes = EXCLUDED.size_bytes, sha256 = EXCLUDED.sha256,
                       created_at = EXCLUDED.created_at, expires_at = EXCLUDED.expires_at`.pipe(
            storeFailed(target, `saving checkpoint ${request.checkpointId}`, request.agentId)
          )
          return checkpoint
        }),

      load: (checkpointId) =>
        Effect.gen(function* () {
          const notFound = new CheckpointNotFound({
            message: `checkpoint ${checkpointId} does not exist; list the agent's checkpoints to find a valid id`
          })
          if (!isUuid(checkpointId)) return yield* notFound
          const rows = yield* sql<Row>`SELECT ${sql.literal(columns)} FROM agent_checkpoints WHERE checkpoint_id = ${checkpointId}`.pipe(
            storeFailed(target, `reading checkpoint ${checkpointId}`)
          )
          if (rows[0] === undefined) return yield* notFound
          const checkpoint = toCheckpoint(rows[0])
          const bytes = yield* Effect.tryPromise({
            try: () => readFile(checkpoint.storageLocation),
            catch: (cause) =>
              (cause as { code?: unknown }).code === "ENOENT"
                ? new CheckpointCorrupt({
                    message: `checkpoint ${checkpointId} has lost its content file ${checkpoint.storageLocation}; take a new checkpoint`,
                    agentId: checkpoint.agentId
                  })
                : fsFailed(`reading checkpoint ${checkpointId}`, blobDir)(cause)
          })
          return yield* verifyCheckpoint(checkpoint, new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength))
        }),

      list: (agentId) =>
        isUuid(agentId)
          ? sql<Row>`SELECT ${sql.literal(columns)} FROM agent_checkpoints WHERE agent_id = ${agentId}
                     ORDER BY agent_checkpoints.created_at, agent_checkpoints.checkpoint_id`.pipe(
              Effect.map((rows) => rows.map(toCheckpoint)),
              storeFailed(target, `listing the checkpoints of agent ${agentId}`, agentId)
            )
          : Effect.succeed([]),

      remove: (checkpointId) =>
        isUuid(checkpointId)
          ? sql<Row>`DELETE FROM agent_checkpoints WHERE checkpoint_id = ${checkpointId} RETURNING storage_location`.pipe(
              storeFailed(target, `removing checkpoint ${checkpointId}`),
              // The file goes after its row, so a failure in between leaves an orphan file, never a row without content.
              Effect.flatMap((rows) => removeFiles([pathOf(checkpointId), ...rows.map((r) => String(r.storage_location))]))
            )
          : Effect.void,

      removeExpired: (now) =>
        sql<Row>`DELETE FROM agent_checkpoints WHERE expires_at < ${timestamp(now)} RETURNING storage_location`.pipe(
          storeFailed(target, "removing expired checkpoints"),
          Effect.flatMap((rows) => Effect.as(removeFiles(rows.map((r) => String(r.storage_location))), rows.length))
        )
    })
  })

/** The SQL checkpoint store; needs an `SqlClient` whose database is migrated (see `Store.layer`). */
export const layer = (options: SqlCheckpointStoreOptions): Layer.Layer<CheckpointStore, StoreFailed, SqlClient> =>
  Layer.effect(CheckpointStore, make(options))
