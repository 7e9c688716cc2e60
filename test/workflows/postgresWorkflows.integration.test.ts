// Workflows on PostgreSQL: the engine keeps its state in the store's database (a schema of its own
// here), so a run survives kill -9 of its supervisor there as on the embedded store.
import { execFileSync } from "node:child_process"
import { randomUUID } from "node:crypto"
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterEach, describe, expect, it } from "vitest"
import { type CrashScene, cleanUpScene, killDuringSlowNodeThenResume } from "./crashSupport.ts"

const baseUrl = process.env.L02_TEST_POSTGRES_URL ?? ""
const psql = (sql: string) => execFileSync("psql", [baseUrl, "-v", "ON_ERROR_STOP=1", "-c", sql], { stdio: "pipe" })

const scene: CrashScene = {}
let dir: string | undefined
let schema: string | undefined
afterEach(async () => {
  await cleanUpScene(scene)
  if (dir !== undefined) await rm(dir, { recursive: true, force: true })
  if (schema !== undefined) psql(`DROP SCHEMA ${schema} CASCADE`)
})

describe.skipIf(baseUrl === "")("workflows on PostgreSQL", () => {
  it("resume after kill -9 during a node: the engine's tables in the store's schema, nothing run twice", async () => {
    schema = `l02_wf_${randomUUID().replaceAll("-", "").slice(0, 12)}`
    psql(`CREATE SCHEMA ${schema}`)
    const url = new URL(baseUrl)
    url.searchParams.set("options", `-c search_path=${schema}`)
    dir = await mkdtemp(join(tmpdir(), "l02-wf-pg-"))
    await killDuringSlowNodeThenResume(scene, dir, url.toString())
    const tables = execFileSync("psql", [baseUrl, "-At", "-c", `SELECT table_name FROM information_schema.tables WHERE table_schema = '${schema}' ORDER BY 1`], { encoding: "utf8" })
    expect(tables).toContain("workflow_runs")
    expect(tables).toContain("cluster_messages")
  }, 120_000)
})
