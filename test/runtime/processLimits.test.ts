// An agent on the process backend whose program is refused a fork at its process limit: the
// failure says E2050, names resources.pids, and the agent is restarted per its policy.
import { describe, expect, it } from "vitest"
import { eventually, processRuntime } from "./support.ts"

describe.runIf(process.getuid?.() === 0)("process limits on the process backend", () => {
  it("reports a program refused a fork as E2050 naming resources.pids, counted over the agent's own uid", async () => {
    const { runtime, close } = await processRuntime({})
    try {
      const seen: Array<{ toState?: string | undefined; data?: unknown }> = []
      const follow = (async () => {
        for await (const e of runtime.events()) seen.push(e)
      })()
      void follow
      const { agentId, sandbox } = await runtime.spawn({
        name: "forker",
        trustLevel: "TRUSTED",
        // Wrapper, program and two sleeps fill a limit of 4: the third sleep cannot start.
        command: ["/bin/sh", "-c", "sleep 5 & sleep 5 & sleep 5 & wait"],
        resources: { pids: 4 },
        restartPolicy: { maxRestarts: 0 }
      })
      expect(sandbox.resources.pids).toBe(4)
      await eventually(async () => expect((await runtime.getState(agentId)).state).toBe("failed"), 15_000)
      await eventually(() => expect(seen.find((e) => e.toState === "failed")).toBeDefined(), 5_000)
      const failure = seen.find((e) => e.toState === "failed")!.data as { error: { code: string; message: string } }
      expect(failure.error.code).toBe("E2050")
      expect(failure.error.message).toContain("resources.pids 4")
    } finally {
      await close()
    }
  }, 30_000)
})
