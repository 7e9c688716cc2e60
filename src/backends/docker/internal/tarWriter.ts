// A minimal ustar writer for root filesystems: regular files, directories and symlinks with their
// own mode and owner. The workspace archive writer (src/services/WorkspaceArchive.ts) always writes
// uid 0 and no links, which an image's root filesystem needs.

/** One entry of an archive. Paths are relative, `/`-separated; longer than 100 bytes they get a PAX record. */
export interface TarEntry {
  readonly path: string
  readonly type: "file" | "directory" | "symlink"
  readonly data?: Uint8Array | undefined
  readonly linkTarget?: string | undefined
  readonly mode: number
  readonly uid?: number | undefined
  readonly gid?: number | undefined
}

const BLOCK = 512
const encoder = new TextEncoder()

const put = (block: Uint8Array, offset: number, length: number, value: string) => {
  const bytes = encoder.encode(value)
  if (bytes.length > length) throw new Error(`tar field too long (${bytes.length} > ${length} bytes): ${value}`)
  block.set(bytes, offset)
}

const octal = (block: Uint8Array, offset: number, length: number, value: number) =>
  put(block, offset, length, value.toString(8).padStart(length - 1, "0") + "\0")

const typeflags = { file: "0", directory: "5", symlink: "2" } as const

const headerOf = (entry: TarEntry, size: number, typeflag: string = typeflags[entry.type]): Uint8Array => {
  const block = new Uint8Array(BLOCK)
  const name = entry.type === "directory" && !entry.path.endsWith("/") ? `${entry.path}/` : entry.path
  // A name too long for the field is carried by the PAX record written before this header.
  put(block, 0, 100, encoder.encode(name).length > 100 ? "././@PaxHeader" : name)
  octal(block, 100, 8, entry.mode)
  octal(block, 108, 8, entry.uid ?? 0)
  octal(block, 116, 8, entry.gid ?? 0)
  octal(block, 124, 12, size)
  octal(block, 136, 12, 0)
  block.fill(0x20, 148, 156)
  put(block, 156, 1, typeflag)
  if (entry.linkTarget !== undefined) put(block, 157, 100, entry.linkTarget)
  put(block, 257, 6, "ustar\0")
  put(block, 263, 2, "00")
  let sum = 0
  for (const byte of block) sum += byte
  put(block, 148, 8, sum.toString(8).padStart(6, "0") + "\0 ")
  return block
}

/** A PAX extended header record `"<length> <key>=<value>\n"`, whose length counts itself. */
const paxRecord = (key: string, value: string): Uint8Array => {
  const body = ` ${key}=${value}\n`
  const bodyLength = encoder.encode(body).length
  let length = bodyLength + 1
  while (String(length).length + bodyLength !== length) length += 1
  return encoder.encode(`${length}${body}`)
}

const padded = (data: Uint8Array): Array<Uint8Array> => {
  const rest = data.length % BLOCK
  return rest === 0 ? [data] : [data, new Uint8Array(BLOCK - rest)]
}

/** Writes the entries as one uncompressed tar archive. */
export const writeRootfsTar = (entries: ReadonlyArray<TarEntry>): Uint8Array => {
  const parts: Array<Uint8Array> = []
  for (const entry of entries) {
    const data = entry.type === "file" ? (entry.data ?? new Uint8Array()) : new Uint8Array()
    if (encoder.encode(entry.path).length > 100) {
      const record = paxRecord("path", entry.path)
      parts.push(headerOf({ path: "././@PaxHeader", type: "file", mode: 0o644 }, record.length, "x"), ...padded(record))
    }
    parts.push(headerOf(entry, data.length))
    if (data.length > 0) {
      parts.push(data)
      const rest = data.length % BLOCK
      if (rest !== 0) parts.push(new Uint8Array(BLOCK - rest))
    }
  }
  parts.push(new Uint8Array(BLOCK * 2))
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
  let offset = 0
  for (const part of parts) {
    out.set(part, offset)
    offset += part.length
  }
  return out
}
