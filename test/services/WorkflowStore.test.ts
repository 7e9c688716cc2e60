import { layerMemory } from "../../src/services/WorkflowStore.ts"
import { workflowStoreContract } from "./WorkflowStoreContract.ts"

workflowStoreContract("in-memory", layerMemory)
