// The actor host on a small machine of its own (a door, not the agent machine): transitions become
// batched writes, idle actors hibernate and wake on a message with their state, a new host restores
// from what was written, and a refused event is E2020 and changes nothing.
import { Effect, Exit } from "effect"
import { describe, expect, it } from "vitest"
import { assign, fromPromise, setup } from "xstate"
import { StoreFailed } from "../../src/domain/Errors.ts"
import type { LifecycleEvent } from "../../src/domain/LifecycleEvent.ts"
import { type HostedEntry, makeActorHost } from "../../src/runtime/ActorHost.ts"

/** The door swings when the test opens the gate. */
const newGate = () => {
  let resolve!: (value: string) => void
  const promise = new Promise<string>((r) => (resolve = r))
  return { promise, resolve }
}
let gate = newGate()
const openGate = () => {
  gate.resolve("swung")
  gate = newGate()
}

const door = setup({
  types: { context: {} as { id: string; opened: number }, input: {} as { id: string }, events: {} as { type: "door.open" } | { type: "door.close" } | { type: "door.lock" } },
  actors: { swing: fromPromise(() => gate.promise) }
}).createMachine({
  id: "door",
  context: ({ input }) => ({ id: input.id, opened: 0 }),
  initial: "closed",
  states: {
    closed: { on: { "door.open": "opening", "door.lock": "locked" } },
    opening: { invoke: { src: "swing", onDone: { target: "open", actions: assign({ opened: ({ context }) => context.opened + 1 }) } } },
    open: { on: { "door.close": "closed" } },
    locked: {}
  }
})

interface Door extends HostedEntry<typeof door> {
  readonly id: string
  state: string
}

/** A host over an in-memory "store": every batch written, and a switch that makes writes fail. */
const hostOf = (store: { batches: Array<{ records: Array<{ id: string; state: string; snapshot: unknown }>; events: ReadonlyArray<LifecycleEvent> }>; failing?: boolean }, clock: { now: number }) =>
  makeActorHost<typeof door, Door>({
    logic: door,
    idOf: (d) => d.id,
    systemIdOf: (d) => `door:${d.id}`,
    input: (d) => ({ id: d.id }),
    noun: "door",
    describe: (d) => ({ state: d.state, where: d.state }),
    hibernateAfterMs: 1000,
    now: () => clock.now,
    onError: () => {},
    write: async (entries, events) => {
      if (store.failing === true) throw new StoreFailed({ message: "the store is down" })
      store.batches.push({ records: entries.map((d) => ({ id: d.id, state: d.state, snapshot: d.actor?.getPersistedSnapshot() ?? d.hibernated })), events })
    },
    onSnapshot: (d, snapshot, initial) => {
      const state = String(snapshot.value)
      if (!initial && state === d.state) return undefined
      const from = d.state
      d.state = state
      return initial ? undefined : { events: [{ agentId: d.id, type: "door.state", fromState: from, toState: state, at: new Date(clock.now).toISOString() }], defer: false }
    }
  })

const newDoor = (id: string): Door => ({ id, state: "", actor: undefined, hibernated: undefined, lastActiveAt: 0, waiters: 0, persisted: Promise.resolve(), persistError: undefined })

describe("actor host", () => {
  it("writes each transition's record and events in batches, in order, and says when they are written", async () => {
    const store = { batches: [] as Parameters<typeof hostOf>[0]["batches"] }
    const host = hostOf(store, { now: 0 })
    const d = newDoor("d1")
    host.add(d)
    host.start(d)
    await Effect.runPromise(host.send(d, { type: "door.open" }, "open"))
    openGate()
    await Effect.runPromise(host.waitFor(d, () => d.state === "open"))
    await host.persisted(d)
    const events = store.batches.flatMap((b) => b.events.map((e) => `${e.fromState}->${e.toState}`))
    expect(events).toEqual(["closed->opening", "opening->open"])
    expect(store.batches.at(-1)!.records).toEqual([expect.objectContaining({ id: "d1", state: "open" })])
    host.stop()
  })

  it("hibernates an idle actor and wakes it on the next message with its state and context", async () => {
    const store = { batches: [] as Parameters<typeof hostOf>[0]["batches"] }
    const clock = { now: 0 }
    const host = hostOf(store, clock)
    const d = newDoor("d2")
    host.add(d)
    host.start(d)
    await Effect.runPromise(host.send(d, { type: "door.open" }, "open"))
    // Busy (an invoked actor running): never hibernated, however long.
    clock.now = 10_000
    host.sweep()
    expect(d.actor).toBeDefined()
    openGate()
    await Effect.runPromise(host.waitFor(d, () => d.state === "open"))
    clock.now = 20_000
    host.sweep()
    expect(d.actor).toBeUndefined()
    expect(d.hibernated).toBeDefined()
    await Effect.runPromise(host.send(d, { type: "door.close" }, "close"))
    expect(d.actor).toBeDefined()
    expect(d.state).toBe("closed")
    expect(d.actor!.getSnapshot().context.opened).toBe(1)
    host.stop()
  })

  it("restores an entry in a new host from the snapshot it wrote", async () => {
    const store = { batches: [] as Parameters<typeof hostOf>[0]["batches"] }
    const first = hostOf(store, { now: 0 })
    const d = newDoor("d3")
    first.add(d)
    first.start(d)
    await Effect.runPromise(first.send(d, { type: "door.open" }, "open"))
    openGate()
    await Effect.runPromise(first.waitFor(d, () => d.state === "open"))
    await first.allWritten()
    first.stop()
    const written = store.batches.flatMap((b) => b.records).filter((r) => r.id === "d3").at(-1)!
    const second = hostOf(store, { now: 0 })
    const again = newDoor("d3")
    second.add(again)
    second.start(again, written.snapshot)
    expect(again.state).toBe("open")
    expect(again.actor!.getSnapshot().context.opened).toBe(1)
    await Effect.runPromise(second.send(again, { type: "door.close" }, "close"))
    expect(again.state).toBe("closed")
    second.stop()
  })

  it("refuses an event the state does not accept with E2020 naming the operation, and changes and writes nothing", async () => {
    const store = { batches: [] as Parameters<typeof hostOf>[0]["batches"] }
    const host = hostOf(store, { now: 0 })
    const d = newDoor("d4")
    host.add(d)
    host.start(d)
    await Effect.runPromise(host.send(d, { type: "door.lock" }, "lock"))
    await host.allWritten()
    const before = store.batches.length
    const exit = await Effect.runPromiseExit(host.send(d, { type: "door.open" }, "open"))
    expect(Exit.isFailure(exit)).toBe(true)
    const error = Exit.isFailure(exit) ? (exit.cause.reasons[0] as { error: unknown }).error : undefined
    expect(error).toMatchObject({ code: "E2020", state: "locked", operation: "open", message: "cannot open door d4 while it is locked" })
    expect(host.sendIfAccepted(d, { type: "door.open" })).toBe(false)
    await host.allWritten()
    expect(d.state).toBe("locked")
    expect(store.batches.length).toBe(before)
    host.stop()
  })

  it("reports a failed write on the entry and to written() (E2060), and a later write that goes through clears it", async () => {
    const store = { batches: [] as Parameters<typeof hostOf>[0]["batches"], failing: true }
    const host = hostOf(store, { now: 0 })
    const d = newDoor("d5")
    host.add(d)
    host.start(d)
    host.persist(d, [])
    await host.persisted(d)
    expect(d.persistError).toMatchObject({ code: "E2060" })
    // What a side effect waits for: the write's failure, as plain data.
    await expect(host.written("d5")).rejects.toMatchObject({ code: "E2060", message: expect.stringContaining("the store is down") })
    store.failing = false
    host.persist(d, [])
    await host.persisted(d)
    expect(d.persistError).toBeUndefined()
    await expect(host.written("d5")).resolves.toBeUndefined()
    await expect(host.written("unknown")).resolves.toBeUndefined()
    expect(host.get("d5")).toBe(d)
    host.remove(d)
    expect(host.has("d5")).toBe(false)
    host.stop()
  })
})
