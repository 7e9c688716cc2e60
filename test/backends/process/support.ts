// Shared by the process backend's tests: a TRUSTED spec and the contract's programs as shell commands.
import { randomUUID } from "node:crypto"
import { trustProfiles } from "../../../src/domain/SandboxConfiguration.ts"
import type { SandboxSpec } from "../../../src/services/SandboxBackend.ts"

/**
 * A TRUSTED spec, as the runtime resolves it. Its process limit is high: a sandbox that shares uid
 * 65534 (no uid range) counts every process of that uid on the host, which other tests fill.
 */
export const trustedSpec = (overrides: Partial<SandboxSpec> & { agentId: string }): SandboxSpec => ({
  sessionId: randomUUID(),
  runtimeId: "rt-process",
  name: "contract",
  env: {},
  labels: {},
  sandbox: {
    trustLevel: "TRUSTED",
    runtimeClass: "runc",
    networkPolicy: "allow_egress",
    securityContext: trustProfiles.TRUSTED.security,
    resources: { cpu: "1", cpuMillis: 1000, memory: "512Mi", memoryBytes: 512 * 1024 * 1024, tokensPerHour: 100_000, pids: 10_000 }
  },
  ...overrides
})

/** The contract's programs for a POSIX shell. */
export const shellPrograms = {
  echoLoop: ["sh", "-c", 'while IFS= read -r line; do case "$line" in "exit "*) exit "${line#exit }";; esac; printf "%s\\n" "$line"; done'],
  printAndExit: (out: string, err: string, code: number) => ["sh", "-c", 'printf "%s" "$1"; printf "%s" "$2" >&2; exit "$3"', "sh", out, err, String(code)],
  sleep: (seconds: number) => ["sleep", String(seconds)],
  flood: (bytes: number) => ["sh", "-c", 'head -c "$1" /dev/zero | tr "\\000" x', "sh", String(bytes)],
  writeFile: (path: string, content: string) => [
    "sh",
    "-c",
    'mkdir -p "$(dirname "$L02_WORKSPACE/$1")" && printf "%s" "$2" > "$L02_WORKSPACE/$1"',
    "sh",
    path,
    content
  ],
  readFile: (path: string) => ["sh", "-c", 'cat "$L02_WORKSPACE/$1"', "sh", path]
}

/**
 * The uid range of the default configuration (`process.uid_range`). Tests claim uids from it in the
 * host-wide claims directory, as every runtime on the host does, so test files and other runs on
 * the same host never share a uid.
 */
export const testUidRange = () => ({ first: 800_000, last: 899_999 })
