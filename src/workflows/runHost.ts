/**
 * Hosts workflow runs in memory: each run's record and its workflow actor (the pure machine), every
 * change written through the WorkflowStore one at a time per run, and a feed of changed runs for
 * those who wait for one.
 */
import { createActor, type Actor, type InspectionEvent } from "xstate"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as PubSub from "effect/PubSub"
import * as Schedule from "effect/Schedule"
import * as Semaphore from "effect/Semaphore"
import * as Stream from "effect/Stream"
import { type WorkflowEvent, workflowMachine } from "../../machines/workflowMachine.ts"
import { type StoreFailed, WorkflowNotFound } from "../domain/Errors.ts"
import type { WorkflowRun, WorkflowStateValue } from "../domain/WorkflowRun.ts"
import type { WorkflowStoreShape } from "../services/WorkflowStore.ts"

/** One hosted run. */
export interface HostedRun {
  run: WorkflowRun
  readonly actor: Actor<typeof workflowMachine>
  readonly writes: Semaphore.Semaphore
  /** Serialises the operations callers send (signal, cancel), each from its check to its write. */
  readonly operations: Semaphore.Semaphore
  /** When it last changed (ms): a run left alone is let go from memory (`idleMs`). */
  touched: number
}

/** The run host (see the module comment). */
export interface RunHost {
  /** The hosted run, loaded from the store when it is not in memory (E2032 when unknown). */
  readonly load: (workflowId: string) => Effect.Effect<HostedRun, WorkflowNotFound | StoreFailed>
  /** Hosts a new run and writes it. */
  readonly create: (run: WorkflowRun) => Effect.Effect<HostedRun, StoreFailed>
  /**
   * Changes a run: `event` (when given) goes to its actor, which must accept it (false and nothing
   * changed otherwise); `patch` computes the new record. Written before it resolves.
   */
  readonly change: (
    hosted: HostedRun,
    options: { readonly event?: WorkflowEvent | undefined; readonly patch?: ((run: WorkflowRun) => WorkflowRun) | undefined }
  ) => Effect.Effect<boolean, StoreFailed>
  /** Whether the run's actor accepts the event now. */
  readonly accepts: (hosted: HostedRun, event: WorkflowEvent) => boolean
  /** Every written change, as it is written. */
  readonly changes: Stream.Stream<WorkflowRun>
  readonly hosted: () => ReadonlyArray<HostedRun>
}

/** E2032 for a run id nobody knows. */
export const runNotFound = (workflowId: string) =>
  new WorkflowNotFound({ message: `no workflow run ${workflowId}; workflows.list() and GET /v1/workflows show the runs`, workflowId })

const stateOf = (actor: Actor<typeof workflowMachine>): WorkflowStateValue => actor.getSnapshot().value as WorkflowStateValue

/** Makes a run host over a store; `inspect` sees every workflow actor. */
export const makeRunHost = (options: {
  readonly store: WorkflowStoreShape
  readonly now: () => string
  readonly inspect?: ((event: InspectionEvent) => void) | undefined
  /** A run unchanged this long is dropped from memory (its record and snapshot stay in the store); never when undefined. */
  readonly idleMs?: number | undefined
}) =>
  Effect.gen(function* () {
    const { store, now } = options
    const runs = new Map<string, HostedRun>()
    const feed = yield* PubSub.unbounded<WorkflowRun>()
    const loading = yield* Semaphore.make(1)

    const host = (run: WorkflowRun): HostedRun => {
      const actor = createActor(workflowMachine, {
        input: { workflowId: run.workflowId, name: run.name },
        ...(run.snapshot === undefined ? {} : { snapshot: run.snapshot as never }),
        ...(options.inspect === undefined ? {} : { inspect: options.inspect })
      })
      actor.start()
      const hosted: HostedRun = { run, actor, writes: Semaphore.makeUnsafe(1), operations: Semaphore.makeUnsafe(1), touched: Date.now() }
      runs.set(run.workflowId, hosted)
      return hosted
    }

    const load = (workflowId: string) =>
      loading.withPermit(
        Effect.gen(function* () {
          const known = runs.get(workflowId)
          if (known !== undefined) {
            known.touched = Date.now()
            return known
          }
          const stored = yield* store.get(workflowId)
          if (Option.isNone(stored)) {
            return yield* runNotFound(workflowId)
          }
          return host(stored.value)
        })
      )

    const write = (hosted: HostedRun, next: WorkflowRun) =>
      Effect.gen(function* () {
        yield* store.save(next)
        hosted.run = next
        PubSub.publishUnsafe(feed, next)
      })

    const accepts = (hosted: HostedRun, event: WorkflowEvent) => {
      const snapshot = hosted.actor.getSnapshot()
      return snapshot.status === "active" && snapshot.can(event)
    }

    const change: RunHost["change"] = (given, options) =>
      Effect.flatMap(
        // A copy let go from memory while its caller held it: the change goes to the run as it is now.
        runs.get(given.run.workflowId) === given ? Effect.succeed(given) : Effect.orDie(load(given.run.workflowId)),
        (hosted) => changeHosted(hosted, options)
      )

    const changeHosted: RunHost["change"] = (hosted, { event, patch }) =>
      hosted.writes.withPermit(
        Effect.gen(function* () {
          if (event !== undefined) {
            if (!accepts(hosted, event)) return false
            hosted.actor.send(event)
          }
          const patched = patch === undefined ? hosted.run : patch(hosted.run)
          const snapshot = hosted.actor.getSnapshot()
          const context = snapshot.context
          const next: WorkflowRun = {
            ...patched,
            state: stateOf(hosted.actor),
            ...(context.output === undefined ? {} : { output: context.output }),
            ...(context.error === undefined ? {} : { error: context.error }),
            snapshot: hosted.actor.getPersistedSnapshot(),
            updatedAt: now()
          }
          hosted.touched = Date.now()
          // A store that refuses the write leaves the run as it was, in memory too.
          return yield* write(hosted, next).pipe(
            Effect.as(true),
            Effect.tapError(() =>
              Effect.sync(() => {
                if (event === undefined) return
                hosted.actor.stop()
                runs.delete(hosted.run.workflowId)
              })
            )
          )
        })
      )

    const create = (run: WorkflowRun) =>
      Effect.gen(function* () {
        const hosted = host(run)
        const first = { ...run, snapshot: hosted.actor.getPersistedSnapshot() }
        yield* write(hosted, first).pipe(Effect.tapError(() => Effect.sync(() => runs.delete(run.workflowId))))
        return hosted
      })

    // Waiting for a person can take days: a run nothing happens to goes back to the store until needed.
    const idleMs = options.idleMs
    const sweep = Effect.sync(() => {
      const now = Date.now()
      for (const [id, hosted] of runs) {
        if (now - hosted.touched < idleMs!) continue
        runs.delete(id)
        hosted.actor.stop()
      }
    })
    if (idleMs !== undefined) yield* Effect.forkScoped(Effect.repeat(sweep, Schedule.spaced(`${Math.max(1000, Math.floor(idleMs / 3))} millis`)))
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        for (const hosted of runs.values()) hosted.actor.stop()
      }).pipe(Effect.andThen(PubSub.shutdown(feed)))
    )

    return {
      load,
      create,
      change,
      accepts,
      changes: Stream.fromPubSub(feed),
      hosted: () => [...runs.values()]
    } satisfies RunHost
  })
