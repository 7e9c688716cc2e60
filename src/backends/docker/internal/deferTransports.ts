/**
 * dockerode loads, at its first import, two transports the runtime rarely uses: docker-modem's SSH
 * connection (ssh2) and the BuildKit session (@grpc/grpc-js, @grpc/proto-loader). Together they are
 * about a fifth of a supervisor's resident memory before its first agent. This module, imported
 * before dockerode, hands those two importers stand-ins that load the real package on first use, so
 * `DOCKER_HOST=ssh://...` and BuildKit builds work as before and everything else never pays for them.
 *
 * The hook is narrow: it applies only to those package names required from those two dockerode
 * files; every other import in the process resolves as usual.
 */
import module from "node:module"

/** Deferred package -> the dockerode file whose `require` of it is deferred. */
const deferred: Record<string, string> = {
  ssh2: "/node_modules/docker-modem/lib/ssh.js",
  "@grpc/grpc-js": "/node_modules/dockerode/lib/session.js",
  "@grpc/proto-loader": "/node_modules/dockerode/lib/session.js"
}

const scheme = "l02-deferred:"

/** CommonJS source of a stand-in for the package at `real` (a file URL). */
const standIn = (name: string, real: string): string => `"use strict"
const real = ${JSON.stringify(real)}
let loaded
const load = () => {
  if (loaded === undefined) {
    const { createRequire } = process.getBuiltinModule("node:module")
    const { fileURLToPath } = process.getBuiltinModule("node:url")
    const path = fileURLToPath(real)
    loaded = createRequire(path)(path)
  }
  return loaded
}
// docker-modem reads ssh2's Client when it loads; a constructor that builds the real one defers that too.
const lazyClient = ${name === "ssh2" ? "function Client(...args) { return new (load().Client)(...args) }" : "undefined"}
module.exports = new Proxy({}, {
  get: (_, key) => (key === "Client" && lazyClient !== undefined && loaded === undefined ? lazyClient : load()[key]),
  has: (_, key) => key in load(),
  ownKeys: () => Reflect.ownKeys(load()),
  getOwnPropertyDescriptor: (_, key) => {
    const descriptor = Reflect.getOwnPropertyDescriptor(load(), key)
    return descriptor === undefined ? undefined : { ...descriptor, configurable: true }
  }
})
`

// Registered when this module is first evaluated (once per process); where `module.registerHooks` is
// missing, dockerode simply loads its transports as it always did.
if (typeof module.registerHooks === "function") {
  module.registerHooks({
    resolve(specifier, context, nextResolve) {
      const importer = deferred[specifier]
      if (importer === undefined || context.parentURL?.endsWith(importer) !== true) return nextResolve(specifier, context)
      const real = nextResolve(specifier, context)
      return { url: `${scheme}${specifier}#${real.url}`, format: "commonjs", shortCircuit: true }
    },
    load(url, context, nextLoad) {
      if (!url.startsWith(scheme)) return nextLoad(url, context)
      const rest = url.slice(scheme.length)
      const hash = rest.indexOf("#")
      return { format: "commonjs", source: standIn(rest.slice(0, hash), rest.slice(hash + 1)), shortCircuit: true }
    }
  })
}
