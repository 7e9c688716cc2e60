/**
 * Warm pools: sandboxes made ahead of time from a template, claimed by spawns whose config equals it.
 *
 * A warm sandbox is provisioned for the agent that will claim it: its agent id is chosen when it is
 * made, so its labels, name and environment are already those of that agent, and a claim is only
 * "take it from the list" (synchronous: two spawns can never get the same sandbox) plus, for a paused
 * sandbox, an unpause. A paused pool keeps `thawed` of its ready sandboxes running: claims take those
 * first, and the pool thaws the next one in the background, so a claim pays an unpause only when
 * claims come faster than the engine unpauses. A host that dies between a claim and the agent's first write leaves a sandbox
 * labelled as warm for an agent the store does not know: the next start adopts it back into its pool
 * (or reaps it when the pool is gone or its template changed).
 */
import { createHash } from "node:crypto"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Queue from "effect/Queue"
import type { AgentConfig } from "../../domain/AgentConfig.ts"
import type { ErrorData } from "../../domain/ErrorCatalog.ts"
import type { PoolStatus } from "../../domain/PoolStatus.ts"
import type { WarmPoolConfig } from "../../domain/RuntimeConfig.ts"

/** Labels of a warm sandbox: its pool, and the hash of the template it was made from. */
export const WarmLabels = {
  pool: "l02.dev/warm-pool",
  template: "l02.dev/warm-template"
} as const

/** One ready sandbox, made for the agent id it carries. */
export interface WarmSandbox {
  readonly pool: string
  readonly agentId: string
  readonly sessionId: string
  readonly sandboxId: string
  readonly paused: boolean
}

/** A pool as the runtime sees it. */
export interface WarmPool {
  readonly name: string
  readonly template: AgentConfig
  /** Hash of the template (sessionId aside), on every sandbox of the pool. */
  readonly templateHash: string
  readonly paused: boolean
  /** Ready sandboxes a paused pool keeps running (0 for a running pool: all of them run). */
  readonly thawed: number
  /** Paused sandboxes being unpaused to become thawed ones (out of `ready` meanwhile). */
  thawing: number
  /** Sandboxes being made that will be left running (thawed) rather than paused. */
  makingRunning: number
  readonly min: number
  readonly max: number
  size: number
  readonly ready: Array<WarmSandbox>
  creating: number
  /** Set by a resize up or a death: fill to size on the next wake, whatever min says. */
  fill: boolean
  claimedTotal: number
  createdTotal: number
  missesTotal: number
  lastError: ErrorData | undefined
}

/** What the pools need from the runtime. */
export interface WarmPoolDeps {
  /** Provisions, starts and (when `paused`) pauses a sandbox for a fresh agent id. */
  readonly make: (pool: WarmPool, paused: boolean) => Effect.Effect<WarmSandbox, ErrorData>
  /** Unpauses a paused ready sandbox. */
  readonly unpause: (sandboxId: string) => Effect.Effect<void, ErrorData>
  /** Removes a sandbox, quietly. */
  readonly remove: (sandboxId: string) => Effect.Effect<void>
  /** Waits for a spawn slot (admission); undefined when the queue is full. */
  readonly admit: (pool: WarmPool) => Effect.Effect<(() => void) | undefined>
  readonly fork: (effect: Effect.Effect<void>) => Fiber.Fiber<void>
  /** Whether the backend can pause; a pool asking for paused sandboxes on one that cannot keeps them running. */
  readonly canPause: boolean
  /** How many sandboxes one pool makes at once. */
  readonly concurrency: number
}

/** JSON with object keys sorted, so equal configs give equal text whatever their key order. */
export const canonicalJson = (value: unknown): string =>
  JSON.stringify(value, (_key, v: unknown) =>
    v !== null && typeof v === "object" && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v
  )

/** The key a spawn config is matched by: the config without its session id. */
export const templateKey = (config: AgentConfig): string => {
  const { sessionId: _sessionId, ...rest } = config
  return canonicalJson(rest)
}

/** A pool's initial state from its configuration. */
const poolOf = (c: WarmPoolConfig, key: string, canPause: boolean): WarmPool => {
  const paused = (c.paused ?? true) && canPause
  return {
    name: c.name,
    template: c.template,
    templateHash: createHash("sha256").update(key).digest("hex").slice(0, 32),
    paused,
    thawed: paused ? (c.thawed ?? 1) : 0,
    thawing: 0,
    makingRunning: 0,
    min: c.min ?? c.size,
    max: c.max ?? c.size,
    size: c.size,
    ready: [],
    creating: 0,
    fill: false,
    claimedTotal: 0,
    createdTotal: 0,
    missesTotal: 0,
    lastError: undefined
  }
}

/** Ready sandboxes that run (not paused). */
const runningReady = (pool: WarmPool) => pool.ready.reduce((n, s) => (s.paused ? n : n + 1), 0)
/** Thawed sandboxes a paused pool lacks, counting those being thawed or made running. */
const thawedMissing = (pool: WarmPool) => pool.thawed - runningReady(pool) - pool.thawing - pool.makingRunning


/** What `status()` says of a pool. */
const statusOf = (pool: WarmPool): PoolStatus => ({
    name: pool.name,
    size: pool.size,
    min: pool.min,
    max: pool.max,
    paused: pool.paused,
    thawed: pool.thawed,
    ready: pool.ready.length,
    readyRunning: runningReady(pool),
    creating: pool.creating,
    claimedTotal: pool.claimedTotal,
    createdTotal: pool.createdTotal,
    missesTotal: pool.missesTotal,
    ...(pool.lastError === undefined ? {} : { lastError: { code: pool.lastError.code, message: pool.lastError.message } })
})

/** Unpauses paused ready sandboxes until `thawed` run (in the background; a failed one is replaced). */
const thaw = (deps: WarmPoolDeps, pool: WarmPool, wake: (pool: WarmPool) => void) => {
  for (let missing = thawedMissing(pool); missing > 0; missing--) {
    const i = pool.ready.findIndex((s) => s.paused)
    if (i === -1) return
    const [sandbox] = pool.ready.splice(i, 1)
    pool.thawing += 1
    deps.fork(
      deps.unpause(sandbox!.sandboxId).pipe(
        Effect.matchEffect({
          // A pool shrunk meanwhile (resize) keeps no more than its size.
          onSuccess: () =>
            pool.ready.length >= pool.size ? deps.remove(sandbox!.sandboxId) : Effect.sync(() => pool.ready.unshift({ ...sandbox!, paused: false })),
          onFailure: (error) =>
            Effect.andThen(
              Effect.sync(() => {
                pool.lastError = error
                pool.fill = true
              }),
              deps.remove(sandbox!.sandboxId)
            )
        }),
        Effect.ensuring(
          Effect.sync(() => {
            pool.thawing -= 1
            wake(pool)
          })
        )
      )
    )
  }
}

/** Makes sandboxes until `size` are ready or being made; waits for a wake when the pool is full. */
const refill = (deps: WarmPoolDeps, pool: WarmPool, queue: Queue.Queue<void>, wake: (pool: WarmPool) => void): Effect.Effect<void> =>
  Effect.gen(function* () {
    let failures = 0
    // Fill to size at the start, and again whenever fewer than min are ready or being made.
    let filling = true
    for (;;) {
      thaw(deps, pool, wake)
      const have = pool.ready.length + pool.creating + pool.thawing
      if (have < pool.min || pool.fill) filling = true
      pool.fill = false
      if (!filling || have >= pool.size) {
        filling = false
        yield* Queue.take(queue)
        // Let the spawn whose claim woke us finish before the engine gets busy with the refill.
        yield* Effect.sleep("20 millis")
        continue
      }
      const batch = Math.min(pool.size - have, deps.concurrency)
      pool.creating += batch
      const results = yield* Effect.forEach(
        Array.from({ length: batch }),
        () =>
          Effect.gen(function* () {
            const release = yield* deps.admit(pool)
            if (release === undefined) return false
            // Left running when the pool has fewer thawed sandboxes than it keeps (no pause, no unpause).
            const thawedNow = thawedMissing(pool) > 0
            if (thawedNow) pool.makingRunning += 1
            return yield* deps.make(pool, pool.paused && !thawedNow).pipe(
              Effect.ensuring(Effect.sync(() => (pool.makingRunning -= thawedNow ? 1 : 0))),
              Effect.map((sandbox) => {
                pool.ready.push(sandbox)
                pool.createdTotal += 1
                pool.lastError = undefined
                return true
              }),
              Effect.catch((error: ErrorData) =>
                Effect.sync(() => {
                  pool.lastError = error
                  return false
                })
              ),
              Effect.ensuring(Effect.sync(release))
            )
          }).pipe(Effect.ensuring(Effect.sync(() => (pool.creating -= 1)))),
        { concurrency: batch }
      )
      // Keep a pool that fills below its target: a failed batch backs off (0.5 s doubling to 30 s).
      if (results.every((ok) => !ok)) {
        failures += 1
        yield* Effect.sleep(`${Math.min(30_000, 500 * 2 ** (failures - 1))} millis`)
      } else {
        failures = 0
      }
    }
  })

/** Builds the pools of the configuration; nothing is made until {@link start}. */
export const makeWarmPools = (configs: ReadonlyArray<WarmPoolConfig>, deps: WarmPoolDeps) => {
  const pools = new Map<string, WarmPool>()
  const byKey = new Map<string, WarmPool>()
  const wakes = new Map<string, Queue.Queue<void>>()
  const fibers: Array<Fiber.Fiber<void>> = []
  for (const c of configs) {
    const key = templateKey(c.template)
    const pool = poolOf(c, key, deps.canPause)
    pools.set(pool.name, pool)
    // Two pools with one template: the first one named serves the spawns.
    if (!byKey.has(key)) byKey.set(key, pool)
  }

  const wake = (pool: WarmPool) => {
    const queue = wakes.get(pool.name)
    if (queue !== undefined) Queue.offerUnsafe(queue, undefined)
  }

  return {
    /** Starts the refill of every pool. */
    start: Effect.gen(function* () {
      for (const pool of pools.values()) {
        const queue = yield* Queue.unbounded<void>()
        wakes.set(pool.name, queue)
        fibers.push(deps.fork(refill(deps, pool, queue, wake)))
        wake(pool)
      }
    }),

    /**
     * Takes a ready sandbox for a spawn of `config`, if a pool has this template and one ready.
     * Synchronous: no two claims can get the same sandbox.
     */
    claim: (config: AgentConfig): WarmSandbox | undefined => {
      if (byKey.size === 0) return undefined
      const pool = byKey.get(templateKey(config))
      if (pool === undefined) return undefined
      // A running (thawed) sandbox first, else the oldest paused one.
      const running = pool.ready.findIndex((s) => !s.paused)
      const sandbox = pool.ready.splice(running === -1 ? 0 : running, 1)[0]
      if (sandbox === undefined) pool.missesTotal += 1
      else pool.claimedTotal += 1
      wake(pool)
      return sandbox
    },

    /** Puts back a claimed sandbox whose spawn was refused before it used it (the store refused the spawn's record). */
    giveBack: (sandbox: WarmSandbox): void => {
      const pool = pools.get(sandbox.pool)
      if (pool === undefined) return
      pool.ready.unshift(sandbox)
      pool.claimedTotal -= 1
    },

    /**
     * Takes back a sandbox found at start with the warm labels of a pool: true when it joins the pool
     * (same pool, same template, still live), false when the caller should reap it.
     */
    adopt: (info: { readonly sandboxId: string; readonly agentId: string; readonly status: string; readonly labels: Readonly<Record<string, string>> }, sessionId: string): boolean => {
      const pool = pools.get(info.labels[WarmLabels.pool] ?? "")
      if (pool === undefined || info.labels[WarmLabels.template] !== pool.templateHash) return false
      if (info.status !== "running" && info.status !== "paused") return false
      if (pool.ready.length >= pool.max) return false
      pool.ready.push({ pool: pool.name, agentId: info.agentId, sessionId, sandboxId: info.sandboxId, paused: info.status === "paused" })
      pool.createdTotal += 1
      return true
    },

    /** Forgets a ready sandbox that died (an exit event); the pool makes another. Returns its pool's name if it was one. */
    drop: (sandboxId: string): string | undefined => {
      for (const pool of pools.values()) {
        const i = pool.ready.findIndex((s) => s.sandboxId === sandboxId)
        if (i === -1) continue
        pool.ready.splice(i, 1)
        pool.fill = true
        wake(pool)
        return pool.name
      }
      return undefined
    },

    /** The ids of every ready sandbox, of all pools. */
    readySandboxIds: (): Array<string> => [...pools.values()].flatMap((pool) => pool.ready.map((s) => s.sandboxId)),

    /** Sets a pool's size within [min, max]; undefined for an unknown pool, a message when out of bounds. */
    resize: (name: string, size: number): WarmPool | string | undefined => {
      const pool = pools.get(name)
      if (pool === undefined) return undefined
      if (!Number.isInteger(size) || size < pool.min || size > pool.max) {
        return `pool ${name} takes a size from ${pool.min} (min) to ${pool.max} (max), got ${size}`
      }
      if (size > pool.size) pool.fill = true
      pool.size = size
      wake(pool)
      return pool
    },

    /** Removes ready sandboxes beyond a pool's size (after a shrink). */
    trim: (name: string): Effect.Effect<void> =>
      Effect.suspend(() => {
        const pool = pools.get(name)
        if (pool === undefined) return Effect.void
        const extra = pool.ready.splice(pool.size)
        return Effect.forEach(extra, (s) => deps.remove(s.sandboxId), { discard: true })
      }),

    status: (): Array<PoolStatus> => [...pools.values()].map(statusOf),

    /** Stops refilling (shutdown). Ready sandboxes stay for the next start to adopt. */
    stop: Effect.suspend(() => Effect.forEach(fibers.splice(0), (f) => Fiber.interrupt(f), { discard: true })),

    /** The pools, by name. */
    pools: pools as ReadonlyMap<string, WarmPool>
  }
}

/** The pools' operations. */
export type WarmPools = ReturnType<typeof makeWarmPools>
