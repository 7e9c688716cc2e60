/**
 * Kubernetes resource quantities for CPU and memory, parsed strictly.
 *
 * CPU: "2", "0.5", "500m" (millicores). Memory: plain bytes ("1048576"), decimal suffixes
 * (k, M, G, T, P, E) or binary suffixes (Ki, Mi, Gi, Ti, Pi, Ei). Negative values, unknown suffixes
 * ("2Zi") and non-numbers ("abc") are rejected, as the Kubernetes API would reject them.
 */

const cpuPattern = /^(\d+(?:\.\d+)?|\.\d+)(m?)$/
const memoryPattern = /^(\d+(?:\.\d+)?|\.\d+)(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$/

const memoryFactor: Record<string, number> = {
  "": 1,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  E: 1e18,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
  Ei: 2 ** 60
}

/** Parses a CPU quantity into millicores, or returns `undefined` when it is malformed or zero. */
export const parseCpuMillis = (quantity: string): number | undefined => {
  const match = cpuPattern.exec(quantity.trim())
  if (match === null) return undefined
  const value = Number(match[1])
  const millis = match[2] === "m" ? value : value * 1000
  if (!Number.isFinite(millis) || millis < 1 || !Number.isInteger(Math.round(millis * 1000) / 1000)) return undefined
  return Math.ceil(millis)
}

/** Parses a memory quantity into bytes, or returns `undefined` when it is malformed or zero. */
export const parseMemoryBytes = (quantity: string): number | undefined => {
  const match = memoryPattern.exec(quantity.trim())
  if (match === null) return undefined
  const bytes = Number(match[1]) * (memoryFactor[match[2] ?? ""] ?? Number.NaN)
  if (!Number.isFinite(bytes) || bytes < 1 || bytes > Number.MAX_SAFE_INTEGER) return undefined
  return Math.ceil(bytes)
}

/** Formats millicores back into the shortest Kubernetes CPU quantity. */
export const formatCpuMillis = (millis: number): string => (millis % 1000 === 0 ? String(millis / 1000) : `${millis}m`)

/** Formats bytes into the largest exact binary-suffixed Kubernetes memory quantity. */
export const formatMemoryBytes = (bytes: number): string => {
  for (const suffix of ["Ei", "Pi", "Ti", "Gi", "Mi", "Ki"]) {
    const factor = memoryFactor[suffix]!
    if (bytes >= factor && bytes % factor === 0) return `${bytes / factor}${suffix}`
  }
  return String(bytes)
}
