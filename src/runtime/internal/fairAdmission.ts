/**
 * Admission control for spawns: at most `limit` run at once; the rest wait in per-session queues
 * served round-robin, so one busy session cannot starve the others; beyond `queueLimit` waiting
 * spawns, new ones are refused at once instead of piling onto the backend.
 */
export interface FairAdmission {
  /** Resolves with a release function once a slot is free; `undefined` when the queue is full. */
  readonly acquire: (sessionId: string) => Promise<(() => void) | undefined>
  readonly running: () => number
  readonly waiting: () => number
}

/** Creates an admission controller. */
export const makeFairAdmission = (limit: number, queueLimit: number): FairAdmission => {
  let running = 0
  let waiting = 0
  const queues = new Map<string, Array<() => void>>()
  const order: Array<string> = []

  const release = () => {
    running -= 1
    // Serve the next session in turn, one waiter each.
    while (order.length > 0 && running < limit) {
      const session = order.shift()!
      const queue = queues.get(session)!
      const next = queue.shift()!
      if (queue.length > 0) order.push(session)
      else queues.delete(session)
      waiting -= 1
      running += 1
      next()
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
    acquire: (sessionId) => {
      if (running < limit && waiting === 0) {
        running += 1
        return Promise.resolve(once())
      }
      if (waiting >= queueLimit) return Promise.resolve(undefined)
      waiting += 1
      return new Promise((resolve) => {
        const queue = queues.get(sessionId)
        const grant = () => resolve(once())
        if (queue === undefined) {
          queues.set(sessionId, [grant])
          order.push(sessionId)
        } else queue.push(grant)
      })
    },
    running: () => running,
    waiting: () => waiting
  }
}
