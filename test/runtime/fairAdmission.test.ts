import { describe, expect, it } from "vitest"
import { makeFairAdmission } from "../../src/runtime/internal/fairAdmission.ts"

describe("fair admission", () => {
  it("caps concurrency and serves sessions round-robin", async () => {
    const admission = makeFairAdmission(1, 100)
    const first = (await admission.acquire("a"))!
    const served: Array<string> = []
    const releases = new Map<string, () => void>()
    for (const name of ["a1", "a2", "a3", "b1", "c1"]) {
      void admission.acquire(name[0]!).then((release) => {
        served.push(name)
        releases.set(name, release!)
      })
    }
    expect(admission.running()).toBe(1)
    expect(admission.waiting()).toBe(5)
    first()
    for (let i = 0; i < 5; i++) {
      await new Promise((r) => setTimeout(r, 0))
      expect(served).toHaveLength(i + 1)
      expect(admission.running()).toBe(1)
      releases.get(served.at(-1)!)!()
    }
    expect(served).toEqual(["a1", "b1", "c1", "a2", "a3"])
    expect(admission.running()).toBe(0)
  })

  it("refuses beyond the queue limit instead of queueing forever", async () => {
    const admission = makeFairAdmission(1, 2)
    await admission.acquire("a")
    void admission.acquire("a")
    void admission.acquire("b")
    expect(await admission.acquire("c")).toBeUndefined()
    expect(admission.waiting()).toBe(2)
  })

  it("ignores a second release of the same slot", async () => {
    const admission = makeFairAdmission(2, 10)
    const release = (await admission.acquire("a"))!
    release()
    release()
    expect(admission.running()).toBe(0)
  })
})
