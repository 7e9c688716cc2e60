// Write batches over a store that refuses writes for a while: nothing refused is dropped, newer writes
// never go in before older ones, the batches try again on their own, and a forgotten entry's writes
// never reach the store.
import { describe, expect, it } from "vitest"
import { StoreFailed } from "../../src/domain/Errors.ts"
import type { LifecycleEvent } from "../../src/domain/LifecycleEvent.ts"
import { makeWriteBatches, type Persisted } from "../../src/runtime/internal/writeBatches.ts"
import { eventually } from "./support.ts"

interface Entry extends Persisted {
  readonly id: string
  state: string
}
const entry = (id: string, state: string): Entry => ({ id, state, persisted: Promise.resolve(), persistError: undefined })
const event = (agentId: string, toState: string): LifecycleEvent => ({ agentId, type: "x.state", toState, at: "2026-01-01T00:00:00.000Z" })

const storeOf = () => {
  const store = { down: false, records: new Map<string, string>(), events: [] as Array<string> }
  const write = async (entries: ReadonlyArray<Entry>, events: ReadonlyArray<LifecycleEvent>) => {
    if (store.down) throw new StoreFailed({ message: "store down" })
    for (const e of entries) store.records.set(e.id, e.state)
    store.events.push(...events.map((e) => `${e.agentId}>${e.toState}`))
  }
  return { store, write }
}

describe("write batches", () => {
  it("carry a refused batch ahead of newer writes and try again on their own until the store answers", async () => {
    const { store, write } = storeOf()
    const written: Array<string> = []
    const batches = makeWriteBatches<Entry>(write, (e) => e.id, { retry: { initialMs: 10, maxMs: 40 }, onWritten: (e) => written.push(e.id) })
    const a = entry("a", "one")
    store.down = true
    batches.persist(a, [event("a", "one")])
    await batches.persisted(a)
    expect(a.persistError).toMatchObject({ code: "E2060" })
    expect(batches.behind()).toBe(true)
    a.state = "two"
    batches.persist(a, [event("a", "two")])
    await batches.persisted(a)
    // Still down: both are carried, nothing written, and the entry says why.
    expect(store.records.size).toBe(0)
    expect(a.persistError).toMatchObject({ code: "E2060" })
    store.down = false
    await eventually(() => expect(store.records.get("a")).toBe("two"), 2000)
    expect(store.events).toEqual(["a>one", "a>two"])
    expect(a.persistError).toBeUndefined()
    expect(batches.behind()).toBe(false)
    expect(written).toEqual(["a"])
    batches.close()
  })

  it("drop a forgotten entry's refused writes and events, keep the others', and try once more at allWritten after close", async () => {
    const { store, write } = storeOf()
    const batches = makeWriteBatches<Entry>(write, (e) => e.id, { retry: { initialMs: 60_000, maxMs: 60_000 } })
    const ghost = entry("ghost", "pending")
    const kept = entry("kept", "running")
    store.down = true
    batches.persist(ghost, [event("ghost", "pending")])
    batches.persist(kept, [event("kept", "running")])
    await batches.persisted(kept)
    batches.forget(ghost)
    batches.close()
    store.down = false
    await batches.allWritten()
    expect([...store.records.keys()]).toEqual(["kept"])
    expect(store.events).toEqual(["kept>running"])
  })
})
