/**
 * Derives an agent's sandbox configuration from its trust level, its requested resources and the
 * runtime configuration. Pure: the same input always gives the same sandbox, or the same coded error.
 */
import type { AgentConfig } from "./AgentConfig.ts"
import { ResourceLimitsInvalid } from "./Errors.ts"
import { formatCpuMillis, formatMemoryBytes, parseCpuMillis, parseMemoryBytes } from "./Quantity.ts"
import type { RuntimeConfig } from "./RuntimeConfig.ts"
import { type SandboxConfiguration, trustProfiles } from "./SandboxConfiguration.ts"


/** Resolves trust level, runtime class, network, security context and limits; E2042 above the maximum. */
export const resolveSandbox = (
  config: AgentConfig,
  settings: Pick<RuntimeConfig, "sandbox">
): SandboxConfiguration | ResourceLimitsInvalid => {
  // An agent config that names no trust level gets the operator's default (sandbox.default_trust_level).
  const trustLevel = config.trustLevel ?? settings.sandbox.default_trust_level
  const profile = trustProfiles[trustLevel]
  const s = settings.sandbox
  const cpu = config.resources?.cpu ?? s.default_cpu
  const memory = config.resources?.memory ?? s.default_memory
  const cpuMillis = parseCpuMillis(cpu)!
  const memoryBytes = parseMemoryBytes(memory)!
  const maxCpu = parseCpuMillis(s.max_cpu)!
  const maxMemory = parseMemoryBytes(s.max_memory)!
  if (cpuMillis > maxCpu) {
    return new ResourceLimitsInvalid({
      message: `resources.cpu ${cpu} is above the allowed maximum sandbox.max_cpu ${s.max_cpu}; ask for less or raise the maximum`,
      key: "resources.cpu"
    })
  }
  if (memoryBytes > maxMemory) {
    return new ResourceLimitsInvalid({
      message: `resources.memory ${memory} is above the allowed maximum sandbox.max_memory ${s.max_memory}; ask for less or raise the maximum`,
      key: "resources.memory"
    })
  }
  return {
    trustLevel,
    runtimeClass: s.trust_runtime_classes[trustLevel],
    networkPolicy: profile.network,
    securityContext: profile.security,
    resources: {
      cpu: formatCpuMillis(cpuMillis),
      cpuMillis,
      memory: formatMemoryBytes(memoryBytes),
      memoryBytes,
      tokensPerHour: config.resources?.tokensPerHour ?? s.default_tokens_per_hour,
      pids: config.resources?.pids ?? s.default_pids
    }
  }
}
