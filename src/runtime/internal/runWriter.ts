/**
 * The ordered, batched writes of execute runs: events of every run go to the store in the order they
 * happened, many per statement (those of one window, and all that come while a write is under way),
 * and a run's end (its status and `end` event, one write) only after its events.
 *
 * A write the store refuses is not dropped: it is tried again, first in line (after 100 ms, doubling
 * up to 2 s), so nothing written later goes before it. Retrying writes nothing twice (an event already
 * stored is left as it is, a run already ended is not ended again).
 */
import * as Effect from "effect/Effect"
import type { RunEvent } from "../../domain/ExecutionRun.ts"
import type { RunEnd, RunLogShape } from "../../services/RunLog.ts"

/** The queued writes of a runtime's runs. */
export interface RunWriter {
  /** Queues one event. */
  readonly append: (event: RunEvent) => void
  /** Queues a run's end, after its events. */
  readonly finish: (runId: string, end: RunEnd & { readonly event: RunEvent }) => void
  /** Resolves once everything queued so far is written (or, after `close`, tried once more). */
  readonly drained: () => Promise<void>
  /** Stops the timed retries and tries what is left once; resolves when that is done. */
  readonly close: () => Promise<void>
}

type Op =
  | { readonly kind: "events"; readonly events: Array<RunEvent> }
  | { readonly kind: "finish"; readonly runId: string; readonly end: RunEnd & { readonly event: RunEvent } }

/** Timing of the writer: how long events gather before a write, and when a refused write is tried again. */
export interface RunWriterTiming {
  readonly windowMs: number
  readonly retryInitialMs: number
  readonly retryMaxMs: number
  readonly maxBatch: number
}

const defaultTiming: RunWriterTiming = { windowMs: 10, retryInitialMs: 100, retryMaxMs: 2000, maxBatch: 2000 }

/**
 * A writer over the run log; `onWritten` hears the highest sequence number stored of a run after each
 * write, `onFinished` of a run whose end is stored.
 */
export const makeRunWriter = (
  runLog: RunLogShape,
  hooks: { readonly onWritten: (runId: string, seq: number) => void; readonly onFinished: (runId: string) => void },
  timing: RunWriterTiming = defaultTiming
): RunWriter => {
  const queue: Array<Op> = []
  // Ops at the front of the queue being written; new events never join them.
  let frozen = 0
  let running: Promise<void> | undefined
  let timer: ReturnType<typeof setTimeout> | undefined
  let closed = false
  let delay = timing.retryInitialMs
  let waiters: Array<() => void> = []

  const settle = () => {
    if (queue.length > 0 && !closed) return
    const done = waiters
    waiters = []
    for (const resolve of done) resolve()
  }

  /** Writes the first op (or the events at the front, together); throws what the store said. */
  const writeFront = async () => {
    const head = queue[0]!
    if (head.kind === "finish") {
      frozen = 1
      await Effect.runPromise(runLog.finish(head.runId, head.end))
      queue.shift()
      frozen = 0
      hooks.onWritten(head.runId, head.end.event.seq)
      hooks.onFinished(head.runId)
      return
    }
    const batch: Array<RunEvent> = []
    let taken = 0
    // The events at the front, as many queued writes as fit in maxBatch (the first always goes).
    for (;;) {
      const op = queue[taken]
      if (op === undefined || op.kind !== "events") break
      if (taken > 0 && batch.length + op.events.length > timing.maxBatch) break
      batch.push(...op.events)
      taken += 1
    }
    frozen = taken
    await Effect.runPromise(runLog.append(batch))
    queue.splice(0, taken)
    frozen = 0
    const highest = new Map<string, number>()
    for (const event of batch) highest.set(event.runId, Math.max(highest.get(event.runId) ?? 0, event.seq))
    for (const [runId, seq] of highest) hooks.onWritten(runId, seq)
  }

  const loop = async (lastTry: boolean) => {
    while (queue.length > 0) {
      try {
        await writeFront()
        delay = timing.retryInitialMs
      } catch {
        frozen = 0
        if (lastTry || closed) return
        await new Promise((resolve) => setTimeout(resolve, delay))
        delay = Math.min(delay * 2, timing.retryMaxMs)
      }
    }
  }

  const kick = () => {
    if (running !== undefined || timer !== undefined || closed) return
    timer = setTimeout(() => {
      timer = undefined
      running = loop(false).finally(() => {
        running = undefined
        if (queue.length > 0) kick()
        settle()
      })
    }, timing.windowMs)
  }

  return {
    append: (event) => {
      const last = queue.at(-1)
      // Joins the last queued write unless it is being written or full (a batch never grows past maxBatch).
      if (last !== undefined && last.kind === "events" && queue.length > frozen && last.events.length < timing.maxBatch) last.events.push(event)
      else queue.push({ kind: "events", events: [event] })
      kick()
    },
    finish: (runId, end) => {
      queue.push({ kind: "finish", runId, end })
      kick()
    },
    drained: () => (queue.length === 0 && running === undefined ? Promise.resolve() : new Promise<void>((resolve) => waiters.push(resolve))),
    close: async () => {
      closed = true
      if (timer !== undefined) clearTimeout(timer)
      timer = undefined
      await running
      await loop(true)
      settle()
    }
  }
}
