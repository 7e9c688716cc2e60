// A shell in a pseudo-terminal (util-linux `script`) for the CLI's terminal tests, and how its screen reads.
import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process"

/** What a terminal shows for `raw`: each line as its last carriage return left it, escape sequences gone. */
export const screenOf = (raw: string): Array<string> =>
  raw
    .replace(/\x1b\[[0-9;?]*[ -/]*[@-~]/g, "")
    .replace(/\r\n/g, "\n")
    .split("\n")
    .map((line) => {
      let shown = ""
      for (const part of line.split("\r")) shown = part + shown.slice(part.length)
      return shown.trimEnd()
    })

/** An interactive `sh` on a pseudo-terminal with `prompt`; `type` sends a line and waits for the next prompt. */
export const openTerminal = (options: { readonly env: Readonly<Record<string, string>>; readonly prompt: string }) => {
  const shell: ChildProcessWithoutNullStreams = spawn("script", ["-qfec", "sh -i", "/dev/null"], { env: { ...options.env, PS1: options.prompt, TERM: "xterm" } })
  let output = ""
  shell.stdout.on("data", (d: Buffer) => (output += d.toString("utf8")))
  shell.stderr.on("data", (d: Buffer) => (output += d.toString("utf8")))
  const prompted = (from: number) => output.slice(from).includes(`\n${options.prompt}`) || output.slice(from).includes(`\r${options.prompt}`)
  /** Waits until the screen after `from` passes `check`. */
  const waitFor = async (from: number, check: (screen: Array<string>) => boolean, what: string, timeoutMs = 60_000) => {
    const deadline = Date.now() + timeoutMs
    while (!check(screenOf(output.slice(from)))) {
      if (Date.now() > deadline) throw new Error(`no ${what}; the screen shows:\n${screenOf(output.slice(from)).join("\n")}`)
      await new Promise((r) => setTimeout(r, 50))
    }
    return screenOf(output.slice(from))
  }
  return {
    output: () => output,
    /** Writes raw input (e.g. "\x03", Ctrl-C). */
    write: (text: string) => shell.stdin.write(text),
    waitFor,
    /** Waits for the first prompt. */
    ready: () => waitFor(0, () => output.includes(options.prompt), "first prompt", 10_000),
    /** Types a line and waits for the next prompt; the screen lines between (the command's own output). */
    type: async (line: string, timeoutMs = 60_000): Promise<Array<string>> => {
      const from = output.length
      shell.stdin.write(`${line}\n`)
      await waitFor(from, () => prompted(from), `prompt after ${JSON.stringify(line)}`, timeoutMs)
      // The echo of what was typed first, the next prompt last.
      return screenOf(output.slice(from)).slice(1, -1).filter((l) => l !== "")
    },
    prompted,
    close: () => shell.kill("SIGKILL")
  }
}
