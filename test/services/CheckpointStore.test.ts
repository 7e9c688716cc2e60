import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { decodeCheckpointContent, encodeCheckpointContent, layerMemory } from "../../src/services/CheckpointStore.ts"
import { checkpointStoreContract } from "./CheckpointStoreContract.ts"

checkpointStoreContract("in-memory", layerMemory)

describe("checkpoint blob codec", () => {
  const content = { actorState: { a: [1, 2], b: "x" }, workspace: new Uint8Array([9, 8, 7, 6]) }

  it.effect("decodes what it encodes, with and without a workspace", () =>
    Effect.gen(function* () {
      expect(yield* decodeCheckpointContent(encodeCheckpointContent(content), "c")).toStrictEqual(content)
      expect(yield* decodeCheckpointContent(encodeCheckpointContent({ actorState: null }), "c")).toStrictEqual({ actorState: null })
    }))

  it.effect("rejects every truncation and foreign bytes with E2062", () =>
    Effect.gen(function* () {
      const bytes = encodeCheckpointContent({ actorState: { a: 1 } })
      for (let n = 0; n < bytes.length; n++) {
        const error = yield* Effect.flip(decodeCheckpointContent(bytes.subarray(0, n), "c"))
        expect(error.code).toBe("E2062")
      }
      const foreign = new TextEncoder().encode("{\"actorState\":1}")
      expect((yield* Effect.flip(decodeCheckpointContent(foreign, "c")))._tag).toBe("CheckpointCorrupt")
      const trailing = new Uint8Array([...bytes, 0])
      expect((yield* Effect.flip(decodeCheckpointContent(trailing, "c")))._tag).toBe("CheckpointCorrupt")
    }))
})
