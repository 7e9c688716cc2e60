// Three supervisors share one fleet on Effect Cluster (PostgreSQL): every agent is hosted by exactly
// one runner, any runner answers for any agent as the owner would (values, coded errors, execute over
// SSE), and when one runner is killed (kill -9) in the middle of a burst of operations, the survivors
// take its shards: afterwards every agent answers, none is lost and none is hosted twice.
import { execFileSync } from "node:child_process"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { api, eachLimited, makeSchema, type Runner, startFleet } from "./clusterSupport.ts"

const baseUrl = process.env.L02_TEST_POSTGRES_URL ?? ""
const agents = 300
const leaseSeconds = 6
let schemaName = ""

/** How many agents each runner hosts now (its fleet status says, beside the fleet's counts). */
const hosted = async (runners: ReadonlyArray<Runner>) => Promise.all(runners.map(async (r) => (await api(r, "GET", "/v1/fleet")).body.hostedHere as number))

/** Retries `f` until it holds or `ms` pass. */
const eventually = async <A>(ms: number, f: () => Promise<A>, holds: (a: A) => boolean): Promise<A> => {
  const deadline = Date.now() + ms
  for (;;) {
    const value = await f()
    if (holds(value) || Date.now() > deadline) return value
    await new Promise((resolve) => setTimeout(resolve, 250))
  }
}

describe.skipIf(baseUrl === "")("a fleet of three runners on one PostgreSQL", () => {
  let schema: ReturnType<typeof makeSchema>
  let fleet: Awaited<ReturnType<typeof startFleet>>
  const ids: Array<string> = []

  beforeAll(async () => {
    schema = makeSchema(baseUrl)
    schemaName = schema.name
    fleet = await startFleet(schema.url, 3, leaseSeconds)
    // Each runner sees the others' joins within a refresh of assignments (1 s) and only then gives up
    // shards; the memory backend's sandboxes live in their runner's process, so agents spawned before
    // the shards settle would lose theirs when their shard moves. A quiet period first (a loaded host
    // takes longer to observe the joins).
    await new Promise((resolve) => setTimeout(resolve, 4000))
  }, 120_000)
  afterAll(async () => {
    await fleet?.stop()
    schema?.drop()
  }, 60_000)

  it("spawns 300 agents through different runners; every runner lists all 300 and answers for each; each is hosted once", async () => {
    const { runners } = fleet
    const spawned = await eachLimited(Array.from({ length: agents }, (_, i) => i), 12, async (i) => {
      const answer = await api(runners[i % 3]!, "POST", "/v1/agents", { config: { name: `a${i}`, trustLevel: "TRUSTED" } })
      expect(answer.status, JSON.stringify(answer.body)).toBe(201)
      return answer.body.agentId as string
    })
    ids.push(...spawned)
    expect(new Set(ids).size).toBe(agents)
    for (const r of runners) {
      const listed = (await api(r, "GET", "/v1/agents")).body.agents as Array<{ agentId: string; state: string }>
      expect(new Set(listed.map((a) => a.agentId))).toEqual(new Set(ids))
    }
    // Every agent through every runner: the same answer as its owner gives.
    await eachLimited(ids, 12, async (id) => {
      const states = await Promise.all(runners.map((r) => api(r, "GET", `/v1/agents/${id}`)))
      for (const s of states) {
        // On failure: the agent as answered and what the runners logged of it.
        const why = () => `${JSON.stringify(s.body)}\n${runners.flatMap((r) => r.output.filter((l) => l.includes(id)).map((l) => `${r.name}: ${l}`)).join("\n")}`
        expect([s.status, s.body.agentId, s.body.state], why()).toEqual([200, id, "running"])
      }
    })
    // Hosted exactly once, spread over the three; each runner's fleet status counts the whole fleet.
    const counts = await hosted(runners)
    expect(counts.reduce((a, b) => a + b, 0)).toBe(agents)
    for (const c of counts) expect(c).toBeGreaterThan(0)
    for (const r of runners) expect((await api(r, "GET", "/v1/fleet")).body).toMatchObject({ total: agents, byState: { running: agents } })
  }, 300_000)

  it("carries every operation to the owner: suspend on one runner, resume on another, execute over SSE through a third, the same coded errors", async () => {
    const [a, b, c] = fleet.runners as [Runner, Runner, Runner]
    const id = ids[0]!
    // The events of every runner, on any runner's stream.
    const watcher = new AbortController()
    const stream = await fetch(`${c.url}/v1/events?agentId=${id}`, { signal: watcher.signal })
    const seen = (async () => {
      const decoder = new TextDecoder()
      let text = ""
      for await (const chunk of stream.body!) {
        text += decoder.decode(chunk as Uint8Array)
        if (text.includes('"toState":"suspended"')) return text
      }
      return text
    })()
    expect((await api(a, "POST", `/v1/agents/${id}/suspend`, {})).body).toMatchObject({ agentId: id, state: "suspended" })
    const timeout = setTimeout(() => watcher.abort(), 10_000)
    expect(await seen.catch(() => "")).toContain('"toState":"suspended"')
    clearTimeout(timeout)
    watcher.abort()
    const again = await api(b, "POST", `/v1/agents/${id}/suspend`, {})
    expect(again.status).toBe(409)
    expect(again.body.error).toMatchObject({ code: "E2020", agentId: id })
    expect((await api(b, "POST", `/v1/agents/${id}/resume`, {})).body).toMatchObject({ agentId: id, state: "running" })
    const response = await fetch(`${c.url}/v1/agents/${id}/execute`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ input: "through c" }) })
    const text = await response.text()
    expect(text).toContain("through c")
    expect(text).toContain("event: done")
    // An unknown agent: E2021 from every runner; a malformed id: E2001 before anything is routed.
    for (const r of fleet.runners) {
      expect((await api(r, "GET", "/v1/agents/00000000-0000-4000-8000-000000000000")).body.error.code).toBe("E2021")
      expect((await api(r, "GET", "/v1/agents/not-an-id")).body.error.code).toBe("E2001")
    }
    // A pool is the fleet's: scaled up through one runner, its members land on their shards' owners;
    // scaled down through another, it counts them all.
    const up = await api(a, "POST", "/v1/fleet/scale", { pool: "web", replicas: 6, template: { name: "web", trustLevel: "TRUSTED" } })
    expect(up.body, JSON.stringify(up.body)).toMatchObject({ status: "completed", targetReplicas: 6 })
    const members = async () => (await api(b, "GET", "/v1/agents?label=pool.l02.dev/name=web")).body.agents.filter((m: { state: string }) => m.state !== "terminated") as Array<{ agentId: string }>
    const web = await members()
    expect(web).toHaveLength(6)
    const owners = new Set(await Promise.all(web.map(async (m) => (await api(c, "GET", `/v1/agents/${m.agentId}`)).body.hostedBy as string)))
    expect(owners.size).toBeGreaterThan(1)
    expect((await api(c, "POST", "/v1/fleet/scale", { pool: "web", replicas: 2 })).body).toMatchObject({ status: "completed" })
    expect(await members()).toHaveLength(2)
    expect((await api(b, "POST", "/v1/fleet/scale", { pool: "web", replicas: 0 })).body).toMatchObject({ status: "completed", operationType: "drain" })
    expect(await members()).toHaveLength(0)

    // A workflow belongs to the runner that started it: read through any runner; signalled elsewhere,
    // E2034 naming its runner and nothing changes; signalled on its own, it goes on.
    const started = await api(a, "POST", "/v1/workflows", { graph: { name: "hold", nodes: [{ id: "approve", kind: "approval" }] } })
    expect(started.status, JSON.stringify(started.body)).toBe(201)
    const runId = started.body.workflowId as string
    expect(started.body.hostedBy).toBe(`127.0.0.1:${a.runnerPort}`)
    await eventually(10_000, async () => (await api(b, "GET", `/v1/workflows/${runId}`)).body.state, (state) => state === "waiting")
    const elsewhere = await api(b, "POST", `/v1/workflows/${runId}/signal`, { node: "approve", value: true })
    expect(elsewhere.body.error).toMatchObject({ code: "E2034" })
    expect(elsewhere.body.error.message).toContain(`127.0.0.1:${a.runnerPort}`)
    expect((await api(c, "GET", `/v1/workflows/${runId}`)).body.state).toBe("waiting")
    expect((await api(a, "POST", `/v1/workflows/${runId}/signal`, { node: "approve", value: true })).status).toBe(200)
    expect(await eventually(10_000, async () => (await api(c, "GET", `/v1/workflows/${runId}`)).body.state, (state) => state === "completed")).toBe("completed")

    const gone = ids.pop()!
    expect((await api(c, "DELETE", `/v1/agents/${gone}`)).status).toBe(200)
    const afterEnd = await api(a, "POST", `/v1/agents/${gone}/suspend`, {})
    expect(afterEnd.body.error).toMatchObject({ code: "E2020", agentId: gone })
  }, 120_000)

  it("a run started through one runner is followed through another and cancelled through a third; each event once, in order", async () => {
    const [a, b, c] = fleet.runners as [Runner, Runner, Runner]
    const spawned = await api(a, "POST", "/v1/agents", { config: { name: "runs", trustLevel: "TRUSTED", command: ["l02-agent"] } })
    expect(spawned.status, JSON.stringify(spawned.body)).toBe(201)
    const agentId = spawned.body.agentId as string
    const started = await api(b, "POST", `/v1/agents/${agentId}/execute`, { input: { hello: "fleet" }, detach: true })
    expect(started.status, JSON.stringify(started.body)).toBe(202)
    const runId = started.body.runId as string
    const read = async (runner: Runner, headers: Record<string, string> = {}) => {
      const text = await (await fetch(`${runner.url}/v1/runs/${runId}/events`, { headers })).text()
      return [...text.matchAll(/^id: (\d+)\nevent: (\S+)\n/gm)].map((m) => [Number(m[1]), m[2]])
    }
    expect(await read(c)).toEqual([[1, "output"], [2, "done"], [3, "end"]])
    expect(await read(a, { "last-event-id": "1" })).toEqual([[2, "done"], [3, "end"]])
    expect((await api(c, "GET", `/v1/runs/${runId}`)).body).toMatchObject({ runId, agentId, status: "completed", lastSeq: 3 })
    expect((await api(a, "GET", `/v1/runs?agentId=${agentId}`)).body.runs.map((r: { runId: string }) => r.runId)).toEqual([runId])

    // A step that never answers: started through a, cancelled through c, seen ended through b.
    const quiet = (await api(a, "POST", "/v1/agents", { config: { name: "quiet", trustLevel: "TRUSTED", command: ["l02-sleep", "600"] } })).body.agentId as string
    const long = (await api(a, "POST", `/v1/agents/${quiet}/execute`, { input: "x", detach: true })).body.runId as string
    const cancelled = await api(c, "POST", `/v1/runs/${long}/cancel`)
    expect(cancelled.body, JSON.stringify(cancelled.body)).toMatchObject({ runId: long, status: "cancelled", error: { code: "E2037" } })
    expect(await eventually(10_000, async () => (await api(b, "GET", `/v1/runs/${long}`)).body.status, (status) => status === "cancelled")).toBe("cancelled")
    expect(await eventually(10_000, async () => (await api(b, "GET", `/v1/agents/${quiet}`)).body.activity, (activity) => activity === "idle")).toBe("idle")
    // The tests after this one count the fleet's agents: these two leave it.
    for (const id of [agentId, quiet]) expect((await api(c, "DELETE", `/v1/agents/${id}?force=true`)).status).toBe(200)
  }, 120_000)

  it("loses nothing when a runner is killed (kill -9) in a burst of operations: its shards move, every agent answers through the survivors, none hosted twice", async () => {
    const [victim, ...survivors] = fleet.runners as [Runner, Runner, Runner]
    // A step under way on the victim (an agent whose shard it owns): its run must end interrupted once a
    // survivor takes the agent.
    let sleeper: string | undefined
    for (let i = 0; i < 40 && sleeper === undefined; i++) {
      const id = (await api(survivors[0]!, "POST", "/v1/agents", { config: { name: `sleeper-${i}`, trustLevel: "TRUSTED", command: ["l02-sleep", "600"] } })).body.agentId as string
      ids.push(id)
      if ((await api(victim, "GET", `/v1/agents/${id}`)).body.hostedBy === `127.0.0.1:${victim.runnerPort}`) sleeper = id
    }
    expect(sleeper, "an agent hosted by the victim").toBeDefined()
    const cut = (await api(survivors[0]!, "POST", `/v1/agents/${sleeper}/execute`, { input: "x", detach: true })).body.runId as string
    expect((await api(survivors[1]!, "GET", `/v1/runs/${cut}`)).body.status).toBe("running")
    const before = await hosted(fleet.runners)
    expect(before[0]).toBeGreaterThan(0)
    // A burst through the survivors; the victim dies in the middle of it.
    let stop = false
    const burst = (async () => {
      let calls = 0
      while (!stop) {
        await eachLimited(ids.slice(0, 60), 12, async (id, i) => {
          await api(survivors[i % 2]!, "GET", `/v1/agents/${id}`).catch(() => undefined)
          calls += 1
        })
      }
      return calls
    })()
    await new Promise((resolve) => setTimeout(resolve, 500))
    // Spawns accepted by the survivors while the victim dies: about a third go to its shards.
    const spawning = eachLimited(Array.from({ length: 30 }, (_, i) => i), 10, async (i) =>
      api(survivors[i % 2]!, "POST", "/v1/agents", { config: { name: `during-${i}`, trustLevel: "TRUSTED" } }).then(
        (answer) => answer,
        (error) => ({ status: 0, body: { error: { code: String(error) } } })
      )
    )
    // And spawns accepted by the victim itself, some of them cut off by its death.
    const throughVictim = eachLimited(Array.from({ length: 10 }, (_, i) => i), 5, async (i) =>
      api(victim, "POST", "/v1/agents", { config: { name: `via-victim-${i}`, trustLevel: "TRUSTED" } }).then(
        (answer) => answer,
        () => ({ status: 0, body: undefined })
      )
    )
    await new Promise((resolve) => setTimeout(resolve, 50))
    const killedAt = Date.now()
    victim.child.kill("SIGKILL")
    // Each spawn was carried out (once) or refused with a coded error.
    const spawned = await spawning
    for (const answer of spawned) {
      if (answer.status === 201) ids.push(answer.body.agentId)
      else expect(answer.body.error.code, JSON.stringify(answer.body)).toMatch(/^E20\d\d$/)
    }
    const listedNow = (await api(survivors[0]!, "GET", "/v1/agents")).body.agents as Array<{ agentId: string; name: string }>
    const during = listedNow.filter((a) => a.name.startsWith("during-"))
    expect(during.length, "agents of the spawns made during the kill").toBe(spawned.filter((a) => a.status === 201).length)
    // Through the victim: each answered spawn's agent exists; none is there twice (an unanswered one
    // may have been carried out, once, by the agent's owner).
    const victimSpawns = await throughVictim
    for (const answer of victimSpawns) if (answer.status === 201) expect(listedNow.map((a) => a.agentId)).toContain(answer.body.agentId)
    for (let i = 0; i < 10; i++) expect(listedNow.filter((a) => a.name === `via-victim-${i}`).length).toBeLessThanOrEqual(1)
    for (const a of listedNow) if (a.name.startsWith("via-victim-")) ids.push(a.agentId)
    // Within the lease and a little more, the survivors host every agent, once.
    const counts = await eventually((leaseSeconds + 20) * 1000, () => hosted(survivors), (c) => c[0]! + c[1]! === ids.length)
    const movedMs = Date.now() - killedAt
    stop = true
    expect(await burst).toBeGreaterThan(0)
    expect(counts[0]! + counts[1]!, `hosted after the kill: ${counts}`).toBe(ids.length)
    expect(movedMs).toBeLessThan((leaseSeconds + 20) * 1000)
    // Every agent answers through each survivor; none is lost. The victim's sandboxes (the memory
    // backend's, local to its process) are gone: its agents are restarted per policy on their new owner.
    await eachLimited(ids, 12, async (id) => {
      for (const r of survivors) {
        const s = await eventually(30_000, () => api(r, "GET", `/v1/agents/${id}`), (a) => a.status === 200 && a.body.state === "running")
        expect([s.status, s.body.agentId, s.body.state], JSON.stringify(s.body)).toEqual([200, id, "running"])
      }
    })
    // The run of the step that was under way on the victim: interrupted, through any survivor.
    const interrupted = await eventually(30_000, () => api(survivors[1]!, "GET", `/v1/runs/${cut}`), (r) => r.body.status !== "running")
    expect(interrupted.body, JSON.stringify(interrupted.body)).toMatchObject({ runId: cut, status: "interrupted", error: { code: "E2036" } })
    for (const r of survivors) {
      const listed = (await api(r, "GET", "/v1/agents")).body.agents as Array<{ agentId: string; state: string }>
      expect(listed.filter((a) => a.state !== "terminated").map((a) => a.agentId).sort()).toEqual([...ids].sort())
    }
    // Still hosted once each a while later (no second owner appeared).
    await new Promise((resolve) => setTimeout(resolve, 2000))
    const later = await hosted(survivors)
    expect(later[0]! + later[1]!).toBe(ids.length)
  }, 300_000)

  it("fences a runner paused past its lease (SIGSTOP, then SIGCONT once its shards moved): it stops its actors and writes nothing over the new owner", async () => {
    const [, paused, other] = fleet.runners as [Runner, Runner, Runner]
    const hostOf = async () => {
      const map = new Map<string, string>()
      await eachLimited(ids, 12, async (id) => map.set(id, (await api(other, "GET", `/v1/agents/${id}`)).body.hostedBy))
      return map
    }
    const before = await hostOf()
    const pausedAddress = `127.0.0.1:${paused.runnerPort}`
    const movedIds = ids.filter((id) => before.get(id) === pausedAddress)
    expect(movedIds.length).toBeGreaterThan(0)
    // The store tokens of the paused runner's hostings: once another hosting claims an agent, a write
    // carrying its old token changes nothing (the store contract tests show the refusal).
    const tokensBefore = rowsOf(movedIds)
    paused.child.kill("SIGSTOP")
    try {
      // The other runner takes every agent once the paused one's lease lapsed.
      const alone = await eventually((leaseSeconds + 30) * 1000, async () => (await api(other, "GET", "/v1/fleet")).body.hostedHere as number, (n) => n === ids.length)
      expect(alone).toBe(ids.length)
      for (const id of movedIds.slice(0, 20)) expect((await api(other, "GET", `/v1/agents/${id}`)).body.hostedBy).toBe(`127.0.0.1:${other.runnerPort}`)
    } finally {
      paused.child.kill("SIGCONT")
    }
    // Back, the paused runner learns its shards are gone and releases its actors; its shards come back
    // to it (the same assignment), each agent adopted anew: every agent hosted once.
    const settled = await eventually(30_000, () => hosted([paused, other]), (c) => c[0]! + c[1]! === ids.length)
    expect(settled[0]! + settled[1]!).toBe(ids.length)
    await new Promise((resolve) => setTimeout(resolve, 3000))
    // No agent is left with a token of the hostings from before the pause: those can write nothing.
    const tokensAfter = rowsOf(movedIds)
    for (const id of movedIds) expect(tokensAfter.get(id), id).not.toBe(tokensBefore.get(id))
    const final = await hosted([paused, other])
    expect(final[0]! + final[1]!).toBe(ids.length)
    for (const id of ids) expect((await api(paused, "GET", `/v1/agents/${id}`)).status).toBe(200)
  }, 300_000)
})

/** Each agent's stored host token. */
const rowsOf = (agentIds: ReadonlyArray<string>) => {
  const out = execFileSync("psql", [baseUrl, "-At", "-F", " ", "-c", `SELECT agent_id, host_token FROM ${schemaName}.agent_instances WHERE agent_id IN (${agentIds.map((id) => `'${id}'`).join(",") || "NULL"})`], { encoding: "utf8" })
  return new Map(out.trim().split("\n").filter((l) => l !== "").map((line) => {
    const [id, token] = line.split(" ")
    return [id!, token ?? ""]
  }))
}
