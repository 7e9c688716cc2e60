/**
 * The checks of operation arguments (agent and checkpoint ids, the options of terminate, suspend
 * and execute) that every way into the runtime applies, for callers that route operations
 * elsewhere (a cluster runner) before the runtime sees them.
 */
export { agentIdOf, checkpointIdOf, executeOptionsOf, suspendOptionsOf, terminateOptionsOf } from "./internal/callInput.ts"
