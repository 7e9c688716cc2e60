/**
 * Built-in tools over `SandboxBackend.exec`: `shell`, `read_file`, `write_file`, `list_files`.
 *
 * Every command runs in the sandbox with its workspace as working directory, a timeout and an
 * output cap. Paths are confined to the workspace twice: lexically here (relative paths, or
 * absolute under `/workspace`; no `..` segments), and in the sandbox by resolving the path with
 * `realpath -m` against the workspace's physical path, which catches symbolic links pointing out.
 * The `posix` dialect needs `sh`, `find`, `readlink -f` and the usual utilities (GNU or busybox)
 * in the sandbox image; the `memory`
 * dialect maps the file tools onto the in-memory backend's `l02-read`/`l02-write` programs (it has
 * no symbolic links and no directory listing).
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import { ToolFailed, ToolInputInvalid } from "../../domain/Errors.ts"
import type { ExecRequest, SandboxBackendShape } from "../../services/SandboxBackend.ts"
import type { AgentTool, ToolOutput } from "./AgentTool.ts"

/** The logical root the model sees. */
export const workspaceRoot = "/workspace"

/** Options of the sandbox tools. */
export interface SandboxToolsOptions {
  readonly sandboxId: string
  /** `posix` for real sandboxes, `memory` for the in-memory backend. Default `posix`. */
  readonly dialect?: "posix" | "memory" | undefined
  /** Default and maximum time of one command. Default 30 s. */
  readonly timeoutMs?: number | undefined
  /** Output cap of one command (stdout and stderr together). Default 64 KiB. */
  readonly maxOutputBytes?: number | undefined
  /** Extra environment of every command (e.g. `PATH`). */
  readonly env?: Readonly<Record<string, string>> | undefined
}

/** Exit code the posix scripts use for a path that resolves outside the workspace. */
const escapeExit = 90

/**
 * Confines a path lexically: returns it relative to the workspace (`.` for the root), or fails with
 * E2087 for `..` segments and absolute paths outside `/workspace`.
 */
export const confinePath = (tool: string, path: string): Effect.Effect<string, ToolInputInvalid> => {
  const reject = (why: string) =>
    Effect.fail(new ToolInputInvalid({ message: `${tool}: path "${path}" ${why}; use a path inside ${workspaceRoot}`, key: tool }))
  if (path.includes("\u0000")) return reject("contains a NUL byte")
  let rest = path.trim()
  if (rest.startsWith("/")) {
    if (rest !== workspaceRoot && !rest.startsWith(`${workspaceRoot}/`)) return reject("is outside the workspace")
    rest = rest.slice(workspaceRoot.length)
  }
  const segments = rest.split("/").filter((segment) => segment !== "" && segment !== ".")
  if (segments.includes("..")) return reject("contains '..'")
  return Effect.succeed(segments.length === 0 ? "." : segments.join("/"))
}

// The workspace's physical path, and a check that resolves a path through symbolic links and
// refuses it unless it stays inside. POSIX sh, `cd -P`/`pwd -P` and `readlink -f` only, so it runs
// with GNU coreutils and with busybox alike. The deepest existing ancestor is resolved (what does
// not exist yet cannot be a link); a link as the last component is followed; a link that cannot
// be resolved is refused.
const prelude = `root=$(pwd -P) || exit ${escapeExit}
check() {
  d=$1
  while [ ! -e "$d" ] && [ ! -L "$d" ]; do d=$(dirname -- "$d"); done
  if [ -L "$d" ]; then t=$(readlink -f -- "$d") && [ -n "$t" ] || { echo "path resolves outside the workspace" >&2; exit ${escapeExit}; }
  elif [ -d "$d" ]; then t=$(cd -P -- "$d" && pwd -P) || exit ${escapeExit}
  else t=$(cd -P -- "$(dirname -- "$d")" && pwd -P)/$(basename -- "$d") || exit ${escapeExit}
  fi
  case "$t" in "$root"|"$root"/*) ;; *) echo "path resolves outside the workspace" >&2; exit ${escapeExit};; esac
}
`

interface ExecResult {
  readonly stdout: string
  readonly stderr: string
  readonly exitCode: number
  readonly truncated: boolean
  readonly forkRefused: boolean
}

/** Builds the four tools for one sandbox. */
export const makeSandboxTools = (backend: SandboxBackendShape, options: SandboxToolsOptions): ReadonlyArray<AgentTool> => {
  const dialect = options.dialect ?? "posix"
  const maxTimeoutMs = options.timeoutMs ?? 30_000
  const maxOutputBytes = options.maxOutputBytes ?? 64 * 1024

  const exec = (tool: string, request: Omit<ExecRequest, "maxOutputBytes" | "timeoutMs">, timeoutMs = maxTimeoutMs) =>
    backend.exec(options.sandboxId, { ...request, timeoutMs, maxOutputBytes, ...(options.env === undefined ? {} : { env: options.env }) }).pipe(
      Stream.runFold(
        () => ({ stdout: "", stderr: "", exitCode: -1, truncated: false, timedOut: false, forkRefused: false }),
        (acc, chunk) =>
          chunk._tag === "stdout"
            ? { ...acc, stdout: acc.stdout + chunk.data }
            : chunk._tag === "stderr"
            ? { ...acc, stderr: acc.stderr + chunk.data }
            : { ...acc, exitCode: chunk.exitCode, truncated: chunk.truncated, timedOut: chunk.timedOut, forkRefused: chunk.forkRefused === true }
      ),
      // The backend enforces the timeout; this guard only catches a backend that does not.
      Effect.timeoutOrElse({
        duration: Duration.millis(timeoutMs + 5_000),
        orElse: () => Effect.succeed({ stdout: "", stderr: "", exitCode: -1, truncated: false, timedOut: true, forkRefused: false })
      }),
      Effect.mapError((error) =>
        new ToolFailed({ message: `${tool}: the sandbox could not run the command: ${error.message}`, key: tool })
      ),
      Effect.flatMap((result): Effect.Effect<ExecResult, ToolFailed | ToolInputInvalid> =>
        result.timedOut
          ? Effect.fail(
            new ToolFailed({
              message: `${tool}: the command timed out after ${timeoutMs} ms and was killed; make it faster or split it`,
              key: tool
            })
          )
          : result.exitCode === escapeExit && dialect === "posix" && result.stderr.includes("outside the workspace")
          ? Effect.fail(
            new ToolInputInvalid({
              message: `${tool}: the path resolves outside ${workspaceRoot} (through a symbolic link); use a path inside it`,
              key: tool
            })
          )
          : Effect.succeed(result)
      )
    )

  const truncatedNote = (result: ExecResult) =>
    (result.truncated ? `\n[output truncated at ${maxOutputBytes} bytes]` : "") +
    (result.forkRefused
      ? "\n[E2050: the sandbox was refused a new process: it reached its process limit (resources.pids); start fewer processes at once, or ask the operator to raise resources.pids]"
      : "")

  const shell: AgentTool = {
    definition: {
      name: "shell",
      description:
        `Runs a shell command in the sandbox with ${workspaceRoot} as working directory and returns its exit code, stdout and stderr.`,
      parameters: {
        type: "object",
        properties: {
          command: { type: "string", minLength: 1, description: "The command line, run by sh -c." },
          timeoutSeconds: { type: "number", exclusiveMinimum: 0, description: `At most ${maxTimeoutMs / 1000}.` }
        },
        required: ["command"],
        additionalProperties: false
      }
    },
    run: (input) => {
      const command = input.command as string
      const timeoutMs = Math.min(maxTimeoutMs, typeof input.timeoutSeconds === "number" ? input.timeoutSeconds * 1000 : maxTimeoutMs)
      const argv = dialect === "posix" ? ["sh", "-c", command] : command.trim().split(/\s+/)
      return Effect.map(exec("shell", { command: argv }, timeoutMs), (result): ToolOutput => ({
        content: `exit code ${result.exitCode}\n--- stdout ---\n${result.stdout}\n--- stderr ---\n${result.stderr}${truncatedNote(result)}`,
        isError: result.exitCode !== 0
      }))
    }
  }

  const readFile: AgentTool = {
    definition: {
      name: "read_file",
      description: `Reads a text file of the workspace (${workspaceRoot}).`,
      parameters: {
        type: "object",
        properties: { path: { type: "string", minLength: 1, description: `Relative to ${workspaceRoot}, or absolute under it.` } },
        required: ["path"],
        additionalProperties: false
      }
    },
    run: (input) =>
      Effect.gen(function*() {
        const path = yield* confinePath("read_file", input.path as string)
        const command = dialect === "posix"
          ? ["sh", "-c", `${prelude}check "$1"; [ -f "$1" ] || { echo "no such file: $1" >&2; exit 1; }; cat -- "$1"`, "sh", path]
          : ["l02-read", path]
        const result = yield* exec("read_file", { command })
        return result.exitCode === 0
          ? { content: `${result.stdout}${truncatedNote(result)}` }
          : { content: `cannot read ${input.path as string}: ${result.stderr.trim()}`, isError: true }
      })
  }

  const writeFile: AgentTool = {
    definition: {
      name: "write_file",
      description: `Writes a text file of the workspace (${workspaceRoot}), creating its directories; replaces an existing file.`,
      parameters: {
        type: "object",
        properties: {
          path: { type: "string", minLength: 1, description: `Relative to ${workspaceRoot}, or absolute under it.` },
          content: { type: "string" }
        },
        required: ["path", "content"],
        additionalProperties: false
      }
    },
    run: (input) =>
      Effect.gen(function*() {
        const path = yield* confinePath("write_file", input.path as string)
        if (path === ".") {
          return yield* Effect.fail(new ToolInputInvalid({ message: "write_file: the path names the workspace itself; name a file", key: "write_file" }))
        }
        const content = input.content as string
        const request = dialect === "posix"
          ? {
            command: ["sh", "-c", `${prelude}check "$1"; mkdir -p -- "$(dirname -- "$1")" && cat > "$1"`, "sh", path],
            stdin: content
          }
          : { command: ["l02-write", path, content] }
        const result = yield* exec("write_file", request)
        return result.exitCode === 0
          ? { content: `wrote ${new TextEncoder().encode(content).length} bytes to ${workspaceRoot}/${path}` }
          : { content: `cannot write ${input.path as string}: ${result.stderr.trim()}`, isError: true }
      })
  }

  const listFiles: AgentTool = {
    definition: {
      name: "list_files",
      description: `Lists files under a directory of the workspace (${workspaceRoot}); directories end with "/".`,
      parameters: {
        type: "object",
        properties: {
          path: { type: "string", description: `Directory, default ${workspaceRoot}.` },
          depth: { type: "integer", minimum: 1, maximum: 10, description: "How deep to descend, default 2." }
        },
        additionalProperties: false
      }
    },
    run: (input) =>
      Effect.gen(function*() {
        const path = yield* confinePath("list_files", typeof input.path === "string" ? input.path : ".")
        const depth = typeof input.depth === "number" ? input.depth : 2
        const result = yield* exec("list_files", {
          command: [
            "sh",
            "-c",
            `${prelude}check "$1"; [ -d "$1" ] || { echo "no such directory: $1" >&2; exit 1; }
find "$1" -mindepth 1 -maxdepth "$2" | while IFS= read -r f; do
  r=\${f#"$1"/}; if [ -d "$f" ] && [ ! -L "$f" ]; then echo "$r/"; else echo "$r"; fi
done | LC_ALL=C sort | head -n 1000`,
            "sh",
            path,
            String(depth)
          ]
        })
        return result.exitCode === 0
          ? { content: result.stdout === "" ? "(empty)" : `${result.stdout}${truncatedNote(result)}` }
          : { content: `cannot list ${typeof input.path === "string" ? input.path : workspaceRoot}: ${result.stderr.trim()}`, isError: true }
      })
  }

  return dialect === "posix" ? [shell, readFile, writeFile, listFiles] : [shell, readFile, writeFile]
}
