// The request path as the client sent it, before any URL parser resolves it: a path that is not
// canonical names one thing to a proxy or an access log and another after resolution
// (`/v1/agents/X/../Y` is Y), so it is refused instead of resolved.

/** Why a raw request target is not a canonical origin-form path, or undefined when it is one. */
export const pathProblem = (target: string): string | undefined => {
  const path = target.split(/[?#]/, 1)[0] ?? ""
  if (!path.startsWith("/")) return "the request target must be a path starting with / (no absolute URL, no *)"
  if (path.includes("\\")) return "the path contains a backslash"
  const segments = path.split("/").slice(1)
  for (const [i, raw] of segments.entries()) {
    let segment: string
    try {
      segment = decodeURIComponent(raw)
    } catch {
      return "the path has an invalid percent-encoding"
    }
    if (segment === "." || segment === "..") return `the path has a dot segment (${JSON.stringify(raw)}); send the path it stands for`
    if (segment.includes("/") || segment.includes("\\")) return `the path has an encoded slash in ${JSON.stringify(raw.slice(0, 100))}`
    if (segment === "" && i < segments.length - 1) return "the path has an empty segment (//)"
    if (/[\u0000-\u001f\u007f]/.test(segment)) return "the path has a control character"
  }
  return undefined
}
