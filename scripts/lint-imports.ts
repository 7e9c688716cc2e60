// Keeps imports flowing one way: domain <- machines <- runtime -> services <- backends
// (execution, the agent loop, sits beside runtime: it uses services and domain only).
// Also: no module imports the "effect" barrel, which loads every Effect module (about 10 MB more
// resident memory than the modules the runtime uses); import the module itself ("effect/Effect").
// Fails (exit 1) listing every import that breaks the rule.
import { readdirSync, readFileSync, statSync } from "node:fs"
import { dirname, join, relative, resolve } from "node:path"

const root = resolve(import.meta.dirname, "..")
const files = (dir: string): Array<string> =>
  readdirSync(join(root, dir)).flatMap((name) => {
    const path = join(dir, name)
    return statSync(join(root, path)).isDirectory() ? files(path) : /\.(ts|mts)$/.test(name) ? [path] : []
  })

/** Which layer a repository path belongs to. */
const layerOf = (path: string): string => {
  if (path.startsWith("machines/")) return "machines"
  const m = /^src\/([^/]+)/.exec(path)
  if (m === null) return "other"
  if (path === "src/index.ts") return "index"
  if (path === "src/runtime/liveLayer.ts") return "composition"
  // The promise API assembles the agent runtime and the workflows on it.
  if (path === "src/runtime/createRuntime.ts") return "embedding"
  return m[1]!.endsWith(".ts") ? "index" : m[1]!
}

// For each layer: which layers it may import, and which bare packages it may not.
const allowed: Record<string, { layers: Array<string>; forbidPackages?: RegExp }> = {
  domain: { layers: ["domain"], forbidPackages: /^(xstate|dockerode|@kubernetes|@electric-sql|@effect\/sql|node:)/ },
  machines: { layers: ["domain", "machines"], forbidPackages: /^(?!xstate$)/ },
  services: { layers: ["domain", "services"] },
  backends: { layers: ["domain", "services", "backends"] },
  store: { layers: ["domain", "services", "store"] },
  runtime: { layers: ["domain", "machines", "services", "execution", "runtime", "composition"] },
  execution: { layers: ["domain", "services", "execution"] },
  workflows: { layers: ["domain", "machines", "services", "runtime", "workflows"] },
  // Several supervisors on Effect Cluster: the routed runtime and the agent entity over the runtime.
  cluster: { layers: ["domain", "services", "runtime", "cluster"] },
  embedding: { layers: ["domain", "machines", "services", "execution", "runtime", "composition", "workflows", "cluster"] },
  composition: { layers: ["domain", "machines", "services", "execution", "runtime", "backends", "store"] },
  agent: { layers: [] },
  cli: { layers: ["domain", "runtime", "composition", "embedding", "workflows", "cli", "index", "http"] },
  http: { layers: ["domain", "runtime", "embedding", "workflows", "http", "index"] },
  index: { layers: ["domain", "machines", "services", "runtime", "embedding", "workflows", "index"] }
}

const problems: Array<string> = []
for (const file of [...files("src"), ...files("machines")]) {
  const from = layerOf(file)
  const rule = allowed[from]
  if (rule === undefined) continue
  const text = readFileSync(join(root, file), "utf8")
  for (const m of text.matchAll(/(?:import|export)\s[^"';]*?from\s+["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)|import\s+["']([^"']+)["']/g)) {
    const spec = (m[1] ?? m[2] ?? m[3])!
    if (spec.startsWith(".")) {
      const target = relative(root, resolve(join(root, dirname(file)), spec))
      const to = layerOf(target)
      if (to === "other") continue
      if (!rule.layers.includes(to)) problems.push(`${file}: ${from} may not import ${to} (${spec})`)
      if (target.includes("/internal/") && !file.startsWith(dirname(target.split("/internal/")[0]! + "/x"))) {
        problems.push(`${file}: imports another module's internal/ (${spec})`)
      }
    } else if (spec === "effect") {
      problems.push(`${file}: imports the "effect" barrel; import the module (effect/Effect, effect/Layer, ...)`)
    } else if (rule.forbidPackages?.test(spec)) {
      problems.push(`${file}: ${from} may not import the package ${spec}`)
    }
  }
}
if (problems.length > 0) {
  console.error(`import rule violations (domain <- machines <- runtime -> services <- backends):\n${problems.join("\n")}`)
  process.exitCode = 1
} else {
  console.log("imports flow one way: ok")
}
