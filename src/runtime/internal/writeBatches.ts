/**
 * Batched, ordered writes of hosted actors' records and their events.
 *
 * Every transition of a tick (and every transition that arrives while a batch is being written) goes
 * into the next batch, written in one run, in order. An entry's record is built when its batch is
 * written, so several transitions of one actor cost one write. A transient state whose side effect
 * need not wait for it may be deferred: it goes with the next transition's batch, or after `deferMs`.
 */
import { StoreFailed } from "../../domain/Errors.ts"
import type { LifecycleEvent } from "../../domain/LifecycleEvent.ts"

/** What a batch writes of an entry: its latest state, when the batch is written. */
export interface Persisted {
  /** Resolves once the entry's queued writes are written. */
  persisted: Promise<void>
  /** The last write's failure, cleared by a write that goes through. */
  persistError: StoreFailed | undefined
}

/** The batches of one host. */
export interface WriteBatches<E extends Persisted> {
  /** Queues a write of the entry and the events; with `defer`, it waits for the next transition (or `deferMs`). */
  readonly persist: (entry: E, events: ReadonlyArray<LifecycleEvent>, defer?: boolean) => void
  /** The entry's queued writes, written now if they were deferred. */
  readonly persisted: (entry: E) => Promise<void>
  /** Resolves once every queued write has been written. */
  readonly allWritten: () => Promise<void>
}

interface Batch<E> {
  readonly entries: Map<string, E>
  readonly events: Array<LifecycleEvent>
  readonly done: Promise<void>
  readonly resolve: () => void
}

const newBatch = <E>(): Batch<E> => {
  let resolve!: () => void
  const done = new Promise<void>((r) => (resolve = r))
  return { entries: new Map(), events: [], done, resolve }
}

/**
 * Batches over `write`, which writes the entries' records and the events together (or fails with
 * E2060); `keyOf` tells entries apart, so an entry is written once per batch.
 */
export const makeWriteBatches = <E extends Persisted>(
  write: (entries: ReadonlyArray<E>, events: ReadonlyArray<LifecycleEvent>) => Promise<void>,
  keyOf: (entry: E) => string,
  deferMs = 250
): WriteBatches<E> => {
  let open: Batch<E> | undefined
  let inFlight: Batch<E> | undefined
  let scheduled = false
  let deferTimer: ReturnType<typeof setTimeout> | undefined

  const writeBatch = () => {
    scheduled = false
    if (inFlight !== undefined || open === undefined) return
    const batch = open
    open = undefined
    inFlight = batch
    const entries = [...batch.entries.values()]
    void write(entries, batch.events)
      .then(
        // A write that went through after a store outage clears the entry's earlier failure.
        () => {
          for (const entry of entries) entry.persistError = undefined
        },
        (error: unknown) => {
          const failure = error instanceof StoreFailed ? error : new StoreFailed({ message: String(error) })
          for (const entry of entries) entry.persistError = failure
        }
      )
      .then(() => {
        inFlight = undefined
        batch.resolve()
        if (open !== undefined) writeBatch()
      })
  }

  const schedule = () => {
    if (deferTimer !== undefined) {
      clearTimeout(deferTimer)
      deferTimer = undefined
    }
    if (!scheduled && inFlight === undefined && open !== undefined) {
      scheduled = true
      queueMicrotask(writeBatch)
    }
  }

  return {
    persist: (entry, events, defer = false) => {
      open ??= newBatch()
      open.entries.set(keyOf(entry), entry)
      for (const event of events) open.events.push(event)
      entry.persisted = open.done
      if (!defer) return schedule()
      if (!scheduled && deferTimer === undefined) {
        deferTimer = setTimeout(schedule, deferMs)
        deferTimer.unref?.()
      }
    },
    persisted: (entry) => {
      schedule()
      return entry.persisted
    },
    allWritten: async () => {
      schedule()
      while (open !== undefined || inFlight !== undefined) await (inFlight ?? open)!.done
    }
  }
}
