// The CLI's progress indicator: drawn on a terminal only, never with --json or into a pipe, and erased
// when the work ends, whether it succeeded or failed.
import { describe, expect, it } from "vitest"
import { progressLine, withProgress } from "../../src/cli/progress.ts"

const sink = (isTTY: boolean) => {
  const written: Array<string> = []
  return { isTTY, written, write: (text: string) => written.push(text) }
}

describe("progress indicator", () => {
  it("renders a spinner frame, the label and the seconds elapsed", () => {
    expect(progressLine("spawning worker", 1234, 0)).toBe("⠋ spawning worker 1.2s")
    expect(progressLine("spawning worker", 0, 11)).toBe("⠙ spawning worker 0.0s")
  })

  it("writes nothing with --json or when stderr is not a terminal, and returns the work's result", async () => {
    for (const [enabled, tty] of [[false, true], [true, false]] as const) {
      const s = sink(tty)
      expect(await withProgress("spawning", async () => 42, { enabled, sink: s })).toBe(42)
      expect(s.written).toEqual([])
    }
  })

  it("draws while the work runs and erases the line after, also when the work fails", async () => {
    let t = 0
    const s = sink(true)
    const result = await withProgress("resuming", () => new Promise<string>((r) => setTimeout(() => r("running"), 60)), { enabled: true, sink: s, intervalMs: 10, now: () => (t += 100) })
    expect(result).toBe("running")
    expect(s.written[0]).toMatch(/^\r⠋ resuming 0\.1s/)
    expect(s.written.length).toBeGreaterThan(2)
    expect(s.written.at(-1)).toMatch(/^\r +\r$/)
    const failing = sink(true)
    await expect(withProgress("checkpointing", () => Promise.reject(new Error("E2023")), { enabled: true, sink: failing })).rejects.toThrow("E2023")
    expect(failing.written.at(-1)).toMatch(/^\r +\r$/)
  })
})
