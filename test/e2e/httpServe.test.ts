import { spawn } from "node:child_process"
import { fileURLToPath } from "node:url"
import { describe, expect, it } from "vitest"

describe("l02 HTTP server in its own process", () => {
  it("serves, streams, and lets the process exit by itself after close", async () => {
    const child = spawn(process.execPath, [fileURLToPath(new URL("./httpServeChild.ts", import.meta.url))], { stdio: ["ignore", "pipe", "pipe"] })
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (d) => (stdout += d))
    child.stderr.on("data", (d) => (stderr += d))
    const started = Date.now()
    const code = await new Promise<number | null>((resolve) => {
      const timer = setTimeout(() => {
        child.kill("SIGKILL")
        resolve(null)
      }, 20_000)
      child.on("exit", (c) => {
        clearTimeout(timer)
        resolve(c)
      })
    })
    expect(code, `the process did not exit by itself after close; stderr: ${stderr}`).toBe(0)
    const [report, closed] = stdout.trim().split("\n")
    expect(JSON.parse(report!)).toMatchObject({ url: expect.stringMatching(/^http:\/\/127\.0\.0\.1:\d+$/), spawned: true, done: true, streamed: true })
    expect(closed).toBe("closed")
    expect(stdout + stderr).not.toContain("child-secret")
    expect(Date.now() - started).toBeLessThan(20_000)
  })
})
