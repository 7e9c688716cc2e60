// Several supervisors on Effect Cluster (docs/cluster.md), three `l02 serve --cluster` processes on
// one PostgreSQL (a schema of the bench's own), memory backend:
// - a call routed through a non-owner against the same call on the owner (getState over HTTP,
//   alternating, same agents): the added p50;
// - failover: kill -9 of a runner, then, for each agent it hosted, the time until `getState` through a
//   survivor answers from the agent's new owner (p50 and max), against the configured lease;
// - resident memory of each runner with N agents over the three.
import { readFileSync } from "node:fs"
import { storeUrlAnswering } from "./idleFleet.ts"
import { api, eachLimited, makeSchema, type Runner, startFleet } from "../test/cluster/clusterSupport.ts"

const p = (xs: ReadonlyArray<number>, q: number) => {
  const sorted = [...xs].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor((q / 100) * sorted.length))] ?? 0
}
const round = (n: number) => Math.round(n * 100) / 100
const rssMb = (pid: number) => Number(/^VmRSS:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1]) / 1024

/** The PostgreSQL URL the bench uses, when it answers. */
export const clusterBenchStore = storeUrlAnswering

const spawnAll = (runners: ReadonlyArray<Runner>, count: number, prefix: string) =>
  eachLimited(Array.from({ length: count }, (_, i) => i), 24, async (i) => {
    const answer = await api(runners[i % runners.length]!, "POST", "/v1/agents", { config: { name: `${prefix}${i}`, trustLevel: "TRUSTED" } })
    if (answer.status !== 201) throw new Error(`spawn ${i}: ${answer.status} ${JSON.stringify(answer.body)}`)
    return answer.body.agentId as string
  })

/** Runs the three measurements; `agents` is the memory measurement's fleet size. */
export const benchCluster = async (options: { readonly storeUrl: string; readonly agents?: number; readonly leaseSeconds?: number; readonly calls?: number }) => {
  const leaseSeconds = options.leaseSeconds ?? 6
  const agents = options.agents ?? 10_000
  const calls = options.calls ?? 300
  const schema = makeSchema(options.storeUrl)
  const fleet = await startFleet(schema.url, 3, leaseSeconds)
  try {
    const { runners } = fleet
    const address = (r: Runner) => `127.0.0.1:${r.runnerPort}`

    // ---- routing: owner vs non-owner, the same agents, alternating --------------------------------
    const probe = await spawnAll(runners, 30, "probe-")
    const ownerOf = new Map<string, Runner>()
    for (const id of probe) {
      const hostedBy = (await api(runners[0]!, "GET", `/v1/agents/${id}`)).body.hostedBy as string
      ownerOf.set(id, runners.find((r) => address(r) === hostedBy)!)
    }
    const local: Array<number> = []
    const routed: Array<number> = []
    for (let i = 0; i < calls + 20; i++) {
      const id = probe[i % probe.length]!
      const owner = ownerOf.get(id)!
      const other = runners.find((r) => r !== owner)!
      for (const [runner, samples] of (i % 2 === 0 ? [[owner, local], [other, routed]] : [[other, routed], [owner, local]]) as Array<[Runner, Array<number>]>) {
        const t0 = performance.now()
        const answer = await api(runner, "GET", `/v1/agents/${id}`)
        const ms = performance.now() - t0
        if (answer.status !== 200) throw new Error(`getState: ${answer.status}`)
        if (i >= 20) samples.push(ms)
      }
    }
    const routing = { ownerP50Ms: round(p(local, 50)), nonOwnerP50Ms: round(p(routed, 50)), addedP50Ms: round(p(routed, 50) - p(local, 50)), calls }

    // ---- memory: N agents over the three runners --------------------------------------------------
    const t0 = performance.now()
    await spawnAll(runners, agents, "m-")
    const spawnSeconds = (performance.now() - t0) / 1000
    await new Promise((resolve) => setTimeout(resolve, 5000))
    const hosted = await Promise.all(runners.map(async (r) => (await api(r, "GET", "/v1/fleet")).body.hostedHere as number))
    const memory = { agents: agents + probe.length, hosted, rssMb: runners.map((r) => round(rssMb(r.child.pid!))), spawnsPerSecond: round(agents / spawnSeconds) }

    // ---- failover: kill -9 of one runner, each of its agents answering from a survivor ------------
    const [victim, ...survivors] = runners as [Runner, Runner, Runner]
    const victims = (await eachLimited(probe.concat(await spawnAll(survivors, 90, "f-")), 16, async (id) => ({ id, at: (await api(survivors[0]!, "GET", `/v1/agents/${id}`)).body.hostedBy as string })))
      .filter((a) => a.at === address(victim))
      .map((a) => a.id)
    const killedAt = performance.now()
    victim.child.kill("SIGKILL")
    const times = await eachLimited(victims, 16, async (id, i) => {
      const via = survivors[i % 2]!
      for (;;) {
        const answer = await api(via, "GET", `/v1/agents/${id}`).catch(() => undefined)
        if (answer?.status === 200 && answer.body.hostedBy !== address(victim)) return performance.now() - killedAt
        await new Promise((resolve) => setTimeout(resolve, 50))
      }
    })
    const failover = { agents: victims.length, leaseSeconds, p50Ms: Math.round(p(times, 50)), maxMs: Math.round(Math.max(...times)), targetMs: (leaseSeconds + 2) * 1000 }
    return { routing, memory, failover }
  } finally {
    await fleet.stop()
    schema.drop()
  }
}

if (import.meta.main) {
  const storeUrl = clusterBenchStore()
  if (storeUrl === undefined) console.log("no PostgreSQL answers: set L02_BENCH_POSTGRES_URL")
  else console.log(JSON.stringify(await benchCluster({ storeUrl, agents: Number(process.env.L02_BENCH_CLUSTER_AGENTS ?? 10_000) }), null, 2))
}
