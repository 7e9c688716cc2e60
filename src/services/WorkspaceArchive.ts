/**
 * The workspace archive format every backend exchanges: a POSIX tar (ustar, with PAX `path`
 * records for long names), uncompressed. `exportWorkspace` returns one, `importWorkspace` takes one.
 *
 * A small reader and writer rather than a dependency: the in-memory backend keeps its workspace in
 * a Map, and the process backend reads and writes real directories, so both need the bytes only.
 */

/** One entry of a workspace archive: a regular file or a directory. Paths are relative, `/`-separated. */
export interface WorkspaceEntry {
  readonly path: string
  readonly type: "file" | "directory"
  /** File contents; empty for directories. */
  readonly data: Uint8Array
  /** Permission bits, e.g. 0o644; defaults to 0o644 for files and 0o755 for directories. */
  readonly mode?: number | undefined
}

/** Thrown by {@link readTar} for bytes that are not a valid tar archive; the message says what is wrong. */
export class ArchiveInvalid extends Error {
  override readonly name = "ArchiveInvalid"
}

const BLOCK = 512
const encoder = new TextEncoder()
const decoder = new TextDecoder()

/**
 * Normalises an entry path to a safe relative path, or throws {@link ArchiveInvalid}.
 * Why: an archive comes from a checkpoint or another sandbox; `..` or an absolute path would
 * write outside the workspace it is imported into.
 */
export const safeRelativePath = (path: string): string => {
  const parts = path.split("/").filter((p) => p !== "" && p !== ".")
  if (path.startsWith("/") || parts.some((p) => p === "..") || path.includes("\0")) {
    throw new ArchiveInvalid(`archive entry "${path}" escapes the workspace (absolute path or ".."); archives must hold relative paths`)
  }
  return parts.join("/")
}

const writeString = (block: Uint8Array, offset: number, length: number, value: string) => {
  const bytes = encoder.encode(value)
  block.set(bytes.subarray(0, length), offset)
}

const writeOctal = (block: Uint8Array, offset: number, length: number, value: number) => {
  writeString(block, offset, length, value.toString(8).padStart(length - 1, "0") + "\0")
}

const header = (name: string, prefix: string, size: number, mode: number, typeflag: string): Uint8Array => {
  const block = new Uint8Array(BLOCK)
  writeString(block, 0, 100, name)
  writeOctal(block, 100, 8, mode)
  writeOctal(block, 108, 8, 0)
  writeOctal(block, 116, 8, 0)
  writeOctal(block, 124, 12, size)
  writeOctal(block, 136, 12, 0)
  block.fill(0x20, 148, 156)
  writeString(block, 156, 1, typeflag)
  writeString(block, 257, 6, "ustar\0")
  writeString(block, 263, 2, "00")
  writeString(block, 345, 155, prefix)
  let sum = 0
  for (const byte of block) sum += byte
  writeString(block, 148, 8, sum.toString(8).padStart(6, "0") + "\0 ")
  return block
}

const padded = (data: Uint8Array): Array<Uint8Array> => {
  const rest = data.length % BLOCK
  return rest === 0 ? [data] : [data, new Uint8Array(BLOCK - rest)]
}

/** Splits a path into ustar's prefix and name fields, or undefined when it needs a PAX record. */
const splitName = (path: string): [string, string] | undefined => {
  if (encoder.encode(path).length <= 100) return ["", path]
  for (let i = path.lastIndexOf("/"); i > 0; i = path.lastIndexOf("/", i - 1)) {
    const prefix = path.slice(0, i)
    const name = path.slice(i + 1)
    if (encoder.encode(prefix).length <= 155 && encoder.encode(name).length <= 100 && name !== "") return [prefix, name]
  }
  return undefined
}

const paxRecord = (key: string, value: string): string => {
  const body = ` ${key}=${value}\n`
  const bodyLength = encoder.encode(body).length
  let length = bodyLength + String(bodyLength).length
  // The record length counts its own digits, which can add one more digit.
  if (String(length).length !== String(bodyLength).length) length = bodyLength + String(length).length
  return `${length}${body}`
}

/** Writes entries as a tar archive (ustar; PAX `path` records for names ustar cannot hold). */
export const writeTar = (entries: Iterable<WorkspaceEntry>): Uint8Array => {
  const parts: Array<Uint8Array> = []
  for (const entry of entries) {
    const relative = safeRelativePath(entry.path)
    if (relative === "") continue
    const path = entry.type === "directory" ? `${relative}/` : relative
    const mode = entry.mode ?? (entry.type === "directory" ? 0o755 : 0o644)
    const data = entry.type === "directory" ? new Uint8Array(0) : entry.data
    let split = splitName(path)
    if (split === undefined) {
      const pax = encoder.encode(paxRecord("path", path))
      parts.push(header("PaxHeader", "", pax.length, 0o644, "x"), ...padded(pax))
      split = ["", path.slice(-100)]
    }
    parts.push(header(split[1], split[0], data.length, mode & 0o7777, entry.type === "directory" ? "5" : "0"))
    if (data.length > 0) parts.push(...padded(data))
  }
  parts.push(new Uint8Array(BLOCK * 2))
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
  let offset = 0
  for (const p of parts) {
    out.set(p, offset)
    offset += p.length
  }
  return out
}

const readString = (block: Uint8Array, offset: number, length: number): string => {
  const slice = block.subarray(offset, offset + length)
  const end = slice.indexOf(0)
  return decoder.decode(end === -1 ? slice : slice.subarray(0, end))
}

const readOctal = (block: Uint8Array, offset: number, length: number, field: string): number => {
  // GNU base-256 encoding for large values: high bit of the first byte set.
  if ((block[offset]! & 0x80) !== 0) {
    let value = block[offset]! & 0x7f
    for (let i = 1; i < length; i++) value = value * 256 + block[offset + i]!
    return value
  }
  const text = readString(block, offset, length).trim()
  if (text === "") return 0
  if (!/^[0-7]+$/.test(text)) throw new ArchiveInvalid(`tar header field ${field} is not an octal number ("${text}")`)
  return parseInt(text, 8)
}

const parsePax = (data: Uint8Array): Record<string, string> => {
  const records: Record<string, string> = {}
  let offset = 0
  while (offset < data.length) {
    const space = data.indexOf(0x20, offset)
    if (space === -1) break
    const length = parseInt(decoder.decode(data.subarray(offset, space)), 10)
    if (!Number.isFinite(length) || length <= 0) throw new ArchiveInvalid("tar PAX header has a malformed record length")
    const record = decoder.decode(data.subarray(space + 1, offset + length - 1))
    const eq = record.indexOf("=")
    if (eq > 0) records[record.slice(0, eq)] = record.slice(eq + 1)
    offset += length
  }
  return records
}

/**
 * Reads a tar archive's regular files and directories; other entry types (links, devices) are
 * skipped. Throws {@link ArchiveInvalid} for a corrupt header or a path escaping the workspace.
 */
export const readTar = (archive: Uint8Array): Array<WorkspaceEntry> => {
  const entries: Array<WorkspaceEntry> = []
  let offset = 0
  let pendingPath: string | undefined
  while (offset + BLOCK <= archive.length) {
    const block = archive.subarray(offset, offset + BLOCK)
    if (block.every((b) => b === 0)) break
    const stored = readOctal(block, 148, 8, "checksum")
    let sum = 0
    for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : block[i]!
    if (sum !== stored) throw new ArchiveInvalid(`tar header at byte ${offset} has a bad checksum: the archive is corrupt or not a tar`)
    const size = readOctal(block, 124, 12, "size")
    const typeflag = String.fromCharCode(block[156]!)
    const dataStart = offset + BLOCK
    if (dataStart + size > archive.length) throw new ArchiveInvalid(`tar entry at byte ${offset} is truncated: the archive is incomplete`)
    const data = archive.slice(dataStart, dataStart + size)
    offset = dataStart + Math.ceil(size / BLOCK) * BLOCK
    if (typeflag === "x") {
      pendingPath = parsePax(data)["path"] ?? pendingPath
      continue
    }
    if (typeflag === "L") {
      pendingPath = readString(data, 0, data.length)
      continue
    }
    if (typeflag === "g") continue
    const prefix = readString(block, 345, 155)
    const name = pendingPath ?? (prefix === "" ? readString(block, 0, 100) : `${prefix}/${readString(block, 0, 100)}`)
    pendingPath = undefined
    const mode = readOctal(block, 100, 8, "mode")
    const path = safeRelativePath(name)
    if (path === "") continue
    if (typeflag === "0" || typeflag === "\0" || typeflag === "7") entries.push({ path, type: "file", data, mode })
    else if (typeflag === "5") entries.push({ path, type: "directory", data: new Uint8Array(0), mode })
  }
  return entries
}
