/**
 * `l02 exec`, `l02 attach`, `l02 cancel` and `l02 runs`: every step is a durable run. `exec` starts
 * one and follows it (or, with --detach, prints its id); Ctrl-C detaches without cancelling and says
 * how to continue; `attach RUN --from N` reads a run from any sequence number; `cancel RUN` cancels.
 * A run goes on after the command only when a server holds it (`l02 serve`, --url, L02_URL); embedded,
 * it ends with the command (interrupted, E2036).
 */
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { Argument, Command, Flag } from "effect/cli"
import type { ErrorData } from "../domain/ErrorCatalog.ts"
import { fromErrorData } from "../domain/Errors.ts"
import type { ExecutionRun } from "../domain/ExecutionRun.ts"
import type { ExecuteEvent } from "../runtime/AgentRuntimeApi.ts"
import { global, type Global, print, table, withRuntime } from "./commandSupport.ts"
import type { CliRuntime } from "./remote.ts"
import { makeRenderer } from "./render.ts"

const runIdArg = Argument.String("run-id").pipe(Argument.withDescription("the run's id (l02 exec prints it; l02 runs lists them)"))

/**
 * Follows a run from `from` until its end, printing each event (with --json: `events` says which
 * form). Ctrl-C stops reading and says how to go on; the run itself is not cancelled. A run that did
 * not complete fails the command with its coded error.
 */
const follow = async (g: Global, rt: CliRuntime, runId: string, from: number, events: "execute" | "run", held: boolean) => {
  const show = makeRenderer({ out: (t) => process.stdout.write(t), err: (t) => process.stderr.write(t) })
  const iterator = rt.runs.attach(runId, { from })[Symbol.asyncIterator]()
  let last = from
  let detach!: () => void
  const detached = new Promise<"detached">((resolve) => (detach = () => resolve("detached")))
  const onSigint = () => {
    detach()
    process.stderr.write(
      held
        ? `\ndetached from run ${runId} after event ${last}; it goes on. l02 attach ${runId} --from ${last} continues, l02 cancel ${runId} cancels it\n`
        : `\nrun ${runId} stops with this command (no l02 serve holds the data directory): it ends interrupted after event ${last}; start l02 serve to keep runs going\n`
    )
  }
  process.once("SIGINT", onSigint)
  try {
    for (;;) {
      const next = await Promise.race([iterator.next(), detached])
      if (next === "detached") return
      if (next.done === true) {
        // Attached after its end (--from past it): the run's record says how it ended.
        const run = await rt.runs.get(runId)
        if (run.error !== undefined) throw fromErrorData(run.error)
        return
      }
      const recorded = next.value
      last = recorded.seq
      if (recorded.event.type === "end") {
        const error = (recorded.event as { error?: ErrorData }).error
        if (g.json && events === "run") console.log(JSON.stringify(recorded))
        if (error !== undefined) throw fromErrorData(error)
        return
      }
      if (g.json) console.log(JSON.stringify(events === "run" ? recorded : recorded.event))
      else show(recorded.event as unknown as ExecuteEvent)
    }
  } finally {
    process.removeListener("SIGINT", onSigint)
    void iterator.return?.().catch(() => undefined)
  }
}

/** `l02 exec AGENT INPUT...`: one step as a run, followed (or, with --detach, its id printed). */
export const exec = Command.make(
  "exec",
  {
    ...global,
    agentId: Argument.String("agent-id").pipe(Argument.withDescription("the agent's id (l02 ls lists them)")),
    input: Argument.String("input").pipe(Argument.atLeast(1), Argument.withDescription("what to send the agent: the words after the id, joined by spaces (quote them to keep spacing as typed)")),
    detach: Flag.Boolean("detach").pipe(Flag.withDescription("start the step and print its run id at once (follow it with l02 attach)"), Flag.withDefault(false))
  },
  (a) =>
    withRuntime(a, async (rt) => {
      // A suspended agent is resumed for the step and stays running: say so rather than do it silently.
      const before = await rt.getState(a.agentId)
      if (before.state === "suspended") {
        console.error(`agent ${a.agentId} is suspended: resuming it for this step; it stays running afterwards (l02 suspend to pause it again)`)
      }
      const run = await rt.runs.start(a.agentId, a.input.join(" "))
      if (a.detach) return { run }
      // Held by a server, the run outlives this command: say how to find it again.
      const held = rt.server !== undefined
      if (held && !a.json) console.error(`run ${run.runId} (Ctrl-C detaches; l02 attach ${run.runId} follows it again)`)
      await follow(a, rt, run.runId, 0, "execute", held)
      return undefined
    }).pipe(Effect.flatMap((started) => (started === undefined ? Effect.void : print(a, started.run, () => started.run.runId))))
).pipe(
  Command.withDescription("Send input to an agent as a durable run and stream its answer (Ctrl-C detaches; the run goes on in l02 serve)"),
  Command.withExamples([
    { command: `l02 exec 6f1c2d0e-9a4b-4c1e-8f55-2f1d3a7b9c10 "summarise README.md"`, description: "one step; the answer streams as it comes" },
    { command: `l02 exec 6f1c2d0e-9a4b-4c1e-8f55-2f1d3a7b9c10 --detach "long task"`, description: "start it and print the run id" }
  ])
)

/** `l02 attach RUN [--from N]`: a run's events after N, then the live ones, until its end. */
export const attach = Command.make(
  "attach",
  {
    ...global,
    runId: runIdArg,
    from: Flag.Int("from").pipe(Flag.withDescription("start after this sequence number (default 0: from the first event)"), Flag.optional)
  },
  (a) => withRuntime(a, (rt) => follow(a, rt, a.runId, Option.getOrElse(a.from, () => 0), "run", rt.server !== undefined))
).pipe(
  Command.withDescription("Follow a run: the events after --from, then the live ones, until it ends (Ctrl-C detaches)"),
  Command.withExamples([{ command: `l02 attach 0b7e9f4c-1d2a-4e3b-9c8d-7a6b5c4d3e2f --from 41`, description: "what happened since event 41, then the rest" }])
)

/** `l02 cancel RUN`. */
export const cancel = Command.make("cancel", { ...global, runId: runIdArg }, (a) =>
  withRuntime(a, (rt) => rt.runs.cancel(a.runId)).pipe(Effect.flatMap((run) => print(a, run, () => `${run.runId} ${run.status} after event ${run.lastSeq}`)))
).pipe(
  Command.withDescription("Cancel a running run: the step stops and the agent goes back to idle (an ended run is shown as it is)"),
  Command.withExamples([{ command: `l02 cancel 0b7e9f4c-1d2a-4e3b-9c8d-7a6b5c4d3e2f`, description: "stop a step started with l02 exec" }])
)

const runRow = (r: ExecutionRun) => [r.runId, r.agentId, r.status, String(r.lastSeq), r.startedAt, r.endedAt ?? "-", r.error?.code ?? ""]

/** `l02 runs [AGENT]`: runs, newest first. */
export const runs = Command.make("runs", { ...global, agentId: Argument.String("agent-id").pipe(Argument.withDescription("only the runs of this agent"), Argument.optional) }, (a) =>
  withRuntime(a, (rt) => rt.runs.list(Option.isSome(a.agentId) ? { agentId: a.agentId.value } : {})).pipe(
    Effect.flatMap((list) => print(a, list, () => table([["RUN", "AGENT", "STATUS", "EVENTS", "STARTED", "ENDED", "ERROR"], ...list.map(runRow)])))
  )
).pipe(Command.withDescription("List execute runs, newest first"), Command.withExamples([{ command: `l02 runs 6f1c2d0e-9a4b-4c1e-8f55-2f1d3a7b9c10`, description: "an agent's runs with their status and event count" }]))
