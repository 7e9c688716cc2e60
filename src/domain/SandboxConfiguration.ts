/**
 * The sandbox an agent runs in, derived purely from its trust level and resources.
 */
import * as Schema from "effect/Schema"
import { TrustLevel } from "./AgentConfig.ts"

/** Runtime classes named by the specification. */
export const RuntimeClass = Schema.String
/** @see RuntimeClass */
export type RuntimeClass = string

/** Network policies, strictest last: isolated has no network at all. */
export const NetworkPolicy = Schema.Literals(["allow_egress", "restricted", "isolated"])
/** @see NetworkPolicy */
export type NetworkPolicy = typeof NetworkPolicy.Type

/** The security context applied to the agent's sandbox. */
export const SecurityContext = Schema.Struct({
  runAsUser: Schema.Number,
  runAsGroup: Schema.Number,
  runAsNonRoot: Schema.Boolean,
  readOnlyRootFilesystem: Schema.Boolean,
  allowPrivilegeEscalation: Schema.Boolean,
  seccompProfile: Schema.Literals(["RuntimeDefault", "Unconfined"]),
  dropCapabilities: Schema.Array(Schema.String),
  confidentialComputing: Schema.Boolean
})
/** @see SecurityContext */
export type SecurityContext = typeof SecurityContext.Type

/** Resolved, numeric resource limits. */
export const ResourceLimits = Schema.Struct({
  cpu: Schema.String,
  cpuMillis: Schema.Number,
  memory: Schema.String,
  memoryBytes: Schema.Number,
  tokensPerHour: Schema.Number,
  pids: Schema.Number
})
/** @see ResourceLimits */
export type ResourceLimits = typeof ResourceLimits.Type

/** Everything a backend needs to build an agent's sandbox. */
export const SandboxConfiguration = Schema.Struct({
  trustLevel: TrustLevel,
  runtimeClass: RuntimeClass,
  networkPolicy: NetworkPolicy,
  securityContext: SecurityContext,
  resources: ResourceLimits
})
/** @see SandboxConfiguration */
export type SandboxConfiguration = typeof SandboxConfiguration.Type

/** The strict security context of the specification (user nobody, read-only root, no capabilities). */
export const strictSecurityContext: SecurityContext = {
  runAsUser: 65534,
  runAsGroup: 65534,
  runAsNonRoot: true,
  readOnlyRootFilesystem: true,
  allowPrivilegeEscalation: false,
  seccompProfile: "RuntimeDefault",
  dropCapabilities: ["ALL"],
  confidentialComputing: false
}

/** Per trust level: network policy and security context, as the specification's table fixes them. */
export const trustProfiles: Readonly<Record<TrustLevel, { network: NetworkPolicy; security: SecurityContext }>> = {
  TRUSTED: { network: "allow_egress", security: { ...strictSecurityContext, readOnlyRootFilesystem: false } },
  STANDARD: { network: "restricted", security: strictSecurityContext },
  UNTRUSTED: { network: "isolated", security: strictSecurityContext },
  CONFIDENTIAL: { network: "isolated", security: { ...strictSecurityContext, confidentialComputing: true } }
}
