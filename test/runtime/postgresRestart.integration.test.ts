// The runtime on PostgreSQL while the server restarts: operations fail with E2060 while it is down,
// then the runtime reconnects and converges; nothing acknowledged is lost. Restarts the local cluster,
// so it runs only when L02_TEST_PG_RESTART=1 (CI sets it) besides L02_TEST_POSTGRES_URL.
import { execFileSync } from "node:child_process"
import { randomUUID } from "node:crypto"
import { readdirSync } from "node:fs"
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { describe, expect, it } from "vitest"
import { createRuntime } from "../../src/runtime/createRuntime.ts"

const baseUrl = process.env.L02_TEST_POSTGRES_URL ?? ""
const enabled = baseUrl !== "" && process.env.L02_TEST_PG_RESTART === "1"

const psql = (sql: string) => execFileSync("psql", [baseUrl, "-v", "ON_ERROR_STOP=1", "-c", sql], { stdio: "pipe" })
const restartPostgres = () => {
  const version = readdirSync("/etc/postgresql")[0]!
  execFileSync("pg_ctlcluster", ["--skip-systemctl-redirect", version, "main", "restart"], { stdio: "pipe" })
}
const retry = async <A>(f: () => Promise<A>, ms = 60_000): Promise<{ value: A; failures: Array<unknown> }> => {
  const failures: Array<unknown> = []
  const deadline = Date.now() + ms
  for (;;) {
    try {
      return { value: await f(), failures }
    } catch (error) {
      failures.push(error)
      if (Date.now() > deadline) throw error
      await new Promise((r) => setTimeout(r, 250))
    }
  }
}

describe.skipIf(!enabled)("runtime on PostgreSQL across a server restart", () => {
  it("reconnects and converges; acknowledged state survives", async () => {
    const schema = `l02_restart_${randomUUID().replaceAll("-", "").slice(0, 12)}`
    psql(`CREATE SCHEMA ${schema}`)
    const url = new URL(baseUrl)
    url.searchParams.set("options", `-c search_path=${schema}`)
    const dataDir = await mkdtemp(join(tmpdir(), "l02-pg-"))
    const options = { backend: "process" as const, dataDir, env: {}, config: { store: { url: url.toString() }, runtime: { runtime_id: schema } } }
    let runtime = await createRuntime(options)
    try {
      const a = await runtime.spawn({ name: "before-restart", trustLevel: "TRUSTED" })
      restartPostgres()
      const b = await retry(() => runtime.spawn({ name: "after-restart", trustLevel: "TRUSTED" }))
      for (const failure of b.failures) expect(failure).toMatchObject({ code: expect.stringMatching(/^E20(60|22)$/) })
      await retry(() => runtime.suspend(a.agentId))
      await runtime.shutdown()
      runtime = await createRuntime(options)
      expect((await runtime.getState(a.agentId)).state).toBe("suspended")
      expect((await runtime.getState(b.value.agentId)).state).toBe("running")
      await runtime.terminate(a.agentId, { force: true })
      await runtime.terminate(b.value.agentId, { force: true })
    } finally {
      await runtime.shutdown()
      psql(`DROP SCHEMA ${schema} CASCADE`)
      await rm(dataDir, { recursive: true, force: true })
    }
  }, 180_000)
})
