// The process backend against the SandboxBackend contract, with programs spelled as `sh -c`: once
// with every sandbox as the shared runAsUser, once with a uid of its own from a range.
import { chmodSync, mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll } from "vitest"
import * as ProcessBackend from "../../../src/backends/process/ProcessBackend.ts"
import { sandboxBackendContract } from "../../services/SandboxBackendContract.ts"
import { shellPrograms, testUidRange, trustedSpec } from "./support.ts"

const dataDir = mkdtempSync(join(tmpdir(), "l02-process-contract-"))
const ownUidsDir = mkdtempSync(join(tmpdir(), "l02-process-contract-uids-"))
// The sandbox users must traverse it to reach the data directory inside.
chmodSync(ownUidsDir, 0o711)
afterAll(() => {
  rmSync(dataDir, { recursive: true, force: true })
  rmSync(ownUidsDir, { recursive: true, force: true })
})

sandboxBackendContract("process", {
  layer: ProcessBackend.layer({ dataDir, pollIntervalMs: 100 }),
  makeSpec: trustedSpec,
  unavailableRuntimeClass: "gvisor",
  programs: shellPrograms
})

sandboxBackendContract("process (a uid of its own per sandbox)", {
  layer: ProcessBackend.layer({ dataDir: join(ownUidsDir, "data"), pollIntervalMs: 100, uidRange: testUidRange() }),
  makeSpec: trustedSpec,
  unavailableRuntimeClass: "gvisor",
  programs: shellPrograms
})
