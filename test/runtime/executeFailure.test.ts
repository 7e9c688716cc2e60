// Why an execute failed, in its E2029: a program that dies mid-step is reported with its exit code and
// its last stderr lines; one that stays silent, with the timeout. On the process backend, for real.
import { describe, expect, it } from "vitest"
import { processRuntime } from "./support.ts"

describe("execute failures", () => {
  it("say the program exited, with its code and last stderr lines, or that no done line came in time", { timeout: 30_000 }, async () => {
    const { runtime, close } = await processRuntime({ lifecycle: { max_restart_count: 0, health_check_interval_seconds: 0 } })
    const run = async (agentId: string, timeoutMs?: number) => {
      try {
        for await (const _ of runtime.execute(agentId, { question: "x" }, timeoutMs === undefined ? {} : { timeoutMs })) void _
        return undefined
      } catch (error) {
        return error as { code?: string; message?: string }
      }
    }
    try {
      const dying = await runtime.spawn({
        name: "dying",
        trustLevel: "TRUSTED",
        command: ["sh", "-c", 'read line; echo "first complaint" >&2; echo "cannot parse: $line" >&2; exit 3']
      })
      const died = await run(dying.agentId)
      expect(died?.code).toBe("E2029")
      expect(died?.message).toContain("output ended before its")
      expect(died?.message).toContain("exited with code 3")
      expect(died?.message).toContain("first complaint | cannot parse: {")

      const silent = await runtime.spawn({ name: "silent", trustLevel: "TRUSTED", command: ["sh", "-c", "read line; sleep 30"] })
      const timedOut = await run(silent.agentId, 300)
      expect(timedOut).toMatchObject({ code: "E2029", message: 'the agent did not answer with a {"type":"done"} line within 300 ms' })
    } finally {
      await close()
    }
  })
})
