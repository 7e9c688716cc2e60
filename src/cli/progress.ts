/**
 * Progress on long CLI operations (spawn, suspend with a checkpoint, resume, image build, fleet scale):
 * a spinner with the elapsed time on stderr, only when stderr is a terminal and the output is not JSON,
 * so scripts and pipes see exactly what they saw before.
 */

const frames = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"]

/** One frame of the indicator: spinner, what is being done, seconds elapsed. */
export const progressLine = (label: string, elapsedMs: number, tick: number): string =>
  `${frames[tick % frames.length]} ${label} ${(elapsedMs / 1000).toFixed(1)}s`

/** Where the indicator writes: a terminal stream (process.stderr), or a test's stand-in. */
export interface ProgressSink {
  readonly isTTY?: boolean | undefined
  write(text: string): unknown
}

/**
 * Runs `work`, drawing the indicator on `sink` every `intervalMs` while it runs (and erasing it after),
 * when `enabled` and the sink is a terminal; otherwise runs it untouched.
 */
export const withProgress = async <A>(
  label: string,
  work: () => Promise<A>,
  options: { readonly enabled: boolean; readonly sink?: ProgressSink; readonly intervalMs?: number; readonly now?: () => number }
): Promise<A> => {
  const sink = options.sink ?? process.stderr
  if (!options.enabled || sink.isTTY !== true) return work()
  const now = options.now ?? Date.now
  const started = now()
  let tick = 0
  let width = 0
  const draw = () => {
    const line = progressLine(label, now() - started, tick++)
    width = Math.max(width, line.length)
    sink.write(`\r${line.padEnd(width)}`)
  }
  draw()
  const timer = setInterval(draw, options.intervalMs ?? 100)
  try {
    return await work()
  } finally {
    clearInterval(timer)
    sink.write(`\r${" ".repeat(width)}\r`)
  }
}
