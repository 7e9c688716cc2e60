/**
 * `l02 workflow`: run a WorkflowGraph file and follow its progress, list and show runs, signal an
 * approval node, cancel a run. Against a server (--url, L02_URL, or the `l02 serve` holding the data
 * directory) or embedded; an embedded run goes on only while the command runs (Ctrl-C stops it, and
 * the next runtime on the data directory resumes it).
 */
import { readFileSync } from "node:fs"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { Argument, Command, Flag } from "effect/cli"
import { parse as parseYaml } from "yaml"
import { InputInvalid } from "../domain/Errors.ts"
import type { LifecycleEvent } from "../domain/LifecycleEvent.ts"
import type { WorkflowRun } from "../domain/WorkflowRun.ts"
import { global, type Global, print, table, withRuntime } from "./commandSupport.ts"

const parseJsonFlag = (raw: Option.Option<string>, flag: string): Effect.Effect<unknown, InputInvalid> =>
  Option.isNone(raw)
    ? Effect.succeed(undefined)
    : Effect.try({
        try: () => JSON.parse(raw.value) as unknown,
        catch: (e) => new InputInvalid({ message: `${flag} is not JSON: ${e instanceof Error ? e.message : String(e)}`, key: flag.replace(/^--/, "") })
      })

const readGraph = (file: string): Effect.Effect<unknown, InputInvalid> =>
  Effect.try({
    try: () => parseYaml(readFileSync(file, "utf8")) as unknown,
    catch: (e) => new InputInvalid({ message: `${file} cannot be read as a YAML or JSON workflow graph: ${e instanceof Error ? e.message : String(e)}`, key: "file" })
  })

/** One progress line of a run's event, for people; undefined for events not worth a line. */
export const progressLineOf = (event: LifecycleEvent): string | undefined => {
  const data = (event.data ?? {}) as { node?: string; attempt?: number; error?: { code: string; message: string }; delayMs?: number; reason?: string }
  const node = data.node ?? ""
  switch (event.type) {
    case "workflow.started":
      return "run started"
    case "workflow.node.started":
      return `▶ ${node}${data.attempt !== undefined && data.attempt > 0 ? ` (try ${data.attempt + 1})` : ""}`
    case "workflow.node.completed":
      return `✓ ${node}`
    case "workflow.node.skipped":
      return `- ${node} skipped`
    case "workflow.node.waiting":
      return `… ${node} waits for a signal: l02 workflow signal ${(event.data as { workflowId: string }).workflowId} ${node} '<JSON value>'`
    case "workflow.node.retry":
      return `↻ ${node} failed (${data.error?.code}: ${data.error?.message}); trying again in ${data.delayMs} ms`
    case "workflow.node.failed":
      return `✗ ${node} failed: ${data.error?.code}: ${data.error?.message}`
    case "workflow.node.cancelled":
      return `✗ ${node} stopped`
    case "workflow.compensation.started":
      return `↺ compensating ${node}`
    case "workflow.signalled":
      return `signal to ${node}`
    case "workflow.completed":
    case "workflow.failed":
    case "workflow.cancelled":
      return `run ${event.type.slice("workflow.".length)}`
    default:
      return undefined
  }
}

const summary = (run: WorkflowRun): string =>
  [
    `${run.workflowId}  ${run.name}  ${run.state}${run.error === undefined ? "" : `  ${run.error.code}: ${run.error.message}`}`,
    table([["NODE", "STATE", "TRIES", "AGENT"], ...Object.entries(run.nodes).map(([id, n]) => [id, n.state, String(n.attempts), n.agentId ?? "-"])])
  ].join("\n")

const runCommand = Command.make(
  "run",
  {
    ...global,
    file: Argument.String("file").pipe(Argument.withDescription("a WorkflowGraph document, YAML or JSON (docs/workflows.md)")),
    input: Flag.String("input").pipe(Flag.withDescription("the run's input as JSON, read by {{ input.<path> }}"), Flag.optional),
    detach: Flag.Boolean("detach").pipe(Flag.withDescription("print the run's id and return (use with a server: an embedded run stops with the command)"), Flag.withDefault(false))
  },
  (a) =>
    Effect.gen(function* () {
      const graph = yield* readGraph(a.file)
      const input = yield* parseJsonFlag(a.input, "--input")
      const run = yield* withRuntime(a, async (rt) => {
        const started = await rt.workflows.start(graph, input)
        if (a.detach) return started
        if (!a.json) console.error(`workflow ${started.name}: run ${started.workflowId}`)
        for await (const event of rt.workflows.events(started.workflowId)) {
          const line = a.json ? undefined : progressLineOf(event)
          if (line !== undefined) console.error(line)
        }
        return rt.workflows.get(started.workflowId)
      })
      yield* print(a, run, () => (a.detach ? run.workflowId : `${summary(run)}${run.output === undefined ? "" : `\noutput: ${JSON.stringify(run.output)}`}`))
      if (!a.detach && run.state !== "completed") yield* Effect.fail(new InputInvalid({ message: `the run ended ${run.state}`, key: "run" }))
    })
).pipe(
  Command.withDescription("Run a workflow graph and follow its progress"),
  Command.withExamples([
    { command: "l02 workflow run docs/examples/review.yaml --input '{\"topic\":\"parsers\"}'", description: "run the worked example of docs/workflows.md" },
    { command: "l02 workflow run graph.yaml --detach --url http://127.0.0.1:8080", description: "start it on a server and return" }
  ])
)

const runId = Argument.String("workflow-id").pipe(Argument.withDescription("the run's id (l02 workflow ls lists them)"))

const lsCommand = Command.make("ls", global, (g: Global) =>
  withRuntime(g, (rt) => rt.workflows.list()).pipe(
    Effect.flatMap((runs) =>
      print(g, runs, () => table([["RUN", "NAME", "STATE", "CREATED", "UPDATED"], ...runs.map((r) => [r.workflowId, r.name, r.state, r.createdAt, r.updatedAt])]))
    )
  )
).pipe(Command.withDescription("List workflow runs"))

const getCommand = Command.make("get", { ...global, workflowId: runId }, (a) =>
  withRuntime(a, (rt) => rt.workflows.get(a.workflowId)).pipe(Effect.flatMap((run) => print(a, run, () => summary(run))))
).pipe(Command.withDescription("Show a run: its state and every node's"))

const signalCommand = Command.make(
  "signal",
  {
    ...global,
    workflowId: runId,
    node: Argument.String("node").pipe(Argument.withDescription("the approval node that waits")),
    value: Argument.String("value").pipe(Argument.withDescription("the node's output as JSON, e.g. '{\"approved\":true}'"), Argument.optional)
  },
  (a) =>
    Effect.gen(function* () {
      const value = yield* parseJsonFlag(a.value, "value")
      const run = yield* withRuntime(a, (rt) => rt.workflows.signal(a.workflowId, a.node, value))
      yield* print(a, run, () => `signalled ${a.node}; run ${run.workflowId} is ${run.state}`)
    })
).pipe(
  Command.withDescription("Complete a waiting approval node with a value"),
  Command.withExamples([{ command: "l02 workflow signal 6f1c2d0e-9a4b-4c1e-8f55-2f1d3a7b9c10 approve '{\"approved\":true}'", description: "approve" }])
)

const cancelCommand = Command.make(
  "cancel",
  { ...global, workflowId: runId, reason: Flag.String("reason").pipe(Flag.withDescription("recorded with the run's events"), Flag.optional) },
  (a) =>
    withRuntime(a, (rt) => rt.workflows.cancel(a.workflowId, Option.getOrUndefined(a.reason))).pipe(
      Effect.flatMap((run) => print(a, run, () => `cancelling run ${run.workflowId}: running nodes stop, compensations run`))
    )
).pipe(Command.withDescription("Cancel a run"))

/** `l02 workflow`. */
export const workflowCommand = Command.make("workflow").pipe(
  Command.withDescription("Multi-agent workflows: run a graph, list, show, signal, cancel (docs/workflows.md)"),
  Command.withSubcommands([runCommand, lsCommand, getCommand, signalCommand, cancelCommand])
)

