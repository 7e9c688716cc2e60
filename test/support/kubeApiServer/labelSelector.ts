// Label selectors as the API server parses them: `k=v`, `k==v`, `k!=v`, `k`, `!k`, `k in (a,b)`, `k notin (a,b)`.

/** A parsed selector: a predicate over an object's labels. */
export type LabelSelector = (labels: Readonly<Record<string, string>>) => boolean

/** Splits on commas outside parentheses. */
const requirements = (selector: string): Array<string> => {
  const parts: Array<string> = []
  let depth = 0
  let current = ""
  for (const ch of selector) {
    if (ch === "(") depth += 1
    if (ch === ")") depth -= 1
    if (ch === "," && depth === 0) {
      parts.push(current)
      current = ""
    } else current += ch
  }
  parts.push(current)
  return parts.map((p) => p.trim()).filter((p) => p !== "")
}

/** Parses a selector, or throws with the reason (the server answers 400). */
export const parseLabelSelector = (selector: string | undefined): LabelSelector => {
  if (selector === undefined || selector.trim() === "") return () => true
  const checks = requirements(selector).map((req): LabelSelector => {
    let m = /^([^\s!=]+)\s+(in|notin)\s+\(([^)]*)\)$/.exec(req)
    if (m !== null) {
      const [, key, op, list] = m
      const values = new Set(list!.split(",").map((v) => v.trim()))
      return op === "in" ? (l) => l[key!] !== undefined && values.has(l[key!]!) : (l) => l[key!] === undefined || !values.has(l[key!]!)
    }
    m = /^([^\s!=]+)\s*(==|=|!=)\s*([^\s,]*)$/.exec(req)
    if (m !== null) {
      const [, key, op, value] = m
      return op === "!=" ? (l) => l[key!] !== value : (l) => l[key!] === value
    }
    m = /^!([^\s!=]+)$/.exec(req)
    if (m !== null) return (l) => l[m![1]!] === undefined
    m = /^([^\s!=()]+)$/.exec(req)
    if (m !== null) return (l) => l[m![1]!] !== undefined
    throw new Error(`unable to parse requirement: "${req}"`)
  })
  return (labels) => checks.every((check) => check(labels))
}
