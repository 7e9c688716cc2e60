// Writing a line to a sandbox's stdin FIFO whole, whatever its size. The FIFO is opened without
// blocking (a program that is gone is ENXIO at once, not a hang), so a write larger than the pipe's
// buffer (64 KiB on Linux) is taken in part: the rest is written as the program reads, up to a
// bound. Lines of one sandbox are written one after another, so two are never interleaved.
import { closeSync, constants, openSync, writeSync } from "node:fs"
import * as Effect from "effect/Effect"

/** How a write ended badly, in words for the caller's message. */
export class FifoWriteFailed extends Error {}

/** One writer per FIFO path: `write` resolves when the whole line is in the pipe. */
export const makeFifoWriter = (options: { readonly stallMs?: number } = {}) => {
  const stallMs = options.stallMs ?? 10_000
  const tails = new Map<string, Promise<void>>()

  const writeWhole = async (path: string, data: Buffer): Promise<void> => {
    let fd: number
    try {
      fd = openSync(path, constants.O_WRONLY | constants.O_NONBLOCK)
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENXIO") throw new FifoWriteFailed("its main program has exited")
      throw error
    }
    try {
      let offset = 0
      let stalledSince: number | undefined
      while (offset < data.length) {
        let written = 0
        try {
          written = writeSync(fd, data, offset)
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code === "EPIPE") throw new FifoWriteFailed("its main program has exited")
          if ((error as NodeJS.ErrnoException).code !== "EAGAIN") throw error
        }
        offset += written
        if (written > 0) stalledSince = undefined
        else {
          stalledSince ??= Date.now()
          if (Date.now() - stalledSince > stallMs) {
            throw new FifoWriteFailed(`its stdin is full: the program read none of the last ${data.length - offset} bytes for ${Math.round(stallMs / 1000)} s`)
          }
          await new Promise((r) => setTimeout(r, 5))
        }
      }
    } finally {
      closeSync(fd)
    }
  }

  /** Writes `line` and a newline to the FIFO at `path`, after the lines written to it before. */
  const write = (path: string, line: string): Effect.Effect<void, Error> =>
    Effect.tryPromise({
      try: () => {
        const previous = tails.get(path) ?? Promise.resolve()
        const next = previous.catch(() => undefined).then(() => writeWhole(path, Buffer.from(`${line}\n`, "utf8")))
        const tail = next.catch(() => undefined)
        tails.set(path, tail)
        void tail.then(() => tails.get(path) === tail && tails.delete(path))
        return next
      },
      catch: (error) => (error instanceof Error ? error : new Error(String(error)))
    })

  return { write }
}
