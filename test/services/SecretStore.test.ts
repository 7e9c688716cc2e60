// The SecretStore contract, run against every implementation: the configuration's sources (a
// variable of the supervisor, a file) and the in-memory store. Each is built holding `alpha`
// (whose value has surrounding whitespace) and `blank` (empty).
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { describe, expect, layer } from "@effect/vitest"
import { Effect, Exit, type Layer, Redacted } from "effect"
import { layerConfig, layerMemory, SecretStore } from "../../src/services/SecretStore.ts"

const secretStoreContract = (name: string, make: () => Layer.Layer<SecretStore>) =>
  describe(`SecretStore contract: ${name}`, () => {
    layer(make())((it) => {
      it.effect("resolves a declared secret to its trimmed value, held as Redacted", () =>
        Effect.gen(function* () {
          const store = yield* SecretStore
          expect(store.names).toEqual(expect.arrayContaining(["alpha", "blank"]))
          const value = yield* store.resolve("alpha")
          expect(Redacted.isRedacted(value)).toBe(true)
          expect(Redacted.value(value)).toBe("value-alpha")
          expect(String(value)).not.toContain("value-alpha")
        }))
      it.effect("refuses an undeclared name with E2005 listing the declared ones, and an empty one with E2000 without its value", () =>
        Effect.gen(function* () {
          const store = yield* SecretStore
          const unknown = yield* Effect.exit(store.resolve("toString"))
          expect(Exit.isFailure(unknown) && unknown.cause.reasons[0]?._tag === "Fail" ? (unknown.cause.reasons[0] as { error: { code: string; message: string } }).error : undefined)
            .toMatchObject({ code: "E2005", message: expect.stringContaining("alpha") })
          const blank = yield* Effect.flip(store.resolve("blank"))
          expect(blank).toMatchObject({ code: "E2000", key: expect.stringContaining("secrets.blank") })
        }))
    })
  })

const dir = mkdtempSync(join(tmpdir(), "l02-secrets-"))
writeFileSync(join(dir, "alpha"), "  value-alpha\n")
writeFileSync(join(dir, "blank"), "\n")

secretStoreContract("environment variables", () =>
  layerConfig({ alpha: { env: "ALPHA_KEY" }, blank: { env: "BLANK_KEY" } }, { ALPHA_KEY: " value-alpha ", BLANK_KEY: "" }))
secretStoreContract("files", () => layerConfig({ alpha: { file: join(dir, "alpha") }, blank: { file: join(dir, "blank") } }, {}))
secretStoreContract("in-memory", () => layerMemory({ alpha: "value-alpha\n", blank: " " }))

describe("SecretStore from files", () => {
  layer(layerConfig({ gone: { file: join(dir, "missing") } }, {}))((it) => {
    it.effect("names the file and its error code, never a value", () =>
      Effect.gen(function* () {
        const error = yield* Effect.flip((yield* SecretStore).resolve("gone"))
        expect(error).toMatchObject({ code: "E2000", key: "secrets.gone.file", message: expect.stringContaining("ENOENT") })
      }))
  })
})
