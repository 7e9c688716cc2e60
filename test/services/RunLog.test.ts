import { layerMemory } from "../../src/services/RunLog.ts"
import { runLogContract } from "./RunLogContract.ts"

runLogContract("in-memory", layerMemory)
