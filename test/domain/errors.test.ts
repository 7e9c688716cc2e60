import { readFileSync } from "node:fs"
import { describe, expect, it } from "vitest"
import { errorCatalog } from "../../src/domain/ErrorCatalog.ts"
import * as Errors from "../../src/domain/Errors.ts"

describe("error catalog", () => {
  it("documents every code in docs/errors.md with its tag", () => {
    const doc = readFileSync(new URL("../../docs/errors.md", import.meta.url), "utf8")
    for (const info of errorCatalog.values()) {
      expect(doc, info.code).toMatch(new RegExp(`\\| ${info.code} \\| ${info.tag} \\|`))
    }
  })

  it("has one error class per code whose instances are Errors with code, _tag and message", () => {
    for (const info of errorCatalog.values()) {
      const e = Errors.fromErrorData({ code: info.code, message: "what to fix", retryable: info.retryable }, "agent-1")
      expect(e).toBeInstanceOf(Error)
      expect(e.code).toBe(info.code)
      expect(e._tag).toBe(info.tag)
      expect(e.message).toBe("what to fix")
      expect(Errors.isRuntimeError(e)).toBe(true)
      expect(Errors.toErrorData(e)).toEqual({ code: info.code, message: "what to fix", retryable: info.retryable })
    }
    expect(Errors.isRuntimeError(new Error("plain"))).toBe(false)
  })
})
