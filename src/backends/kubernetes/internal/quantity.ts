// Kubernetes resource quantities ("250m", "123456n", "64Mi", "1G") as numbers, for metrics.k8s.io usage.

const suffixes: Readonly<Record<string, number>> = {
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
  Ki: 1024,
  Mi: 1024 ** 2,
  Gi: 1024 ** 3,
  Ti: 1024 ** 4,
  Pi: 1024 ** 5,
  Ei: 1024 ** 6
}

/** The value of a quantity, or undefined when it is not one. */
export const parseQuantity = (quantity: string): number | undefined => {
  const match = /^([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)(n|u|m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$/.exec(quantity.trim())
  if (match === null) return undefined
  return Number(match[1]) * (suffixes[match[2] ?? ""] ?? 1)
}
