/**
 * The port for the operator's secrets (`secrets.<name>` in the configuration): API keys of declared
 * model endpoints, tokens of declared MCP servers.
 *
 * A secret is named, never given, by everything else: the configuration says where its value lives
 * (an environment variable of the supervisor or a file), agent configs reach it only through a
 * declared endpoint or server, and its value is read when it is used, held as `Redacted`, and never
 * written to records, events, checkpoints, traces, logs, errors or API answers.
 */
import { readFile } from "node:fs/promises"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import { ConfigInvalid, ReferenceUnknown } from "../domain/Errors.ts"
import type { SecretSource } from "../domain/RuntimeConfig.ts"

/** The shape of the secret store. */
export interface SecretStoreShape {
  /** The names of the declared secrets. */
  readonly names: ReadonlyArray<string>
  /**
   * The value of a declared secret: E2005 when `name` is not declared, E2000 naming the variable or
   * file (never the value) when it is unset, unreadable or empty.
   */
  readonly resolve: (name: string) => Effect.Effect<Redacted.Redacted<string>, ReferenceUnknown | ConfigInvalid>
}

/** The secret store port. */
export class SecretStore extends Context.Service<SecretStore, SecretStoreShape>()("l02/SecretStore") {}

const unknown = (name: string, names: ReadonlyArray<string>) =>
  new ReferenceUnknown({
    message: `secret ${JSON.stringify(name)} is not declared (secrets has ${names.length === 0 ? "none" : names.join(", ")})`,
    key: `secrets.${name}`
  })

/**
 * Reads one secret source: the variable from `env`, or the file. Fails with E2000 naming `what`, the
 * variable or file and `key` (`<key>.env` or `<key>.file`), never a value, when it is unset,
 * unreadable or empty. The value is trimmed.
 */
export const readSecretSource = (
  source: SecretSource,
  what: string,
  key: string,
  env: Readonly<Record<string, string | undefined>> = process.env
): Effect.Effect<Redacted.Redacted<string>, ConfigInvalid> => {
  if (source.env !== undefined) {
    const value = env[source.env]?.trim()
    return value === undefined || value === ""
      ? Effect.fail(new ConfigInvalid({ message: `${what}: the variable ${source.env} is not set in the supervisor's environment`, key: `${key}.env` }))
      : Effect.succeed(Redacted.make(value))
  }
  const file = source.file!
  return Effect.tryPromise({
    try: () => readFile(file, "utf8"),
    catch: (error) =>
      new ConfigInvalid({
        message: `${what}: cannot read ${file} (${(error as NodeJS.ErrnoException).code ?? "read failed"}); mount the secret there`,
        key: `${key}.file`
      })
  }).pipe(
    Effect.flatMap((text) =>
      text.trim() === ""
        ? Effect.fail(new ConfigInvalid({ message: `${what}: the file ${file} is empty`, key: `${key}.file` }))
        : Effect.succeed(Redacted.make(text.trim()))
    )
  )
}

/** A secret store over declared sources, reading each when it is resolved. */
export const makeSecretStore = (
  sources: Readonly<Record<string, SecretSource>>,
  env: Readonly<Record<string, string | undefined>> = process.env
): SecretStoreShape => {
  const names = Object.keys(sources)
  return {
    names,
    resolve: (name) =>
      Object.hasOwn(sources, name) ? readSecretSource(sources[name]!, `secret ${name}`, `secrets.${name}`, env) : Effect.fail(unknown(name, names))
  }
}

/**
 * The secret store of the configuration's `secrets`, reading variables from `env`.
 *
 * @example
 * ```ts
 * Effect.provide(program, SecretStore.layerConfig({ openai: { env: "OPENAI_API_KEY" } }))
 * ```
 */
export const layerConfig = (
  sources: Readonly<Record<string, SecretSource>>,
  env: Readonly<Record<string, string | undefined>> = process.env
): Layer.Layer<SecretStore> => Layer.succeed(SecretStore, makeSecretStore(sources, env))

/** An in-memory secret store holding the given values (tests, embedding code with its own vault). */
export const layerMemory = (values: Readonly<Record<string, string>>): Layer.Layer<SecretStore> => {
  const names = Object.keys(values)
  return Layer.succeed(SecretStore, {
    names,
    resolve: (name) => {
      const value = Object.hasOwn(values, name) ? values[name] : undefined
      if (value === undefined) return Effect.fail(unknown(name, names))
      return value.trim() === ""
        ? Effect.fail(new ConfigInvalid({ message: `secret ${name} is empty`, key: `secrets.${name}` }))
        : Effect.succeed(Redacted.make(value.trim()))
    }
  })
}
