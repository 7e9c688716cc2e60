/**
 * A range of host uids for process sandboxes (`process.uid_range`): each sandbox runs as a uid of its
 * own from it, so per-user limits and permissions separate sandboxes from each other and from
 * every other program on the host.
 */

/** An inclusive range of uids. */
export interface UidRange {
  readonly first: number
  readonly last: number
}

/** Parses `"800000-899999"`; undefined for an empty string (no range: sandboxes share `runAsUser`). */
export const parseUidRange = (text: string): UidRange | undefined => {
  if (text.trim() === "") return undefined
  const match = /^\s*(\d+)\s*-\s*(\d+)\s*$/.exec(text)
  if (match === null) throw new Error(`"${text}" is not a uid range: write FIRST-LAST, e.g. 800000-899999`)
  const first = Number(match[1])
  const last = Number(match[2])
  if (first < 1000 || last < first || last > 2_147_483_646) {
    throw new Error(`uid range "${text}" must lie within 1000-2147483646, first <= last (system uids and 65534 are not for sandboxes)`)
  }
  if (first <= 65534 && 65534 <= last) throw new Error(`uid range "${text}" includes 65534 (nobody), which other programs on the host share`)
  return { first, last }
}
