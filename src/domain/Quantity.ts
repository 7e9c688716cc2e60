/**
 * Kubernetes resource quantities for CPU and memory, parsed strictly.
 *
 * CPU: "2", "0.5", "500m" (millicores). Memory: plain bytes ("1048576"), decimal suffixes
 * (k, M, G, T, P, E) or binary suffixes (Ki, Mi, Gi, Ti, Pi, Ei). Negative values, unknown suffixes
 * ("2Zi") and non-numbers ("abc") are rejected, as the Kubernetes API would reject them.
 */

/** Every quantity: a number (sign and exponent allowed, as the API reports them) and an optional suffix. */
const quantityPattern = /^([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)(n|u|m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$/
/** A number as a request may give it: unsigned, no exponent. */
const plainNumber = /^(\d+(?:\.\d+)?|\.\d+)$/

const factors: Readonly<Record<string, number>> = {
  n: 1e-9,
  u: 1e-6,
  m: 1e-3,
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

const split = (quantity: string): { readonly number: string; readonly suffix: string } | undefined => {
  const match = quantityPattern.exec(quantity.trim())
  return match === null ? undefined : { number: match[1]!, suffix: match[2] ?? "" }
}

/** The value of any quantity the Kubernetes API may report ("250m", "123456n", "64Mi", "1G"), or undefined. */
export const parseQuantity = (quantity: string): number | undefined => {
  const parts = split(quantity)
  return parts === undefined ? undefined : Number(parts.number) * factors[parts.suffix]!
}

/** Parses a CPU quantity into millicores, or returns `undefined` when it is malformed or zero. */
export const parseCpuMillis = (quantity: string): number | undefined => {
  const parts = split(quantity)
  if (parts === undefined || !plainNumber.test(parts.number) || (parts.suffix !== "" && parts.suffix !== "m")) return undefined
  const value = Number(parts.number)
  const millis = parts.suffix === "m" ? value : value * 1000
  if (!Number.isFinite(millis) || millis < 1 || !Number.isInteger(Math.round(millis * 1000) / 1000)) return undefined
  return Math.ceil(millis)
}

/** Parses a memory quantity into bytes, or returns `undefined` when it is malformed or zero. */
export const parseMemoryBytes = (quantity: string): number | undefined => {
  const parts = split(quantity)
  if (parts === undefined || !plainNumber.test(parts.number) || ["n", "u", "m"].includes(parts.suffix)) return undefined
  const bytes = Number(parts.number) * factors[parts.suffix]!
  if (!Number.isFinite(bytes) || bytes < 1 || bytes > Number.MAX_SAFE_INTEGER) return undefined
  return Math.ceil(bytes)
}

/** Formats millicores back into the shortest Kubernetes CPU quantity. */
export const formatCpuMillis = (millis: number): string => (millis % 1000 === 0 ? String(millis / 1000) : `${millis}m`)

/** Formats bytes into the largest exact binary-suffixed Kubernetes memory quantity. */
export const formatMemoryBytes = (bytes: number): string => {
  for (const suffix of ["Ei", "Pi", "Ti", "Gi", "Mi", "Ki"]) {
    const factor = factors[suffix]!
    if (bytes >= factor && bytes % factor === 0) return `${bytes / factor}${suffix}`
  }
  return String(bytes)
}
