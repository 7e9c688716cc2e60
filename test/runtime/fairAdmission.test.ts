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

  it("serves waiting spawns by priority, high before normal before low, round-robin within one", async () => {
    const admission = makeFairAdmission(1, 100)
    const first = (await admission.acquire("x"))!
    const served: Array<string> = []
    const releases = new Map<string, () => void>()
    const wait = (name: string, session: string, priority?: "high" | "normal" | "low") =>
      void admission.acquire(session, priority).then((release) => {
        served.push(name)
        releases.set(name, release!)
      })
    wait("low1", "pool", "low")
    wait("n1", "a")
    wait("low2", "pool", "low")
    wait("h1", "op", "high")
    wait("n2", "b", "normal")
    wait("h2", "op", "high")
    first()
    for (let i = 0; i < 6; i++) {
      await new Promise((r) => setTimeout(r, 0))
      expect(served).toHaveLength(i + 1)
      releases.get(served.at(-1)!)!()
    }
    expect(served).toEqual(["h1", "h2", "n1", "n2", "low1", "low2"])
    expect(admission.waiting()).toBe(0)
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
