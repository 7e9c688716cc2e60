/**
 * The template language of workflow graphs: `{{ input.topic }}`, `{{ nodes.plan.output.text }}`,
 * `{{ failure.message }}` (in compensations). A string that is exactly one template becomes the value
 * it names (any JSON); templates inside a longer string are replaced by the value's text.
 */

/** What a workflow's templates and conditions read. */
export interface TemplateScope {
  readonly input: unknown
  /** Each finished node's record: `{ output, state }`. */
  readonly nodes: Readonly<Record<string, { readonly output?: unknown; readonly state: string }>>
  readonly failure?: unknown
}

/** One `{{ ... }}` reference: its root and the node it reads, when it reads one. */
export interface TemplateReference {
  readonly expression: string
  readonly root: "input" | "nodes" | "failure" | "invalid"
  readonly node?: string | undefined
}

// One quantifier each, so matching is linear in the text (a long "{{   ..." cannot stall the process).
const templatePattern = /\{\{([^{}]*)\}\}/g
const whole = /^\{\{([^{}]*)\}\}$/
const segment = /^[A-Za-z_][A-Za-z0-9_-]*$|^\d+$/

const parse = (expression: string): TemplateReference => {
  const parts = expression.split(".")
  if (!parts.every((p) => segment.test(p))) return { expression, root: "invalid" }
  const [root, second] = parts
  if (root === "input" || root === "failure") return { expression, root }
  if (root === "nodes" && second !== undefined) return { expression, root, node: second }
  return { expression, root: "invalid" }
}

const strings = (value: unknown, out: Array<string>): Array<string> => {
  if (typeof value === "string") out.push(value)
  else if (Array.isArray(value)) for (const v of value) strings(v, out)
  else if (typeof value === "object" && value !== null) for (const v of Object.values(value)) strings(v, out)
  return out
}

/** Every reference in the strings of `value`. */
export const referencesOf = (value: unknown): ReadonlyArray<TemplateReference> =>
  strings(value, []).flatMap((s) => [...s.matchAll(templatePattern)].map((m) => parse((m[1] ?? "").trim())))

/** The reference a condition path names (`nodes.review.output.data.ok`, `input.flag`). */
export const pathReference = (path: string): TemplateReference => parse(path.trim())

/** Reads a dotted path from the scope; undefined when any step is missing. */
export const readPath = (scope: TemplateScope, path: string): unknown => {
  let current: unknown = scope
  for (const part of path.split(".")) {
    if (typeof current !== "object" || current === null) return undefined
    current = (current as Record<string, unknown>)[part]
  }
  return current
}

const asText = (value: unknown): string =>
  value === undefined ? "" : typeof value === "string" ? value : JSON.stringify(value)

const renderString = (s: string, scope: TemplateScope): unknown => {
  const single = whole.exec(s)
  if (single !== null) return readPath(scope, (single[1] ?? "").trim())
  return s.replace(templatePattern, (_, expression: string) => asText(readPath(scope, expression.trim())))
}

/** `value` with every template replaced from the scope. */
export const render = (value: unknown, scope: TemplateScope): unknown => {
  if (typeof value === "string") return renderString(value, scope)
  if (Array.isArray(value)) return value.map((v) => render(v, scope))
  if (typeof value === "object" && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, render(v, scope)]))
  }
  return value
}

/** A value as the text an agent step sends (strings as they are, anything else as JSON). */
export const inputText = (value: unknown): string => asText(value)
