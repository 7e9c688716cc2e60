/**
 * What a spawn's caller may ask for: the config's references to host-side resources (checked for
 * every origin, and strictly for configs from outside the process) and, for HTTP API keys, the trust
 * levels the key may spawn. Checked before anything is admitted or created.
 */
import type { AgentConfig, TrustLevel } from "../domain/AgentConfig.ts"
import { checkReferences, type ConfigOrigin, type DeclaredResources } from "../domain/ConfigReferences.ts"
import { Forbidden, type HostReferenceRefused, InputInvalid, type ReferenceUnknown } from "../domain/Errors.ts"

/** Who asks for a spawn (or a scale's spawns). */
export interface SpawnPolicy {
  /** `remote` for a config that arrived over HTTP; default `embedding` (the process's own code). */
  readonly origin?: ConfigOrigin | undefined
  /** The trust levels the caller may spawn (an HTTP API key's `trust_levels`); any when absent. */
  readonly trustLevels?: ReadonlyArray<TrustLevel> | undefined
  /**
   * Set by the workflow engine for the agents of its steps, the only ones that may carry labels under
   * `workflow.l02.dev/` (a run finds its step's agent again by them, so nobody else may plant one).
   */
  readonly workflowStep?: boolean | undefined
}

/** The label prefix of the agents workflow steps spawn. */
export const workflowLabelPrefix = "workflow.l02.dev/"

/** The refusal of a config under a policy, or undefined when it may be spawned. */
export const checkSpawnPolicy = (
  config: AgentConfig,
  trustLevel: TrustLevel,
  declared: DeclaredResources,
  policy: SpawnPolicy | undefined
): Forbidden | HostReferenceRefused | ReferenceUnknown | InputInvalid | undefined => {
  const reserved = Object.keys(config.labels ?? {}).find((k) => k.startsWith(workflowLabelPrefix))
  if (reserved !== undefined && policy?.workflowStep !== true) {
    return new InputInvalid({ message: `label ${reserved}: labels under ${workflowLabelPrefix} belong to the agents of workflow steps; use another key`, key: `labels.${reserved}` })
  }
  if (policy?.trustLevels !== undefined && !policy.trustLevels.includes(trustLevel)) {
    return new Forbidden({
      message: `this API key may not spawn ${trustLevel} agents (it may spawn ${policy.trustLevels.join(", ")}); ask for another trust level, or add ${trustLevel} to the key's trust_levels in http.api_keys`,
      key: "trustLevel"
    })
  }
  return checkReferences(config, declared, policy?.origin ?? "embedding")
}
