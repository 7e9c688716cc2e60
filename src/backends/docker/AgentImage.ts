/**
 * The default agent image, built offline: a root filesystem of Debian's busybox-static (one static
 * binary plus applet symlinks), a `nobody` user owning `/workspace`, and the echo program as the
 * default command. No registry is needed, so tests, the bench and the demo run on an isolated host.
 */
import { execFileSync } from "node:child_process"
import { readFileSync } from "node:fs"
import { Readable } from "node:stream"
import type Docker from "dockerode"
import * as Effect from "effect/Effect"
import { type SandboxError, SandboxOperationFailed } from "../../domain/Errors.ts"
import { call } from "./internal/dockerErrors.ts"
import { type TarEntry, writeRootfsTar } from "./internal/tarWriter.ts"

/** The tag the Docker backend uses when an agent names no image. */
export const defaultAgentImage = "l02-agent:latest"

/** Where Debian's busybox-static puts its binary. */
export const defaultBusyboxPath = "/bin/busybox"

/** The uid and gid sandboxes run as (`nobody`). */
export const sandboxUser = 65534

/**
 * The image's default program, `/bin/l02-echo`: echoes each stdin line to stdout; the line
 * `exit N` exits with N; SIGTERM exits with 143 (as PID 1 the shell would otherwise ignore it).
 */
export const echoProgramScript = `#!/bin/sh
trap 'exit 143' TERM INT
while IFS= read -r line; do
  case "$line" in
    "exit "*)
      code="\${line#exit }"
      case "$code" in
        ''|*[!0-9]*) ;;
        *) exit "$code" ;;
      esac
      ;;
  esac
  printf '%s\\n' "$line"
done
`

/**
 * `/bin/l02-agent`: the runtime's JSON-lines protocol (docs/protocol.md) in busybox sh. For each
 * `{"type":"input","id":...,"input":...}` line it answers `{"type":"output","id":...,"text":"echo: ..."}`
 * and `{"type":"done","id":...}`; the line `exit N` exits with N; SIGTERM exits with 143.
 */
export const agentProgramScript = `#!/bin/sh
trap 'exit 143' TERM INT
turn=0
while IFS= read -r line; do
  case "$line" in
    "exit "*)
      code="\${line#exit }"
      case "$code" in
        ''|*[!0-9]*) ;;
        *) exit "$code" ;;
      esac
      ;;
    *'"type":"input"'*)
      turn=$((turn + 1))
      id=$(printf '%s' "$line" | sed -n 's/.*"id":"\\([^"]*\\)".*/\\1/p')
      input=$(printf '%s' "$line" | sed -n 's/.*"input":\\(.*\\)}$/\\1/p' | sed 's/^"//; s/"$//; s/\\\\/\\\\\\\\/g; s/"/\\\\"/g')
      printf '{"type":"output","id":"%s","text":"echo: %s","turn":%s,"agentId":"%s"}\\n' "$id" "$input" "$turn" "$L02_AGENT_ID"
      printf '{"type":"done","id":"%s"}\\n' "$id"
      ;;
  esac
done
`

const encoder = new TextEncoder()

/** The applets a busybox binary provides, from `busybox --list`. */
const appletsOf = (busyboxPath: string): ReadonlyArray<string> =>
  execFileSync(busyboxPath, ["--list"], { encoding: "utf8" })
    .split("\n")
    .map((a) => a.trim())
    .filter((a) => /^[A-Za-z0-9_.[-]+$/.test(a) && a !== "busybox")

/**
 * The image's root filesystem as a tar archive: `/bin` (busybox, its applets, `l02-echo`),
 * `/usr/bin/env`, `/etc/passwd` and `/etc/group` with root and nobody, `/tmp` (1777) and
 * `/workspace` owned by nobody, so a fresh workspace volume is writable by the agent.
 */
export const agentRootfs = (busybox: Uint8Array, applets: ReadonlyArray<string>): Uint8Array => {
  const entries: Array<TarEntry> = [
    { path: "bin", type: "directory", mode: 0o755 },
    { path: "bin/busybox", type: "file", data: busybox, mode: 0o755 },
    ...applets.map((applet): TarEntry => ({ path: `bin/${applet}`, type: "symlink", linkTarget: "busybox", mode: 0o777 })),
    { path: "bin/l02-echo", type: "file", data: encoder.encode(echoProgramScript), mode: 0o755 },
    { path: "bin/l02-agent", type: "file", data: encoder.encode(agentProgramScript), mode: 0o755 },
    { path: "usr", type: "directory", mode: 0o755 },
    { path: "usr/bin", type: "directory", mode: 0o755 },
    { path: "usr/bin/env", type: "symlink", linkTarget: "/bin/busybox", mode: 0o777 },
    { path: "etc", type: "directory", mode: 0o755 },
    {
      path: "etc/passwd",
      type: "file",
      data: encoder.encode(`root:x:0:0:root:/root:/bin/sh\nnobody:x:${sandboxUser}:${sandboxUser}:nobody:/workspace:/bin/sh\n`),
      mode: 0o644
    },
    { path: "etc/group", type: "file", data: encoder.encode(`root:x:0:\nnogroup:x:${sandboxUser}:\n`), mode: 0o644 },
    { path: "root", type: "directory", mode: 0o700 },
    { path: "tmp", type: "directory", mode: 0o1777 },
    { path: "workspace", type: "directory", mode: 0o755, uid: sandboxUser, gid: sandboxUser },
    { path: "proc", type: "directory", mode: 0o555 },
    { path: "sys", type: "directory", mode: 0o555 },
    { path: "dev", type: "directory", mode: 0o755 }
  ]
  return writeRootfsTar(entries)
}

/** The Dockerfile of the agent image: the root filesystem, user nobody, the echo program. */
export const agentDockerfile = `FROM scratch
ADD rootfs.tar /
ENV PATH=/bin:/usr/bin L02_WORKSPACE=/workspace
USER ${sandboxUser}:${sandboxUser}
WORKDIR /workspace
LABEL l02.dev/image=agent
CMD ["/bin/l02-echo"]
`

/** What {@link buildAgentImage} needs. */
export interface BuildAgentImageOptions {
  readonly docker: Docker
  /** A static busybox binary on this host, e.g. `/bin/busybox` from Debian's busybox-static. */
  readonly busyboxPath?: string | undefined
  readonly tag?: string | undefined
}

/** What was built. */
export interface AgentImageBuilt {
  readonly tag: string
  readonly imageId: string
  readonly applets: number
}

/**
 * Builds the default agent image from a host busybox binary, with no registry: the build context is
 * a tar holding the Dockerfile and the root filesystem tar, which `ADD` unpacks.
 *
 * @example
 * ```ts
 * await Effect.runPromise(buildAgentImage({ docker: new Docker(), busyboxPath: "/bin/busybox" }))
 * ```
 */
export const buildAgentImage = (options: BuildAgentImageOptions): Effect.Effect<AgentImageBuilt, SandboxError> =>
  Effect.gen(function* () {
    const busyboxPath = options.busyboxPath ?? defaultBusyboxPath
    const tag = options.tag ?? defaultAgentImage
    const { busybox, applets } = yield* Effect.try({
      try: () => ({ busybox: new Uint8Array(readFileSync(busyboxPath)), applets: appletsOf(busyboxPath) }),
      catch: (error) =>
        new SandboxOperationFailed({
          message: `cannot read the static busybox at ${busyboxPath} (${(error as Error).message}); install it with \`apt-get install -y busybox-static\` or pass its path`,
          key: "busyboxPath"
        })
    })
    const context = writeRootfsTar([
      { path: "Dockerfile", type: "file", data: encoder.encode(agentDockerfile), mode: 0o644 },
      { path: "rootfs.tar", type: "file", data: agentRootfs(busybox, applets), mode: 0o644 }
    ])
    const endpoint = (options.docker.modem as { socketPath?: string }).socketPath ?? "DOCKER_HOST"
    const operation = { endpoint, operation: `build the agent image ${tag}` }
    const output = yield* call(operation, () => options.docker.buildImage(Readable.from([Buffer.from(context)]), { t: tag, rm: true, forcerm: true }))
    yield* call(operation, () =>
      new Promise<void>((resolve, reject) =>
        options.docker.modem.followProgress(output, (error: Error | null, events: Array<{ error?: string; errorDetail?: { message?: string } }>) => {
          const failed = error ?? events.find((e) => e.error !== undefined)
          if (failed === undefined || failed === null) resolve()
          else reject(new Error(failed instanceof Error ? failed.message : (failed.errorDetail?.message ?? failed.error)))
        })
      )
    )
    const image = yield* call(operation, () => options.docker.getImage(tag).inspect())
    return { tag, imageId: image.Id, applets: applets.length }
  })
