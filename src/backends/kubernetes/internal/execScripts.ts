// Shell scripts the backend runs in a sandbox over exec. The exec API has no way to kill what it
// started, to set a working directory or environment, so a small wrapper records its shell's pid in
// a file on the Pod's /tmp volume and a second exec kills that process tree on timeout.

/** Quotes a string for a POSIX shell command line. */
export const shellQuote = (value: string): string => `'${value.replaceAll("'", `'"'"'`)}'`

/**
 * Runs `"$@"` after recording the shell's pid in `${TMPDIR:-/tmp}/.l02-exec-$0`; `$1` is the working
 * directory ("" keeps the container's). The file is removed at the end so a late killer finds nothing.
 */
export const execWrapper =
  'f="${TMPDIR:-/tmp}/.l02-exec-$0"; echo $$ > "$f"; if [ -n "$1" ]; then cd "$1" || { rm -f "$f"; exit 126; }; fi; shift; "$@"; c=$?; rm -f "$f"; exit $c'

/** Kills the process tree recorded by {@link execWrapper} under the id `$0`; children found from /proc (images need no pgrep). */
export const execKiller = [
  'kids() { for s in /proc/[0-9]*/stat; do read -r pid comm state ppid rest < "$s" 2>/dev/null && [ "$ppid" = "$1" ] && echo "$pid"; done; }',
  'kill_tree() { kill -STOP "$1" 2>/dev/null; for c in $(kids "$1"); do kill_tree "$c"; done; kill -KILL "$1" 2>/dev/null; }',
  'f="${TMPDIR:-/tmp}/.l02-exec-$0"; p=$(cat "$f" 2>/dev/null) && kill_tree "$p"; rm -f "$f"'
].join("\n")

/** The command of an exec: the wrapper around the request's command, with its environment through `env`. */
export const wrappedCommand = (
  execId: string,
  command: ReadonlyArray<string>,
  options: { readonly workingDir?: string | undefined; readonly env?: Readonly<Record<string, string>> | undefined }
): Array<string> => {
  const env = Object.entries(options.env ?? {}).map(([k, v]) => `${k}=${v}`)
  return ["/bin/sh", "-c", execWrapper, execId, options.workingDir ?? "", ...(env.length === 0 ? [] : ["env", ...env]), ...command]
}

/** Opens the gate: the init container ends and the agent container starts. */
export const openGateScript = 'touch "${TMPDIR:-/tmp}/.l02-start"'

/** Writes the workspace as a tar to stdout. */
export const exportScript = 'cd "${L02_WORKSPACE:-/workspace}" && tar -cf - .'

/** Extracts a tar from stdin into the workspace. */
export const importScript = 'mkdir -p "${L02_WORKSPACE:-/workspace}" && tar -xf - -C "${L02_WORKSPACE:-/workspace}"'
