// Builds the default agent image from the host's busybox-static: `node src/backends/docker/buildAgentImageMain.ts`
// (used by .ci/setup-docker.sh; `l02 image build` does the same through the CLI). Honours DOCKER_HOST.
import "./internal/deferTransports.ts"
import Docker from "dockerode"
import * as Effect from "effect/Effect"
import { buildAgentImage } from "./AgentImage.ts"

const built = await Effect.runPromise(buildAgentImage({ docker: new Docker(), busyboxPath: process.env.L02_BUSYBOX ?? "/bin/busybox" }))
console.log(`built ${built.tag} (${built.imageId.slice(0, 19)}, ${built.applets} busybox applets)`)
