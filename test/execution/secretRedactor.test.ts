// Secret values never leave a step: whole strings, JSON-like values, and text streamed in pieces
// however the pieces cut the secret (a property run over random splits).
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { makeSecretRedactor, redactedMark } from "../../src/execution/SecretRedactor.ts"

const secret = "sk-canary-7f3e9b21"

describe("secret redactor", () => {
  it("replaces every occurrence in strings and in nested values", () => {
    const r = makeSecretRedactor([secret, "tok"])
    expect(r.redact(`a ${secret} b ${secret}`)).toBe(`a ${redactedMark} b ${redactedMark}`)
    expect(r.redactDeep({ list: [`x${secret}`, 3], inner: { text: secret }, n: null })).toEqual({ list: [`x${redactedMark}`, 3], inner: { text: redactedMark }, n: null })
    // Values under 4 characters are ignored: they would match everywhere.
    expect(r.redact("tokens")).toBe("tokens")
    expect(makeSecretRedactor([]).empty).toBe(true)
  })

  it("never lets a secret through a text stream, however the deltas split it, and loses no other text", () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 30 }), fc.string({ maxLength: 30 }), fc.array(fc.nat({ max: 60 }), { maxLength: 8 }), (before, after, cuts) => {
        const whole = `${before}${secret}${after}${secret}`
        const points = [...new Set(cuts.map((c) => c % (whole.length + 1)))].sort((a, b) => a - b)
        const deltas: Array<string> = []
        let last = 0
        for (const p of points) {
          deltas.push(whole.slice(last, p))
          last = p
        }
        deltas.push(whole.slice(last))
        const stream = makeSecretRedactor([secret]).textStream()
        const out = deltas.map((d) => stream.push(d))
        out.push(stream.flush())
        for (const piece of out) expect(piece).not.toContain(secret)
        expect(out.join("")).toBe(makeSecretRedactor([secret]).redact(whole))
      }),
      { numRuns: 500 }
    )
  })
})
