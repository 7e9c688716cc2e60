// Shell scripts the backend runs in a sandbox over exec. The exec API has no way to kill what it
// started, to set a working directory or environment, so a small wrapper records its shell's pid in
// a file on the Pod's /tmp volume and a second exec kills that process tree on timeout.

/** Quotes a string for a POSIX shell command line. */
export const shellQuote = (value: string): string => `'${value.replaceAll("'", `'"'"'`)}'`

/**
 * Runs `"$@"` after recording the shell's pid in `${TMPDIR:-/tmp}/.l02-exec-$0`; `$1` is the working
 * directory ("" keeps the container's), `$2` how standard input arrives (see {@link ExecInputMode}).
 * The file is removed at the end so a late killer finds nothing.
 *
 * The exec's own stdin is never ended by the client: on the `v4.channel.k8s.io` protocol (API servers
 * before about 1.30) the only way to end it is to close the WebSocket, and the exit status would be
 * lost with it. So the input is bounded instead: a byte count read by `head -c`, or base64 lines ended
 * by a line `.`; the command reads it from a FIFO, and the shell waits for the command alone, so a
 * command that exits without reading all of it ends the exec at once.
 */
export const execWrapper = [
  'f="${TMPDIR:-/tmp}/.l02-exec-$0"; echo $$ > "$f"',
  'if [ -n "$1" ]; then cd "$1" || { rm -f "$f"; exit 126; }; fi',
  'm="$2"; shift 2',
  'if [ -z "$m" ]; then "$@"; c=$?',
  'else',
  '  p="$f.in"; rm -f "$p"; mkfifo -m 600 "$p" || { rm -f "$f"; exit 126; }',
  '  exec 3<&0',
  '  if [ "$m" = lines ]; then',
  '    ( while IFS= read -r l <&3 && [ "$l" != . ]; do printf %s "$l" | base64 -d || exit 1; done ) >"$p" 2>/dev/null &',
  '  else head -c "$m" <&3 >"$p" 2>/dev/null & fi',
  '  d=$!',
  '  "$@" <"$p" 3<&-; c=$?',
  '  kill "$d" 2>/dev/null; rm -f "$p"',
  'fi',
  'rm -f "$f"; exit $c'
].join("\n")

/**
 * How an exec's standard input reaches its command: none, a known number of bytes, or a stream of
 * base64 lines ended by `.` (see {@link execWrapper}).
 */
export type ExecInputMode = { readonly _tag: "none" } | { readonly _tag: "bytes"; readonly length: number } | { readonly _tag: "lines" }

const modeArgument = (mode: ExecInputMode): string => (mode._tag === "none" ? "" : mode._tag === "bytes" ? String(mode.length) : "lines")

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
  options: { readonly workingDir?: string | undefined; readonly env?: Readonly<Record<string, string>> | undefined; readonly input?: ExecInputMode | undefined }
): Array<string> => {
  const env = Object.entries(options.env ?? {}).map(([k, v]) => `${k}=${v}`)
  return ["/bin/sh", "-c", execWrapper, execId, options.workingDir ?? "", modeArgument(options.input ?? { _tag: "none" }), ...(env.length === 0 ? [] : ["env", ...env]), ...command]
}

/** Opens the gate: the init container ends and the agent container starts. */
export const openGateScript = 'touch "${TMPDIR:-/tmp}/.l02-start"'

/** Writes the workspace as a tar to stdout. */
export const exportScript = 'cd "${L02_WORKSPACE:-/workspace}" && tar -cf - .'

/** Extracts a tar from stdin into the workspace. */
export const importScript = 'mkdir -p "${L02_WORKSPACE:-/workspace}" && tar -xf - -C "${L02_WORKSPACE:-/workspace}"'
