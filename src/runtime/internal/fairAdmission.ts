/**
 * Admission control for spawns: at most `limit` run at once; the rest wait in queues by priority
 * (high, then normal, then low), and within a priority in per-session queues served round-robin, so
 * one busy session cannot starve the others; beyond `queueLimit` waiting spawns, new ones are refused
 * at once instead of piling onto the backend.
 */

/** The priority of a spawn's admission (a fleet operation's priority; warm-pool refills are low). */
export type AdmissionPriority = "high" | "normal" | "low"

/** Serving order of the priorities. */
const priorities: ReadonlyArray<AdmissionPriority> = ["high", "normal", "low"]

export interface FairAdmission {
  /** Resolves with a release function once a slot is free; `undefined` when the queue is full. */
  readonly acquire: (sessionId: string, priority?: AdmissionPriority) => Promise<(() => void) | undefined>
  readonly running: () => number
  readonly waiting: () => number
}

interface Level {
  readonly queues: Map<string, Array<() => void>>
  readonly order: Array<string>
}

/** Creates an admission controller. */
export const makeFairAdmission = (limit: number, queueLimit: number): FairAdmission => {
  let running = 0
  let waiting = 0
  const levels = new Map<AdmissionPriority, Level>(priorities.map((p) => [p, { queues: new Map(), order: [] }]))

  const next = (): (() => void) | undefined => {
    for (const p of priorities) {
      const level = levels.get(p)!
      const session = level.order.shift()
      if (session === undefined) continue
      const queue = level.queues.get(session)!
      const grant = queue.shift()!
      if (queue.length > 0) level.order.push(session)
      else level.queues.delete(session)
      return grant
    }
    return undefined
  }

  const release = () => {
    running -= 1
    // Serve the highest priority waiting, the next session in turn, one waiter each.
    while (running < limit) {
      const grant = next()
      if (grant === undefined) break
      waiting -= 1
      running += 1
      grant()
    }
  }
  const once = () => {
    let done = false
    return () => {
      if (done) return
      done = true
      release()
    }
  }

  return {
    acquire: (sessionId, priority = "normal") => {
      if (running < limit && waiting === 0) {
        running += 1
        return Promise.resolve(once())
      }
      if (waiting >= queueLimit) return Promise.resolve(undefined)
      waiting += 1
      return new Promise((resolve) => {
        const level = levels.get(priority)!
        const queue = level.queues.get(sessionId)
        const grant = () => resolve(once())
        if (queue === undefined) {
          level.queues.set(sessionId, [grant])
          level.order.push(sessionId)
        } else queue.push(grant)
      })
    },
    running: () => running,
    waiting: () => waiting
  }
}
