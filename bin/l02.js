#!/usr/bin/env node
// The installed `l02` command: runs the compiled CLI (`npm run build` writes dist/, `npm ci` runs it).
import { runCli } from "../dist/src/cli/main.js"

runCli()
