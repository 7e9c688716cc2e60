// The process backend against the SandboxBackend contract, with programs spelled as `sh -c`.
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll } from "vitest"
import * as ProcessBackend from "../../../src/backends/process/ProcessBackend.ts"
import { sandboxBackendContract } from "../../services/SandboxBackendContract.ts"
import { shellPrograms, trustedSpec } from "./support.ts"

const dataDir = mkdtempSync(join(tmpdir(), "l02-process-contract-"))
afterAll(() => rmSync(dataDir, { recursive: true, force: true }))

sandboxBackendContract("process", {
  layer: ProcessBackend.layer({ dataDir, pollIntervalMs: 100 }),
  makeSpec: trustedSpec,
  unavailableRuntimeClass: "gvisor",
  programs: shellPrograms
})
