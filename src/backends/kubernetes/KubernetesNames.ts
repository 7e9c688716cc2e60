/**
 * The naming rules of the Kubernetes API, checked before any call: object names (DNS-1123), label
 * keys and values, and the derivation of a sandbox's Pod name from its agent. What the API server
 * would reject with a 422 is refused here with a coded error that says how to fix it.
 */

const dns1123Label = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/
const dns1123Subdomain = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/
const qualifiedName = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/

/** Why `name` is not a DNS-1123 label (what namespaces and Pod names used as hostnames must be), or undefined when it is one. */
export const dns1123LabelProblem = (name: string): string | undefined => {
  if (name.length === 0) return "must not be empty"
  if (name.length > 63) return `must be at most 63 characters (has ${name.length})`
  if (!dns1123Label.test(name)) return "must consist of lower case letters, digits and '-', and start and end with a letter or digit"
  return undefined
}

/** Why `name` is not a DNS-1123 subdomain (what most object names must be), or undefined when it is one. */
export const dns1123SubdomainProblem = (name: string): string | undefined => {
  if (name.length === 0) return "must not be empty"
  if (name.length > 253) return `must be at most 253 characters (has ${name.length})`
  if (!dns1123Subdomain.test(name)) return "must consist of lower case letters, digits, '-' and '.', and start and end with a letter or digit"
  return undefined
}

/** Why `key` is not a valid label (or annotation) key, or undefined when it is one: `[prefix/]name`, name at most 63 characters. */
export const labelKeyProblem = (key: string): string | undefined => {
  const slash = key.indexOf("/")
  const prefix = slash === -1 ? undefined : key.slice(0, slash)
  const name = slash === -1 ? key : key.slice(slash + 1)
  if (prefix !== undefined) {
    const problem = dns1123SubdomainProblem(prefix)
    if (problem !== undefined) return `its prefix "${prefix}" ${problem}`
  }
  if (name.length === 0) return "its name part must not be empty"
  if (name.length > 63) return `its name part must be at most 63 characters (has ${name.length})`
  if (!qualifiedName.test(name)) return "its name part must consist of letters, digits, '-', '_' and '.', and start and end with a letter or digit"
  return undefined
}

/** Why `value` is not a valid label value, or undefined when it is one: empty, or at most 63 characters of `[A-Za-z0-9_.-]` starting and ending alphanumeric. */
export const labelValueProblem = (value: string): string | undefined => {
  if (value === "") return undefined
  if (value.length > 63) return `must be at most 63 characters (has ${value.length})`
  if (!qualifiedName.test(value)) return "must consist of letters, digits, '-', '_' and '.', and start and end with a letter or digit"
  return undefined
}

/** The first problem of a label set, as one sentence naming the label, or undefined when every label is valid. */
export const labelsProblem = (labels: Readonly<Record<string, string>>): string | undefined => {
  for (const [key, value] of Object.entries(labels)) {
    const keyProblem = labelKeyProblem(key)
    if (keyProblem !== undefined) return `label key "${key}" is not valid for Kubernetes: ${keyProblem}`
    const valueProblem = labelValueProblem(value)
    if (valueProblem !== undefined) return `the value "${value}" of label "${key}" is not valid for Kubernetes: ${valueProblem}`
  }
  return undefined
}

/**
 * The Pod name of an agent's sandbox: its name made DNS-safe (lower case, runs of other characters
 * as one '-', at most 40 characters) plus the first 12 hex digits of its id, so two agents of the same
 * name get different Pods and the same agent always gets the same one (provision is idempotent by name).
 * Returns undefined when the agent id has no hex digits to derive from.
 */
export const podNameOf = (agentName: string, agentId: string): string | undefined => {
  const slug = agentName
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "-")
    .slice(0, 40)
    .replace(/^-+|-+$/g, "")
  const shortId = agentId.toLowerCase().replace(/[^0-9a-f]/g, "").slice(0, 12)
  if (shortId.length === 0) return undefined
  const name = `${slug === "" ? "agent" : slug}-${shortId}`
  return dns1123LabelProblem(name) === undefined ? name : undefined
}

