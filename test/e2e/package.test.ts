// The package as a user installs it: `npm pack` (which builds dist/), unpacked into a project's
// node_modules beside its dependencies, then imported by name and run through its `l02` bin. Files
// the runtime reads at run time (the default configuration, the process backend's agent) must ship
// and resolve from the compiled build, not only from the TypeScript sources.
import { execFile } from "node:child_process"
import { chmod, mkdir, mkdtemp, readdir, rm, symlink, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { promisify } from "node:util"
import { afterAll, beforeAll, describe, expect, it } from "vitest"

const run = promisify(execFile)
const root = new URL("../..", import.meta.url).pathname
let project: string

describe("the installed package", () => {
  beforeAll(async () => {
    project = await mkdtemp(join(tmpdir(), "l02-package-"))
    // Process-backend agents run as an unprivileged user, which must be able to read the installed agent program.
    await chmod(project, 0o755)
    const { stdout } = await run("npm", ["pack", "--json", "--pack-destination", project], { cwd: root, timeout: 120_000 })
    const { filename } = (JSON.parse(stdout) as Array<{ filename: string }>)[0]!
    const installed = join(project, "node_modules", "l02-agent-runtime")
    await mkdir(installed, { recursive: true })
    await run("tar", ["-xzf", join(project, filename), "-C", installed, "--strip-components=1"])
    // The package's dependencies, as npm would have installed them beside it.
    for (const name of await readdir(join(root, "node_modules"))) {
      if (name === ".bin" || name.startsWith(".")) continue
      await symlink(join(root, "node_modules", name), join(project, "node_modules", name))
    }
  }, 180_000)

  afterAll(async () => {
    await rm(project, { recursive: true, force: true })
  })

  it("is imported by name and runs an agent on the process backend from the compiled build", async () => {
    const script = join(project, "embed.mjs")
    await writeFile(
      script,
      `import { createRuntime, loadConfigSync } from "l02-agent-runtime"
const config = loadConfigSync({ env: {} })
const runtime = await createRuntime({ backend: "process", dataDir: ${JSON.stringify(join(project, "data"))}, env: {}, config: { store: { pglite: "memory" } } })
const { agentId } = await runtime.spawn({ name: "packaged", trustLevel: "TRUSTED" })
const events = []
for await (const event of runtime.execute(agentId, { question: "from the package" })) events.push(event)
await runtime.terminate(agentId)
await runtime.shutdown()
console.log(JSON.stringify({ backend: config.runtime.backend, events }))
`
    )
    const { stdout } = await run(process.execPath, [script], { cwd: project, timeout: 60_000 })
    const result = JSON.parse(stdout.trim().split("\n").at(-1) ?? "{}") as { backend: string; events: Array<{ type: string; data?: unknown }> }
    expect(result.backend).toBe("process")
    expect(result.events.map((e) => e.type)).toEqual(["output", "done"])
    expect(result.events[0]?.data).toMatchObject({ type: "output", text: `echo: {"question":"from the package"}` })
  })

  it("installs an l02 command that reads its packaged default configuration", async () => {
    const bin = join(project, "node_modules", "l02-agent-runtime", "bin", "l02.js")
    const { stdout, stderr } = await run(process.execPath, [bin, "config", "--json"], { cwd: project, timeout: 60_000 })
    expect(JSON.parse(stdout)).toMatchObject({ runtime: { backend: "process" }, store: { pglite: expect.any(String) }, process: { uid_range: "800000-899999" } })
    // What the process backend enforces here, on stderr: a uid of its own per sandbox when root.
    expect(stderr).toContain("in force on this host (process backend)")
    expect(stderr).toMatch(process.getuid?.() === 0 ? /user: a uid of its own per sandbox from 800000-899999/ : /user: the host user/)
  })
})
