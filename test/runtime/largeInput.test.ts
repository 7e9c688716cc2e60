// An execute step with a large input on the process backend: the agent's stdin is a FIFO whose pipe
// takes 64 KiB at a time, and a 900 KB input (one protocol line) reaches the agent whole and is
// answered, as a small one is.
import { describe, expect, it } from "vitest"
import { processRuntime } from "./support.ts"

describe("large execute input on the process backend", () => {
  it("a 900 KB input is answered, and the step after it too", async () => {
    const { runtime, close } = await processRuntime({})
    try {
      const { agentId } = await runtime.spawn({ name: "large-input", trustLevel: "TRUSTED" })
      const answer = async (input: string) => {
        const events: Array<{ type: string }> = []
        for await (const e of runtime.execute(agentId, input, { timeoutMs: 20_000 })) events.push(e)
        return events.map((e) => e.type)
      }
      expect(await answer("x".repeat(900_000))).toContain("done")
      expect(await answer("small")).toContain("done")
    } finally {
      await close()
    }
  }, 60_000)
})
