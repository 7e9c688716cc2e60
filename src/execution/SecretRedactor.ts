/**
 * Keeps secret values out of what an agent step produces.
 *
 * A model endpoint or an MCP server may echo what it was sent (an `Authorization` header in an error
 * body, a token in a tool result). Everything a step streams, persists or fails with passes through
 * the redactor of the secrets that step used, which replaces each value by `[redacted]`. Streamed
 * text is held back by up to one secret's length less one character, so a value split across two
 * deltas is caught too.
 */

/** What replaces a secret value. */
export const redactedMark = "[redacted]"

/** Replaces secret values in strings, and in text streamed in pieces. */
export interface SecretRedactor {
  /** True when there is nothing to redact (no secret values). */
  readonly empty: boolean
  /** The string with every secret value replaced. */
  readonly redact: (text: string) => string
  /** Every string inside a JSON-like value redacted (objects and arrays copied, others kept). */
  readonly redactDeep: <A>(value: A) => A
  /** A streaming redactor for one text stream: `push` a delta, get what is safe to emit; `flush` the rest. */
  readonly textStream: () => { readonly push: (delta: string) => string; readonly flush: () => string }
}

/** A redactor of these values (values shorter than 4 characters are ignored: they would match anywhere). */
export const makeSecretRedactor = (values: ReadonlyArray<string>): SecretRedactor => {
  const secrets = [...new Set(values.filter((v) => v.length >= 4))].sort((a, b) => b.length - a.length)
  const redact = (text: string): string => {
    let out = text
    for (const secret of secrets) if (out.includes(secret)) out = out.split(secret).join(redactedMark)
    return out
  }
  const redactDeep = <A>(value: A): A => {
    if (typeof value === "string") return redact(value) as A
    if (Array.isArray(value)) return value.map(redactDeep) as A
    if (typeof value === "object" && value !== null) {
      const out: Record<string, unknown> = {}
      for (const [k, v] of Object.entries(value)) out[k] = redactDeep(v)
      return out as A
    }
    return value
  }
  const hold = Math.max(0, ...secrets.map((s) => s.length - 1))
  return {
    empty: secrets.length === 0,
    redact: secrets.length === 0 ? (text) => text : redact,
    redactDeep: secrets.length === 0 ? (value) => value : redactDeep,
    textStream: () => {
      let pending = ""
      return {
        push: (delta) => {
          if (secrets.length === 0) return delta
          pending = redact(pending + delta)
          // Keep the tail that could be the start of a secret; a redaction mark is never held back.
          let cut = Math.max(0, pending.length - hold)
          const mark = pending.lastIndexOf(redactedMark)
          if (mark >= 0 && mark + redactedMark.length > cut) cut = Math.min(pending.length, mark + redactedMark.length)
          const out = pending.slice(0, cut)
          pending = pending.slice(cut)
          return out
        },
        flush: () => {
          const out = redact(pending)
          pending = ""
          return out
        }
      }
    }
  }
}
