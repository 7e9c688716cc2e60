// Request decoding with the API's Schemas: every failure is an InputInvalid (E2001) naming the field.
import * as Cause from "effect/Cause"
import * as Exit from "effect/Exit"
import * as Schema from "effect/Schema"
import { InputInvalid } from "../../domain/Errors.ts"

export const decode = <S extends Schema.Top & { readonly DecodingServices: never }>(
  schema: S,
  input: unknown,
  where: string
): S["Type"] | InputInvalid => {
  const exit = Schema.decodeUnknownExit(schema)(input, { errors: "all", onExcessProperty: "error" })
  if (Exit.isSuccess(exit)) return exit.value
  const failure = exit.cause.reasons.find(Cause.isFailReason)
  const text = failure === undefined ? "invalid" : String((failure.error as { message?: unknown }).message ?? failure.error)
  const path = [...text.matchAll(/at \[([^\]]+)\]/g)].map((m) => m[1]!.replaceAll('"', "").replaceAll("][", ".")).find(() => true)
  const key = path === undefined ? where : `${where}.${path}`
  // Keep messages short: a fuzzer (or a careless client) can send megabytes of nonsense.
  const detail = text.replace(/\n\s*at \[.*$/s, "").replaceAll("\n", "; ")
  return new InputInvalid({ message: `${key} is invalid: ${detail.length > 500 ? `${detail.slice(0, 500)}...` : detail}`, key })
}
