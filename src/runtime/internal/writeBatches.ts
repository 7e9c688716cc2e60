/**
 * Batched, ordered writes of hosted actors' records and their events.
 *
 * Every transition of a tick (and every transition that arrives while a batch is being written) goes
 * into the next batch, written in one run, in order. An entry's record is built when its batch is
 * written, so several transitions of one actor cost one write. A transient state whose side effect
 * need not wait for it may be deferred: it goes with the next transition's batch, or after `deferMs`.
 *
 * A batch the store refuses is not dropped: its entries and events go first into the next batch, and
 * while nothing else comes, the batches try again on their own (after `retry.initialMs`, doubling up
 * to `retry.maxMs`), so memory and the store agree again once the store answers. Events keep their
 * order: nothing written after a refused batch goes before it.
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
  /**
   * Resolves once every queued write has been tried; a refused one is tried once more at once. After
   * `close` that is its last try.
   */
  readonly allWritten: () => Promise<void>
  /** Drops the entry's writes not yet tried or refused, and its events with them (an entry that never was). */
  readonly forget: (entry: E) => void
  /** Whether a refused write waits for its next try. */
  readonly behind: () => boolean
  /** Stops the tries on a timer (a host shutting down); `allWritten` still tries once. */
  readonly close: () => void
}

/** When a refused batch is tried again. */
export interface RetryTiming {
  readonly initialMs: number
  readonly maxMs: number
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
 * E2060); `keyOf` tells entries apart, so an entry is written once per batch. `onWritten` hears of
 * every entry whose record went in.
 */
export const makeWriteBatches = <E extends Persisted>(
  write: (entries: ReadonlyArray<E>, events: ReadonlyArray<LifecycleEvent>) => Promise<void>,
  keyOf: (entry: E) => string,
  options: { readonly deferMs?: number; readonly retry?: RetryTiming; readonly onWritten?: (entry: E) => void } = {}
): WriteBatches<E> => {
  const deferMs = options.deferMs ?? 250
  const retry = options.retry ?? { initialMs: 100, maxMs: 2000 }
  let open: Batch<E> | undefined
  let inFlight: Batch<E> | undefined
  let scheduled = false
  let deferTimer: ReturnType<typeof setTimeout> | undefined
  // What the store refused, carried into the next batch ahead of anything newer.
  interface Carried {
    readonly entries: Map<string, E>
    readonly events: Array<LifecycleEvent>
  }
  let carried: Carried | undefined
  let retryTimer: ReturnType<typeof setTimeout> | undefined
  let retryMs = retry.initialMs
  let closed = false

  /** The open batch, made with what was carried first. */
  const openBatch = (): Batch<E> => {
    if (open !== undefined) return open
    open = newBatch()
    if (carried !== undefined) {
      for (const [key, entry] of carried.entries) {
        open.entries.set(key, entry)
        entry.persisted = open.done
      }
      open.events.push(...carried.events)
      carried = undefined
    }
    return open
  }

  const scheduleRetry = () => {
    if (closed || retryTimer !== undefined || carried === undefined) return
    retryTimer = setTimeout(() => {
      retryTimer = undefined
      if (carried === undefined || open !== undefined || inFlight !== undefined) return
      openBatch()
      schedule()
    }, retryMs)
    retryTimer.unref?.()
    retryMs = Math.min(retryMs * 2, retry.maxMs)
  }

  const refused = (batch: Batch<E>, entries: ReadonlyArray<E>, error: unknown) => {
    const failure = error instanceof StoreFailed ? error : new StoreFailed({ message: String(error) })
    for (const entry of entries) entry.persistError = failure
    // Something newer is queued: the refused writes go into it, their events ahead of its own (a newer
    // write of an entry covers the refused one). Else they wait, carried, for the next batch.
    const into: Carried = open ?? (carried ??= { entries: new Map(), events: [] })
    for (const entry of entries) {
      if (into.entries.has(keyOf(entry))) continue
      into.entries.set(keyOf(entry), entry)
      if (open !== undefined) entry.persisted = open.done
    }
    into.events.unshift(...batch.events)
  }

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
          retryMs = retry.initialMs
          for (const entry of entries) {
            entry.persistError = undefined
            options.onWritten?.(entry)
          }
        },
        (error: unknown) => refused(batch, entries, error)
      )
      .then(() => {
        inFlight = undefined
        batch.resolve()
        if (open !== undefined) writeBatch()
        else scheduleRetry()
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
      const batch = openBatch()
      batch.entries.set(keyOf(entry), entry)
      for (const event of events) batch.events.push(event)
      entry.persisted = batch.done
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
      if (carried !== undefined && open === undefined && inFlight === undefined) openBatch()
      schedule()
      while (open !== undefined || inFlight !== undefined) {
        await (inFlight ?? open)!.done
        schedule()
      }
    },
    forget: (entry) => {
      const key = keyOf(entry)
      for (const queued of [open, carried]) {
        if (queued === undefined) continue
        queued.entries.delete(key)
        const kept = queued.events.filter((e) => e.agentId !== key)
        queued.events.splice(0, queued.events.length, ...kept)
      }
      if (carried !== undefined && carried.entries.size === 0 && carried.events.length === 0) carried = undefined
    },
    behind: () => carried !== undefined,
    close: () => {
      closed = true
      if (retryTimer !== undefined) clearTimeout(retryTimer)
      retryTimer = undefined
    }
  }
}
