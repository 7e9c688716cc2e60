/**
 * The pure machines of L02 Agent Runtime, for the Stately inspector, Stately Studio and tests.
 */
export * from "./agentMachine.ts"
export * from "./fleetMachine.ts"
export * from "./workflowMachine.ts"
