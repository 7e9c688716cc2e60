// Shared helpers of the execution tests: a sandbox spec, a started sandbox, collecting a run.
import { randomUUID } from "node:crypto"
import { Effect, Stream } from "effect"
import { trustProfiles } from "../../src/domain/SandboxConfiguration.ts"
import type { ExecutionEvent } from "../../src/execution/AgentLoop.ts"
import { SandboxBackend, type SandboxSpec } from "../../src/services/SandboxBackend.ts"

export const makeSpec = (agentId: string, command: ReadonlyArray<string>): SandboxSpec => ({
  agentId,
  sessionId: randomUUID(),
  runtimeId: "rt-exec-test",
  name: agentId,
  command,
  env: {},
  labels: {},
  sandbox: {
    trustLevel: "TRUSTED",
    runtimeClass: "runc",
    networkPolicy: "allow_egress",
    securityContext: trustProfiles.TRUSTED.security,
    resources: { cpu: "1", cpuMillis: 1000, memory: "512Mi", memoryBytes: 512 * 1024 * 1024, tokensPerHour: 100_000, pids: 64 }
  }
})

/** Provisions and starts a sandbox running `command`; removed when the scope closes. */
export const startedSandbox = (agentId: string, command: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const backend = yield* SandboxBackend
    const info = yield* Effect.acquireRelease(
      backend.provision(makeSpec(agentId, command)),
      (info) => Effect.ignore(backend.remove(info.sandboxId))
    )
    yield* backend.start(info.sandboxId)
    return { backend, sandboxId: info.sandboxId }
  })

export const collect = <R>(stream: Stream.Stream<ExecutionEvent, never, R>) =>
  Effect.map(Stream.runCollect(stream), (chunk) => [...chunk])

export const ofType = <T extends ExecutionEvent["type"]>(events: ReadonlyArray<ExecutionEvent>, type: T) =>
  events.filter((e): e is Extract<ExecutionEvent, { type: T }> => e.type === type)
