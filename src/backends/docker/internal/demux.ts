// Docker's multiplexed stream format (attach and exec without a TTY): frames of an 8-byte header
// [stream, 0, 0, 0, size as uint32 big-endian] followed by `size` bytes. Stream 1 is stdout, 2 stderr.

/** Which output a frame belongs to. */
export type FrameStream = "stdout" | "stderr"

/** Splits raw bytes, arriving in arbitrary chunks, into frames. */
export class Demuxer {
  private pending: Buffer = Buffer.alloc(0)
  private readonly onFrame: (stream: FrameStream, payload: Buffer) => void

  constructor(onFrame: (stream: FrameStream, payload: Buffer) => void) {
    this.onFrame = onFrame
  }

  /** Feeds the next chunk; emits every frame it completes. */
  push(chunk: Buffer): void {
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk])
    while (this.pending.length >= 8) {
      const size = this.pending.readUInt32BE(4)
      if (this.pending.length < 8 + size) return
      const kind = this.pending[0]
      const payload = this.pending.subarray(8, 8 + size)
      this.pending = this.pending.subarray(8 + size)
      // Stream 0 (stdin) is never sent back; anything but 2 is treated as stdout.
      this.onFrame(kind === 2 ? "stderr" : "stdout", payload)
    }
  }
}

/** The longest prefix of `bytes` of at most `limit` bytes that does not split a UTF-8 character. */
export const utf8Prefix = (bytes: Buffer, limit: number): Buffer => {
  if (bytes.length <= limit) return bytes
  let end = Math.max(0, limit)
  // Back off continuation bytes (10xxxxxx) so the cut lands on a character boundary.
  while (end > 0 && (bytes[end]! & 0xc0) === 0x80) end -= 1
  return bytes.subarray(0, end)
}

/** Splits decoded text into complete lines, keeping the unfinished tail per stream. */
export class LineSplitter {
  private readonly tails: Record<FrameStream, string> = { stdout: "", stderr: "" }
  private readonly decoders: Record<FrameStream, InstanceType<typeof TextDecoder>> = { stdout: new TextDecoder(), stderr: new TextDecoder() }
  private readonly onLine: (stream: FrameStream, line: string) => void

  constructor(onLine: (stream: FrameStream, line: string) => void) {
    this.onLine = onLine
  }

  /** Feeds one frame's payload. */
  push(stream: FrameStream, payload: Buffer): void {
    const lines = (this.tails[stream] + this.decoders[stream].decode(payload, { stream: true })).split("\n")
    this.tails[stream] = lines.pop()!
    for (const line of lines) this.onLine(stream, line)
  }

  /** Emits what is left of unfinished lines, at the end of the stream. */
  flush(): void {
    for (const stream of ["stdout", "stderr"] as const) {
      const rest = this.tails[stream] + this.decoders[stream].decode()
      this.tails[stream] = ""
      if (rest !== "") this.onLine(stream, rest)
    }
  }
}
