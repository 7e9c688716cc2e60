// The SandboxBackend contract against the Kubernetes backend over the API server simulator, with
// programs spelled as `sh -c` (the simulator runs each container as a real local process): once as
// an API server that offers v5.channel.k8s.io, once as one that offers only v4 (before about 1.30),
// where a client can end an exec's stdin only by closing its WebSocket.
import { sandboxBackendContract } from "../../services/SandboxBackendContract.ts"
import { shellPrograms } from "../process/support.ts"
import { simulatorLayer, specFor, useSimulator } from "./support.ts"

for (const protocol of ["v5.channel.k8s.io", "v4.channel.k8s.io"] as const) {
  const simulator = useSimulator({ execProtocols: [protocol] })
  sandboxBackendContract(`kubernetes (API server simulator, ${protocol})`, {
    layer: simulatorLayer(simulator.current),
    programs: shellPrograms,
    makeSpec: (overrides) => specFor(overrides),
    unavailableRuntimeClass: "kata",
    pauseSupported: false,
    timeoutMs: 30_000
  })
}
