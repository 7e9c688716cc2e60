import { layerMemory } from "../../src/services/StateStore.ts"
import { stateStoreContract } from "./StateStoreContract.ts"

stateStoreContract("in-memory", layerMemory)
