import { layerMemory } from "../../src/services/EventLog.ts"
import { eventLogContract } from "./EventLogContract.ts"

eventLogContract("in-memory", layerMemory)
