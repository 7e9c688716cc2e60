/**
 * The actor host: runs any machine of this project as persisted actors, knowing nothing of agents.
 *
 * An entry is one durable actor: the host starts it (fresh, or restored from a persisted snapshot),
 * observes every transition (the user turns it into a record write and events, batched into the
 * store by {@link makeWriteBatches}), hibernates it when idle (its actor stopped, only its persisted
 * snapshot kept) and wakes it on any message, waits for a state, and sends an event only if the
 * current state accepts it (E2020 otherwise). Like XState's system and Effect Cluster's entity
 * manager, the host owns the registry of live entries by id; where the machine's side effects go is
 * the machine's `provide`d actors' business.
 *
 * @example
 * ```ts
 * const host = makeActorHost({ logic: machine, idOf: (e) => e.id, input: (e) => ({ id: e.id }), write, onSnapshot })
 * host.add(entry)
 * host.start(entry)
 * yield* host.send(entry, { type: "go" }, "go")
 * yield* host.waitFor(entry, () => entry.state === "done")
 * ```
 */
import * as Effect from "effect/Effect"
import { type Actor, type AnyStateMachine, createActor, type EventFromLogic, type InputFrom, type InspectionEvent, type SnapshotFrom } from "xstate"
import { InvalidTransition, toErrorData } from "../domain/Errors.ts"
import type { LifecycleEvent } from "../domain/LifecycleEvent.ts"
import { makeWriteBatches, type Persisted, type RetryTiming } from "./internal/writeBatches.ts"

/** XState's clock interface (a `SimulatedClock` in tests). */
export interface Clock {
  setTimeout(fn: (...args: Array<any>) => void, timeout: number): any
  clearTimeout(id: any): void
}

/** What the host keeps of every entry; a user's entry type extends it with its own fields. */
export interface HostedEntry<TLogic extends AnyStateMachine> extends Persisted {
  /** The live actor; undefined while the entry hibernates (its snapshot in `hibernated`). */
  actor: Actor<TLogic> | undefined
  hibernated: unknown
  /** When it last changed (the host's clock), for hibernation. */
  lastActiveAt: number
  /** Operations waiting for its next states; a waited-on entry never hibernates. */
  waiters: number
}

/** What a transition writes, and what follows once its write is queued. */
export interface SnapshotWrite {
  readonly events: ReadonlyArray<LifecycleEvent>
  /** The write may wait for the next transition (a reversible, reconciled transient state). */
  readonly defer: boolean
}

/** How to host one kind of machine. */
export interface ActorHostOptions<TLogic extends AnyStateMachine, E extends HostedEntry<TLogic>, W extends SnapshotWrite = SnapshotWrite> {
  /** The machine, with its side effects provided. */
  readonly logic: TLogic
  readonly idOf: (entry: E) => string
  /** The systemId of an entry's actor (e.g. `agent:<id>`). */
  readonly systemIdOf: (entry: E) => string
  readonly input: (entry: E) => InputFrom<TLogic>
  /** Writes the entries' records and the events in one step (E2060 on failure). */
  readonly write: (entries: ReadonlyArray<E>, events: ReadonlyArray<LifecycleEvent>) => Promise<void>
  /**
   * Every snapshot: update the entry and return what to write, or undefined when nothing changed.
   * Called once at start too, with `initial: true` (whatever it returns is not written then).
   */
  readonly onSnapshot: (entry: E, snapshot: SnapshotFrom<TLogic>, initial: boolean) => W | undefined
  /** After a transition's write is queued (`persisted` then covers it), with what `onSnapshot` returned: e.g. tell a supervisor. */
  readonly afterWrite?: ((entry: E, write: W) => void) | undefined
  /** After the entry's record went into the store (a refused write is tried again until it does). */
  readonly afterWritten?: ((entry: E) => void) | undefined
  /** When a write the store refused is tried again (default 100 ms, doubling up to 2 s). */
  readonly retry?: RetryTiming | undefined
  /** An error of an entry's actor, reported instead of escaping as an uncaught exception. */
  readonly onError: (entry: E, error: unknown) => void
  /** Whether an entry may hibernate besides being idle long enough (e.g. not in a busy step). */
  readonly mayHibernate?: ((entry: E) => boolean) | undefined
  /** Idle time before an entry hibernates; 0 never. */
  readonly hibernateAfterMs: number
  /** What an E2020 names: the entry's kind (e.g. "agent"), state and a description of it (default: the state). */
  readonly noun: string
  readonly describe: (entry: E) => { readonly state: string; readonly where: string }
  readonly now: () => number
  readonly inspect?: ((event: InspectionEvent) => void) | undefined
  readonly clock?: Clock | undefined
}

/** The host of one kind of machine. */
export interface ActorHost<TLogic extends AnyStateMachine, E extends HostedEntry<TLogic>> {
  /** Registers an entry (not yet started). */
  readonly add: (entry: E) => void
  readonly get: (id: string) => E | undefined
  readonly has: (id: string) => boolean
  readonly remove: (entry: E) => void
  /** Removes an entry that never was: its actor stopped, its writes not yet in the store dropped. */
  readonly forget: (entry: E) => void
  readonly entries: () => IterableIterator<E>
  readonly size: () => number
  /** Starts the entry's actor, fresh or from a persisted snapshot. */
  readonly start: (entry: E, snapshot?: unknown) => Actor<TLogic>
  /** The entry's live actor, woken from hibernation when needed. */
  readonly live: (entry: E) => Actor<TLogic>
  /** Sends `event` if the current state accepts it, else fails with E2020 naming `operation`; nothing changes then. */
  readonly send: (entry: E, event: EventFromLogic<TLogic>, operation: string) => Effect.Effect<void, InvalidTransition>
  /** Whether the current state accepts `event`; nothing is sent. */
  readonly accepts: (entry: E, event: EventFromLogic<TLogic>) => boolean
  /** Sends `event` if the current state accepts it; false (and nothing sent) otherwise. */
  readonly sendIfAccepted: (entry: E, event: EventFromLogic<TLogic>) => boolean
  /** Resolves with `result()` once `done()` holds, checked after every transition of the entry. */
  readonly waitFor: <A = void>(entry: E, done: () => boolean, result?: () => A) => Effect.Effect<A>
  /** Queues a write of the entry's record and events (outside a transition, e.g. a conversation). */
  readonly persist: (entry: E, events: ReadonlyArray<LifecycleEvent>, defer?: boolean) => void
  /** The entry's queued writes, written now if deferred. */
  readonly persisted: (entry: E) => Promise<void>
  /**
   * Resolves once the queued writes of the entry with this id are written (at once for an unknown id);
   * rejects with the failed write's error as plain data (E2060): what a side effect waits for.
   */
  readonly written: (id: string) => Promise<void>
  /** Resolves once every queued write has been tried (one the store refused, once more). */
  readonly allWritten: () => Promise<void>
  /** Hibernates every idle entry now (the host also does it on a timer). */
  readonly sweep: () => void
  /** Stops every actor, the hibernation timer and the timed retries of refused writes; entries and their snapshots stay. */
  readonly stop: () => void
}

const accepted = (snapshot: { readonly status: string; can: (event: never) => boolean }, event: unknown) =>
  snapshot.status === "active" && snapshot.can(event as never)

/** Builds an actor host; it hibernates on a timer of its own (unref'd) until `stop`. */
export const makeActorHost = <TLogic extends AnyStateMachine, E extends HostedEntry<TLogic>, W extends SnapshotWrite = SnapshotWrite>(
  options: ActorHostOptions<TLogic, E, W>
): ActorHost<TLogic, E> => {
  const registry = new Map<string, E>()
  const remove = (entry: E) => {
    if (registry.get(options.idOf(entry)) === entry) registry.delete(options.idOf(entry))
  }
  const batches = makeWriteBatches<E>(options.write, options.idOf, {
    ...(options.retry === undefined ? {} : { retry: options.retry }),
    ...(options.afterWritten === undefined ? {} : { onWritten: options.afterWritten })
  })
  const actorOptions = {
    ...(options.inspect === undefined ? {} : { inspect: options.inspect }),
    ...(options.clock === undefined ? {} : { clock: options.clock })
  }

  const start = (entry: E, snapshot?: unknown): Actor<TLogic> => {
    const actor = createActor(options.logic, {
      ...actorOptions,
      input: options.input(entry),
      systemId: options.systemIdOf(entry),
      ...(snapshot === undefined ? {} : { snapshot: snapshot as never })
    }) as Actor<TLogic>
    entry.actor = actor
    entry.hibernated = undefined
    entry.lastActiveAt = options.now()
    options.onSnapshot(entry, actor.getSnapshot(), true)
    actor.subscribe({
      next: (next) => {
        const write = options.onSnapshot(entry, next, false)
        if (write === undefined) return
        entry.lastActiveAt = options.now()
        batches.persist(entry, write.events, write.defer)
        options.afterWrite?.(entry, write)
      },
      error: (error) => options.onError(entry, error)
    })
    actor.start()
    return actor
  }

  const live = (entry: E): Actor<TLogic> => entry.actor ?? start(entry, entry.hibernated)

  // Idle entries (no invoked actor, nobody waiting) hibernate: their actor is stopped and only its
  // persisted snapshot kept. Any message wakes it by restoring the actor from that snapshot; the
  // machines have no timers in such states, so nothing is lost.
  const sweep = () => {
    const cutoff = options.now() - options.hibernateAfterMs
    for (const entry of registry.values()) {
      const actor = entry.actor
      if (actor === undefined || entry.lastActiveAt > cutoff || entry.waiters > 0) continue
      if (options.mayHibernate !== undefined && !options.mayHibernate(entry)) continue
      const snapshot = actor.getSnapshot() as { readonly status: string; readonly children: Record<string, unknown> }
      if (snapshot.status !== "active" || Object.keys(snapshot.children).length > 0) continue
      entry.hibernated = actor.getPersistedSnapshot()
      entry.actor = undefined
      actor.stop()
    }
  }
  const sweeper = options.hibernateAfterMs > 0 ? setInterval(sweep, Math.max(250, Math.min(options.hibernateAfterMs / 2, 30_000))) : undefined
  sweeper?.unref()

  return {
    add: (entry) => void registry.set(options.idOf(entry), entry),
    get: (id) => registry.get(id),
    has: (id) => registry.has(id),
    remove,
    forget: (entry) => {
      entry.actor?.stop()
      batches.forget(entry)
      remove(entry)
    },
    entries: () => registry.values(),
    size: () => registry.size,
    start,
    live,
    send: (entry, event, operation) =>
      Effect.suspend(() => {
        const actor = live(entry)
        if (!accepted(actor.getSnapshot(), event)) {
          const { state, where } = options.describe(entry)
          return Effect.fail(
            new InvalidTransition({ message: `cannot ${operation} ${options.noun} ${options.idOf(entry)} while it is ${where}`, agentId: options.idOf(entry), state, operation })
          )
        }
        actor.send(event)
        return Effect.void
      }),
    accepts: (entry, event) => accepted(live(entry).getSnapshot(), event),
    sendIfAccepted: (entry, event) => {
      const actor = live(entry)
      if (!accepted(actor.getSnapshot(), event)) return false
      actor.send(event)
      return true
    },
    waitFor: <A>(entry: E, done: () => boolean, result?: () => A) =>
      Effect.callback<A>((resume) => {
        const answer = () => Effect.succeed(result === undefined ? (undefined as A) : result())
        if (done()) return resume(answer())
        entry.waiters += 1
        const finish = () => {
          entry.waiters -= 1
          sub.unsubscribe()
          resume(answer())
        }
        const sub = live(entry).subscribe({ next: () => done() && finish(), complete: finish })
        return Effect.sync(() => {
          entry.waiters -= 1
          sub.unsubscribe()
        })
      }),
    persist: batches.persist,
    persisted: batches.persisted,
    written: async (id) => {
      const entry = registry.get(id)
      if (entry === undefined) return
      await batches.persisted(entry)
      if (entry.persistError !== undefined) throw toErrorData(entry.persistError)
    },
    allWritten: batches.allWritten,
    sweep,
    stop: () => {
      batches.close()
      if (sweeper !== undefined) clearInterval(sweeper)
      for (const entry of registry.values()) {
        const actor = entry.actor
        if (actor === undefined) continue
        // Kept as hibernated first: a write after the stop (the last try at shutdown) records the
        // actor as it was, not as stopped (a restore of a stopped snapshot would accept nothing).
        entry.hibernated = actor.getPersistedSnapshot()
        entry.actor = undefined
        actor.stop()
      }
    }
  }
}
