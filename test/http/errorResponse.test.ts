import { describe, expect, it } from "vitest"
import { errorCatalog } from "../../src/domain/ErrorCatalog.ts"
import { fromErrorData } from "../../src/domain/Errors.ts"
import { answerOf, answerOfUnknown, statusOfCode } from "../../src/http/ErrorResponse.ts"

describe("error answers", () => {
  it("gives every catalog code a 4xx or 5xx status other than 500, and a body with code, tag and message", () => {
    for (const info of errorCatalog.values()) {
      const answer = answerOf(fromErrorData({ code: info.code, message: "what to fix", retryable: info.retryable }, "agent-1"))
      expect(answer.status, info.code).toBe(statusOfCode[info.code])
      expect(answer.status >= 400 && answer.status < 600 && answer.status !== 500, info.code).toBe(true)
      expect(answer.body).toEqual({ error: { code: info.code, tag: info.tag, message: "what to fix", agentId: "agent-1" } })
    }
  })

  it("maps input and auth codes to the caller's statuses and backend failures to 502/503", () => {
    expect([statusOfCode.E2001, statusOfCode.E2000, statusOfCode.E2042, statusOfCode.E2040]).toEqual([400, 400, 400, 400])
    expect([statusOfCode.E2002, statusOfCode.E2003]).toEqual([401, 403])
    expect([statusOfCode.E2020, statusOfCode.E2021, statusOfCode.E2028]).toEqual([409, 404, 503])
    expect([statusOfCode.E2022, statusOfCode.E2047]).toEqual([502, 503])
  })

  it("answers anything uncoded as a 500 without its details", () => {
    const answer = answerOfUnknown(new Error("secret token abc"))
    expect(answer.status).toBe(500)
    expect(JSON.stringify(answer.body)).not.toContain("secret")
  })
})
