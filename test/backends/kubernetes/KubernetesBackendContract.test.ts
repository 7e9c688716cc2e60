// The SandboxBackend contract against the Kubernetes backend over the API server simulator, with
// programs spelled as `sh -c` (the simulator runs each container as a real local process).
import { sandboxBackendContract } from "../../services/SandboxBackendContract.ts"
import { shellPrograms } from "../process/support.ts"
import { simulatorLayer, specFor, useSimulator } from "./support.ts"

const simulator = useSimulator()

sandboxBackendContract("kubernetes (API server simulator)", {
  layer: simulatorLayer(simulator.current),
  programs: shellPrograms,
  makeSpec: (overrides) => specFor(overrides),
  unavailableRuntimeClass: "kata",
  pauseSupported: false,
  timeoutMs: 30_000
})
