// The SandboxBackend contract on a real Kubernetes cluster (L02_TEST_KUBECONFIG; `.ci/run` starts the
// single-node v1.20 cluster of ../shared/k8s-cluster, whose API server speaks only v4.channel.k8s.io,
// has no metrics-server and runs only the default runtime handler, so specs are TRUSTED: runc).
import { describe } from "vitest"
import { sandboxBackendContract } from "../../services/SandboxBackendContract.ts"
import { shellPrograms } from "../process/support.ts"
import { clusterEnabled, clusterLayer, clusterSpec } from "./clusterSupport.ts"
import { specFor } from "./support.ts"

describe.skipIf(!clusterEnabled)("Kubernetes backend on a real cluster", () => {
  sandboxBackendContract("kubernetes (real cluster)", {
    layer: clusterLayer(),
    programs: shellPrograms,
    makeSpec: (overrides) => clusterSpec(specFor(overrides, "TRUSTED")),
    unavailableRuntimeClass: "kata",
    pauseSupported: false,
    statsUnavailableMentions: "metrics-server",
    timeoutMs: 120_000
  })
})
