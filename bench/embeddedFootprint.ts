// Resident memory of a default-configured runtime in a process of its own (bench/embeddedFootprintChild.mjs):
// after createRuntime, and with N idle agents once quiet. `npm run bench` builds the package first.
import { spawn } from "node:child_process"

/** Runs the measurement in a fresh Node process and returns its JSON. */
export const benchEmbeddedFootprint = (agents: number, settleSeconds = 25): Promise<Record<string, number | string>> =>
  new Promise((resolve, reject) => {
    const child = new URL("./embeddedFootprintChild.mjs", import.meta.url).pathname
    const proc = spawn(process.execPath, ["--expose-gc", child, String(agents), String(settleSeconds)], { stdio: ["ignore", "pipe", "inherit"] })
    let out = ""
    proc.stdout.on("data", (d: Buffer) => (out += d.toString()))
    proc.on("exit", (code) => {
      const line = out.trim().split("\n").find((l) => l.startsWith("{"))
      if (code === 0 && line !== undefined) resolve(JSON.parse(line) as Record<string, number | string>)
      else reject(new Error(`the footprint bench exited with ${code}: ${out.slice(-500)}`))
    })
  })

if (import.meta.url === `file://${process.argv[1]}`) console.log(JSON.stringify(await benchEmbeddedFootprint(Number(process.env.L02_BENCH_IDLE_AGENTS ?? 1000)), null, 2))
