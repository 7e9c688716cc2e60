// Actor errors are reported as lifecycle events naming the actor, at most `limit`, then one saying
// that further ones are left out.
import { describe, expect, it } from "vitest"
import { makeDefectReporter } from "../../src/runtime/internal/defects.ts"

describe("defect reporter", () => {
  it("records each actor error with its message, bounded", () => {
    const recorded: Array<{ who: string; message: string; suppressed?: true }> = []
    const report = makeDefectReporter({ record: (who, data) => recorded.push({ who, ...data }), limit: 2 })
    report("agent:a", new TypeError("boom"))
    report("fleet", "plain")
    report("agent:b", new Error("third"))
    report("agent:c", new Error("fourth"))
    expect(recorded).toEqual([
      { who: "agent:a", message: "TypeError: boom" },
      { who: "fleet", message: "plain" },
      { who: "agent:b", message: "more than 2 actor errors; further ones are not reported", suppressed: true }
    ])
  })
})
