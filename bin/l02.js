#!/usr/bin/env node
// The installed `l02` command: runs the compiled CLI (`npm run build` writes dist/, `npm ci` runs it).
// An older Node is refused with one line before anything loads (the CLI's dependencies need >= 22.19).
const [major, minor] = process.versions.node.split(".").map(Number)
if (major < 22 || (major === 22 && minor < 19)) {
  console.error(`l02 needs Node >= 22.19, and this is ${process.version}; run it with the Node that npm ci installs (npx l02 ..., or npm exec l02 -- ...)`)
  process.exit(1)
}
const { runCli } = await import("../dist/src/cli/main.js")
runCli()
