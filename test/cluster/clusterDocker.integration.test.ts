// Three supervisors on one PostgreSQL and one Docker engine: when a runner is killed (kill -9), each of
// its agents is hosted by a survivor with the same container (adopted, not replaced: same sandbox id,
// no restart, its program answers), and no container is left without an owner.
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { dockerEnabled, ensureAgentImage, testDocker } from "../backends/docker/dockerTestSupport.ts"
import { api, eachLimited, makeSchema, type Runner, startFleet } from "./clusterSupport.ts"

const baseUrl = process.env.L02_TEST_POSTGRES_URL ?? ""
const docker = testDocker()
const leaseSeconds = 6
const name = `t${Date.now().toString(36)}`
const runtimeId = `cluster-${name}`

const containers = async () => (await docker.listContainers({ all: true, filters: { label: [`l02.dev/runtime-id=${runtimeId}`] } }))

describe.skipIf(baseUrl === "" || !dockerEnabled)("a fleet of three runners on one Docker engine", () => {
  let schema: ReturnType<typeof makeSchema>
  let fleet: Awaited<ReturnType<typeof startFleet>>
  beforeAll(async () => {
    await ensureAgentImage(docker)
    schema = makeSchema(baseUrl)
    fleet = await startFleet(schema.url, 3, leaseSeconds, "docker", { L02_CLUSTER__NAME: name })
  }, 180_000)
  afterAll(async () => {
    await fleet?.stop()
    for (const c of await containers()) await docker.getContainer(c.Id).remove({ force: true, v: true }).catch(() => undefined)
    schema?.drop()
  }, 120_000)

  it("a killed runner's agents keep their containers on their new owners; none is left unowned", async () => {
    const { runners } = fleet
    const ids = await eachLimited(Array.from({ length: 9 }, (_, i) => i), 3, async (i) => {
      const answer = await api(runners[i % 3]!, "POST", "/v1/agents", { config: { name: `d${i}`, trustLevel: "TRUSTED" } })
      expect(answer.status, JSON.stringify(answer.body)).toBe(201)
      return answer.body.agentId as string
    })
    const before = new Map<string, { hostedBy: string; sandboxId: string }>()
    for (const id of ids) before.set(id, (await api(runners[0]!, "GET", `/v1/agents/${id}`)).body)
    // The runner hosting the most agents dies.
    const byRunner = (r: Runner) => ids.filter((id) => before.get(id)!.hostedBy === `127.0.0.1:${r.runnerPort}`)
    const victim = [...runners].sort((a, b) => byRunner(b).length - byRunner(a).length)[0]!
    const moved = byRunner(victim)
    expect(moved.length).toBeGreaterThan(0)
    victim.child.kill("SIGKILL")
    const survivors = runners.filter((r) => r !== victim)
    for (const id of moved) {
      const deadline = Date.now() + (leaseSeconds + 30) * 1000
      let state: { status: number; body: any } | undefined
      while (Date.now() < deadline) {
        state = await api(survivors[0]!, "GET", `/v1/agents/${id}`).catch(() => undefined)
        if (state?.status === 200 && state.body.hostedBy !== `127.0.0.1:${victim.runnerPort}`) break
        await new Promise((resolve) => setTimeout(resolve, 250))
      }
      // Adopted: the same container, no restart.
      expect(state?.body, id).toMatchObject({ agentId: id, state: "running", sandboxId: before.get(id)!.sandboxId, restartCount: 0 })
      const response = await fetch(`${survivors[1]!.url}/v1/agents/${id}/execute`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ input: "still here" }) })
      expect(await response.text()).toContain("still here")
    }
    // One container per agent, each the sandbox of a hosted agent.
    const live = (await containers()).map((c) => c.Id).sort()
    expect(live).toEqual(ids.map((id) => before.get(id)!.sandboxId).sort())
  }, 300_000)
})
