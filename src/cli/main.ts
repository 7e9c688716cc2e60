/**
 * The `l02` command line. Every command goes through the public runtime API (createRuntime), embedded
 * in this process with the configured backend and store.
 */
import { readFileSync } from "node:fs"
import { parse as parseYaml } from "yaml"
import { mkdir, writeFile } from "node:fs/promises"
import { join } from "node:path"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { Argument, Command, Flag } from "effect/cli"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as NodeServices from "@effect/platform-node/NodeServices"
import { ConfigInvalid, InputInvalid, isRuntimeError } from "../domain/Errors.ts"
import { createRuntime } from "../runtime/createRuntime.ts"
import { buildAgentImage, isolationInForce } from "../runtime/liveLayer.ts"
import { loadConfigSync } from "../runtime/loadConfig.ts"
import type { MachineName } from "../runtime/inspector.ts"
import { global, optionsOf, print, progress, table, withRuntime } from "./commandSupport.ts"
import { workflowCommand } from "./workflowCommands.ts"
import { attach, cancel, exec, runs } from "./runCommands.ts"
import { announceServe } from "./serveDiscovery.ts"


const demo = Command.make("demo", global, (g) =>
  Effect.tryPromise({
    try: async () => (await import("./demo.ts")).runDemo({ ...optionsOf(g), backend: Option.getOrElse(g.backend, () => "process" as const) }),
    catch: (e) => e
  })
).pipe(Command.withDescription("Run an agent through its whole lifecycle on the embedded runtime and print every state change"), Command.withExamples([{ command: `l02 demo`, description: "the lifecycle on the process backend (npm start)" }]))

const config = Command.make("config", global, (g) =>
  Effect.try({
    try: () =>
      loadConfigSync({ file: Option.getOrUndefined(g.config), env: process.env, overrides: { runtime: { ...(Option.isSome(g.backend) ? { backend: g.backend.value } : {}), ...(Option.isSome(g.dataDir) ? { data_dir: g.dataDir.value } : {}) } } }),
    catch: (e) => e
  }).pipe(
    Effect.flatMap((c) =>
      Effect.andThen(
        Console.log(JSON.stringify(c, null, 2)),
        // What is in force goes to stderr, so stdout stays a configuration file.
        Effect.flatMap(Effect.promise(() => isolationInForce(c)), (inForce) =>
          Console.error(`\nin force on this host (${c.runtime.backend} backend):\n${Object.entries(inForce).map(([k, v]) => `  ${k}: ${v}`).join("\n")}`)
        )
      )
    )
  )
).pipe(Command.withDescription("Print the effective configuration (defaults, file, environment), then what the backend enforces on this host (to stderr)"), Command.withExamples([{ command: `l02 config --config ./l02.yaml`, description: "defaults merged with a file and L02_* variables" }]))

/** The agent config of --agent-config (YAML or JSON), or an empty one; a file that is not one is E2001. */
const readAgentConfig = (file: Option.Option<string>): Effect.Effect<Record<string, unknown>, unknown> =>
  Option.isNone(file)
    ? Effect.succeed({})
    : Effect.try({
      try: () => {
        const parsed: unknown = parseYaml(readFileSync(file.value, "utf8"))
        if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw new Error("it holds no mapping of agent config fields")
        return parsed as Record<string, unknown>
      },
      catch: (e) => new InputInvalid({ message: `--agent-config ${file.value} is not an agent config: ${e instanceof Error ? e.message : String(e)}`, key: "agent-config" })
    })

const spawn = Command.make(
  "spawn",
  {
    ...global,
    name: Argument.String("name").pipe(Argument.withDescription("the agent's name (letters, digits, . _ -)")),
    trust: Flag.Literals("trust", ["TRUSTED", "STANDARD", "UNTRUSTED", "CONFIDENTIAL"] as const).pipe(
      Flag.withDescription("trust level: TRUSTED (runc; the process backend hosts only these), STANDARD (gVisor, the default), UNTRUSTED (Kata), CONFIDENTIAL (Kata CC)"),
      Flag.optional
    ),
    image: Flag.String("image").pipe(Flag.withDescription("container image (docker and kubernetes backends; default docker.default_image)"), Flag.optional),
    cpu: Flag.String("cpu").pipe(Flag.withDescription('CPU limit, e.g. "500m" or "2" (default sandbox.default_cpu)'), Flag.optional),
    memory: Flag.String("memory").pipe(Flag.withDescription('memory limit, e.g. "512Mi" or "2Gi" (default sandbox.default_memory)'), Flag.optional),
    command: Flag.String("command").pipe(Flag.withDescription('the agent\'s program, run as sh -c COMMAND in its sandbox (default: the backend\'s agent)'), Flag.optional),
    model: Flag.String("model").pipe(Flag.withDescription("a model endpoint the operator declared (execution.models.NAME in the configuration)"), Flag.optional),
    agentConfig: Flag.String("agent-config").pipe(
      Flag.withDescription("a YAML or JSON file holding a whole agent config; the other flags override its fields (--config is the runtime's configuration)"),
      Flag.optional
    )
  },
  (a) =>
    Effect.flatMap(readAgentConfig(a.agentConfig), (base) =>
      withRuntime(a, (rt) =>
        progress(a, `spawning ${a.name}`, () =>
          rt.spawn({
            ...base,
            name: a.name,
            ...(Option.isSome(a.trust) ? { trustLevel: a.trust.value } : {}),
            ...(Option.isSome(a.image) ? { image: a.image.value } : {}),
            ...(Option.isSome(a.command) ? { command: ["/bin/sh", "-c", a.command.value] } : {}),
            ...(Option.isSome(a.model) ? { model: { endpoint: a.model.value } } : {}),
            ...(Option.isSome(a.cpu) || Option.isSome(a.memory)
              ? {
                resources: {
                  ...(base.resources as object | undefined),
                  ...(Option.isSome(a.cpu) ? { cpu: a.cpu.value } : {}),
                  ...(Option.isSome(a.memory) ? { memory: a.memory.value } : {})
                }
              }
              : {})
          })
        )
      )
    ).pipe(Effect.flatMap((r) => print(a, r, () => `${r.agentId}  ${r.state}  sandbox ${r.sandboxId ?? "-"}`)))
).pipe(
  Command.withDescription("Spawn an agent and print its id"),
  Command.withExamples([
    { command: "l02 spawn worker --trust TRUSTED", description: "spawn on the embedded process backend" },
    { command: "l02 spawn helper --trust TRUSTED --model default", description: "an agent with a model the operator declared" },
    { command: "l02 spawn custom --agent-config ./agent.yaml", description: "a whole agent config from a file" }
  ])
)

const ls = Command.make("ls", global, (g) =>
  withRuntime(g, (rt) => rt.list()).pipe(
    Effect.flatMap((agents) =>
      print(g, agents, () =>
        table([["AGENT", "NAME", "STATE", "TRUST", "RESTARTS", "UPDATED"], ...agents.map((i) => [i.agentId, i.name, i.activity ? `${i.state}/${i.activity}` : i.state, i.sandbox.trustLevel, String(i.restartCount), i.updatedAt])])
      )
    )
  )
).pipe(Command.withDescription("List agents"), Command.withExamples([{ command: `l02 ls --json`, description: "every agent as JSON" }]))

const idArg = Argument.String("agent-id").pipe(Argument.withDescription("the agent's id (l02 ls lists them)"))
const get = Command.make("get", { ...global, agentId: idArg }, (a) =>
  withRuntime(a, (rt) => rt.getState(a.agentId)).pipe(Effect.flatMap((i) => Console.log(JSON.stringify(i, null, 2))))
).pipe(Command.withDescription("Show one agent"), Command.withExamples([{ command: `l02 get 6f1c2d0e-9a4b-4c1e-8f55-2f1d3a7b9c10`, description: "one agent's state, sandbox, usage and last error" }]))

const suspend = Command.make("suspend", { ...global, agentId: idArg, checkpoint: Flag.Boolean("checkpoint").pipe(Flag.withDescription("checkpoint the workspace and state, and remove the sandbox, instead of pausing it"), Flag.withDefault(false)) }, (a) =>
  withRuntime(a, (rt) => progress(a, a.checkpoint ? "checkpointing" : "suspending", () => rt.suspend(a.agentId, { checkpoint: a.checkpoint }))).pipe(
    Effect.flatMap((checkpointId) => print(a, { checkpointId: checkpointId ?? null }, () => (checkpointId === undefined ? "suspended (paused)" : `suspended, checkpoint ${checkpointId}`)))
  )
).pipe(Command.withDescription("Suspend an agent (pause, or --checkpoint)"), Command.withExamples([{ command: `l02 suspend 6f1c2d0e-9a4b-4c1e-8f55-2f1d3a7b9c10 --checkpoint`, description: "checkpoint the workspace and remove the sandbox" }]))

const resume = Command.make("resume", { ...global, agentId: idArg, checkpointId: Argument.String("checkpoint-id").pipe(Argument.optional) }, (a) =>
  withRuntime(a, (rt) => progress(a, "resuming", () => rt.resume(a.agentId, Option.getOrUndefined(a.checkpointId)))).pipe(Effect.flatMap((state) => print(a, { state }, () => state)))
).pipe(Command.withDescription("Resume a suspended agent"), Command.withExamples([{ command: `l02 resume 6f1c2d0e-9a4b-4c1e-8f55-2f1d3a7b9c10`, description: "unpause, or restore the last checkpoint" }]))

const checkpoints = Command.make("checkpoints", { ...global, agentId: idArg }, (a) =>
  withRuntime(a, (rt) => rt.checkpoints(a.agentId)).pipe(
    Effect.flatMap((list) =>
      print(a, list, () =>
        table([["CHECKPOINT", "TYPE", "BYTES", "CREATED", "EXPIRES"], ...list.map((c) => [c.checkpointId, c.checkpointType, String(c.sizeBytes), c.createdAt, c.expiresAt ?? "-"])])
      )
    )
  )
).pipe(Command.withDescription("List an agent's checkpoints"), Command.withExamples([{ command: `l02 checkpoints 6f1c2d0e-9a4b-4c1e-8f55-2f1d3a7b9c10 --json`, description: "checkpoints with their sizes and expiry" }]))

const terminate = Command.make("terminate", { ...global, agentId: idArg, force: Flag.Boolean("force").pipe(Flag.withDescription("kill at once instead of a graceful stop"), Flag.withDefault(false)) }, (a) =>
  withRuntime(a, (rt) => rt.terminate(a.agentId, { force: a.force, reason: "l02 terminate" })).pipe(Effect.flatMap(() => print(a, { state: "terminated" }, () => "terminated")))
).pipe(Command.withDescription("Terminate an agent"), Command.withExamples([{ command: `l02 terminate 6f1c2d0e-9a4b-4c1e-8f55-2f1d3a7b9c10 --force`, description: "kill at once instead of a graceful stop" }]))

const serveCommand = Command.make(
  "serve",
  {
    ...global,
    port: Flag.Int("port").pipe(Flag.withDescription("TCP port (default http.port; 0 picks a free one)"), Flag.optional),
    host: Flag.String("host").pipe(Flag.withDescription("interface (default http.host, 127.0.0.1)"), Flag.optional),
    inspect: Flag.Boolean("inspect").pipe(Flag.withDescription("stream every actor to the Stately inspector through a local bridge (docs/inspector.md)"), Flag.withDefault(false)),
    cluster: Flag.Boolean("cluster").pipe(
      Flag.withDescription("serve as a runner of a fleet shared with other supervisors on the PostgreSQL store (cluster.enabled, docs/cluster.md)"),
      Flag.withDefault(false)
    )
  },
  (a) =>
    Effect.gen(function* () {
      const inspector = a.inspect
        ? yield* Effect.acquireRelease(Effect.tryPromise({ try: async () => (await import("../runtime/inspector.ts")).createLocalInspector(), catch: (e) => e }), (i) => Effect.promise(() => i.stop()))
        : undefined
      const runtime = yield* Effect.acquireRelease(
        Effect.tryPromise({
          try: () => createRuntime({ ...optionsOf(a), inspect: inspector?.inspect, ...(a.cluster ? { config: { cluster: { enabled: true } } } : {}) }),
          catch: (e) => e
        }),
        (rt) => Effect.promise(() => rt.shutdown())
      )
      const server = yield* Effect.acquireRelease(
        Effect.tryPromise({
          try: async () => (await import("../http/serve.ts")).serve({ runtime, port: Option.getOrUndefined(a.port), host: Option.getOrUndefined(a.host) }),
          catch: (e) => e
        }),
        (handle) => Effect.promise(() => handle.close())
      )
      // One-shot commands on the same data directory talk to this server instead of its locked store.
      yield* Effect.acquireRelease(Effect.sync(() => announceServe(runtime.config.runtime.data_dir, server.url)), (withdraw) => Effect.sync(withdraw))
      yield* Console.log(`L02 Agent Runtime ${runtime.runtimeId} serving on ${server.url} (backend ${runtime.config.runtime.backend}); OpenAPI at ${server.url}/openapi.json, docs at ${server.url}/docs, dashboard at ${server.url}/dashboard`)
      if (inspector !== undefined) yield* Console.log(`Stately inspector bridge at ${inspector.url} (WebSocket ${inspector.wsUrl})`)
      return yield* Effect.never
    }).pipe(Effect.scoped)
).pipe(
  Command.withDescription("Serve the HTTP API (docs/http.md) until interrupted"),
  Command.withExamples([
    { command: "l02 serve --port 8080", description: "serve on 127.0.0.1:8080 with the configured backend" },
    { command: "L02_STORE__URL=postgres://db/l02 l02 serve --cluster --host 0.0.0.0", description: "one of several supervisors sharing a fleet (docs/cluster.md)" }
  ])
)

const fleetStatus = Command.make("status", global, (g) =>
  withRuntime(g, (rt) => rt.fleetStatus()).pipe(
    Effect.flatMap((st) =>
      print(g, st, () =>
        [
          `runtime ${st.runtimeId} on ${st.backend}: ${st.total} agents (${st.hibernated} hibernated), ${st.pendingRestarts} restarts pending, ${st.restartsTotal} restarts so far`,
          table([["STATE", "AGENTS"], ...Object.entries(st.byState).map(([k, v]) => [k, String(v)])])
        ].join("\n")
      )
    )
  )
).pipe(Command.withDescription("Agents by state, restarts"), Command.withExamples([{ command: `l02 fleet status --json`, description: "the counts as JSON" }]))

const fleetScale = Command.make(
  "scale",
  {
    ...global,
    pool: Argument.String("pool"),
    replicas: Argument.Int("replicas"),
    template: Flag.String("template").pipe(Flag.withDescription("AgentConfig as JSON for new replicas"), Flag.optional),
    priority: Flag.Literals("priority", ["low", "normal", "high"] as const).pipe(Flag.optional)
  },
  (a) =>
    Effect.gen(function* () {
      const raw = Option.getOrUndefined(a.template)
      const template =
        raw === undefined ? undefined : yield* Effect.try({ try: () => JSON.parse(raw) as unknown, catch: () => new Error(`--template is not valid JSON`) })
      const op = yield* withRuntime(a, (rt) => progress(a, `scaling ${a.pool} to ${a.replicas}`, () => rt.scale(a.pool, a.replicas, { template, priority: Option.getOrUndefined(a.priority) })))
      yield* print(a, op, () => `${op.operationType} ${a.pool} -> ${op.targetReplicas}: ${op.status} (${op.operationId})`)
    })
).pipe(
  Command.withDescription("Scale a pool of agents (label pool.l02.dev/name) to N replicas"),
  Command.withExamples([{ command: `l02 fleet scale workers 3 --template '{"name":"worker","trustLevel":"TRUSTED"}'`, description: "three workers" }])
)

const fleetOps = Command.make("ops", global, (g) =>
  withRuntime(g, (rt) => rt.fleetOperations(50)).pipe(
    Effect.flatMap((ops) =>
      print(g, ops, () => table([["OPERATION", "TYPE", "REPLICAS", "STATUS", "CREATED"], ...ops.map((o) => [o.operationId, o.operationType, String(o.targetReplicas ?? "-"), o.status, o.createdAt])]))
    )
  )
).pipe(Command.withDescription("Recent fleet operations"), Command.withExamples([{ command: `l02 fleet ops`, description: "scale and drain operations, newest first" }]))

const pools = Command.make("pools", global, (g) =>
  withRuntime(g, (rt) => rt.pools()).pipe(
    Effect.flatMap((list) =>
      print(g, list, () =>
        list.length === 0
          ? "no warm pools (configure pools.warm, docs/pools.md)"
          : table([
              ["POOL", "READY", "RUNNING", "CREATING", "SIZE", "MIN", "MAX", "PAUSED", "CLAIMED", "MISSES", "LAST ERROR"],
              ...list.map((p) => [p.name, String(p.ready), String(p.readyRunning), String(p.creating), String(p.size), String(p.min), String(p.max), p.paused ? `yes (${p.thawed} thawed)` : "no", String(p.claimedTotal), String(p.missesTotal), p.lastError === undefined ? "-" : `${p.lastError.code}: ${p.lastError.message}`])
            ])
      )
    )
  )
).pipe(
  Command.withDescription("Warm pools: ready sandboxes per template (filled by `l02 serve`; resize with PUT /v1/pools/NAME)"),
  Command.withExamples([{ command: "l02 pools --json", description: "the pools as JSON" }])
)

const fleet = Command.make("fleet").pipe(Command.withDescription("The fleet: status, scaling, operations"), Command.withSubcommands([fleetStatus, fleetScale, fleetOps]))

const imageBuild = Command.make(
  "build",
  {
    ...global,
    busybox: Flag.String("busybox").pipe(Flag.withDescription("static busybox binary (default /bin/busybox from busybox-static)"), Flag.optional),
    tag: Flag.String("tag").pipe(Flag.withDescription("image tag (default docker.default_image)"), Flag.optional)
  },
  (a) =>
    Effect.gen(function* () {
      const config = yield* Effect.try({ try: () => loadConfigSync({ file: Option.getOrUndefined(a.config), env: process.env }), catch: (e) => e })
      const built = yield* Effect.tryPromise({
        try: () => progress(a, "building the agent image", () => Effect.runPromise(buildAgentImage(config, { busyboxPath: Option.getOrUndefined(a.busybox), tag: Option.getOrUndefined(a.tag) }))),
        catch: (e) => e
      })
      yield* print(a, built, () => `built ${built.tag} (${built.imageId.slice(0, 19)}, ${built.applets} busybox applets)`)
    })
).pipe(Command.withDescription("Build the default agent image offline from a static busybox"), Command.withExamples([{ command: `l02 image build --busybox /bin/busybox`, description: "l02-agent:latest from Debian's busybox-static" }]))

const image = Command.make("image").pipe(
  Command.withDescription("Agent images"),
  Command.withSubcommands([imageBuild])
)

const machinesExport = Command.make(
  "export",
  { out: Flag.String("out").pipe(Flag.withDescription("directory to write agent.json, fleet.json and workflow.json to (default: current directory)"), Flag.withDefault(".")) },
  (a) =>
    Effect.tryPromise({
      try: async () => {
        await mkdir(a.out, { recursive: true })
        const { exportableMachines, machineJson } = await import("../runtime/inspector.ts")
        const written: Array<string> = []
        for (const name of Object.keys(exportableMachines) as Array<MachineName>) {
          const file = join(a.out, `${name}.json`)
          await writeFile(file, `${JSON.stringify(machineJson(name), null, 2)}\n`)
          written.push(file)
        }
        return written
      },
      catch: (e) => new ConfigInvalid({ message: `cannot write the machine definitions to ${a.out}: ${(e as Error).message}; choose a writable --out directory`, key: "out" })
    }).pipe(Effect.flatMap((files) => Console.log(files.map((f) => `wrote ${f}`).join("\n"))))
).pipe(Command.withDescription("Write the machine definitions as JSON for Stately Studio (docs/inspector.md)"), Command.withExamples([{ command: `l02 machines export --out ./machines-json`, description: "agent.json, fleet.json and workflow.json" }]))

const machines = Command.make("machines").pipe(Command.withDescription("The XState machines: export for Stately tools"), Command.withSubcommands([machinesExport]))

// Commands load what only they use (the HTTP server, the inspector, the demo) when they run, so a
// one-shot command such as `l02 ls` starts quickly.

/** The `l02` command tree. */
export const l02 = Command.make("l02").pipe(
  Command.withDescription("L02 Agent Runtime: run AI agents as supervised actors in real sandboxes"),
  Command.withSubcommands([demo, serveCommand, config, spawn, ls, get, suspend, resume, checkpoints, terminate, exec, attach, cancel, runs, fleet, pools, workflowCommand, image, machines])
)

/** What a coded error means for someone at the `l02` prompt: the flags that are the ways out. */
const cliHint = (error: { readonly code: string; readonly key?: string | undefined }): string =>
  error.code === "E2041" && error.key === "trustLevel"
    ? "\nin l02: spawn it with --trust TRUSTED to run it on this backend, or keep its trust level and pass --backend docker (or set sandbox.default_trust_level)"
    : ""

const reportAndExit = (error: unknown) =>
  Effect.sync(() => {
    // Help was shown (with what is missing, if anything): that is the whole answer.
    if ((error as { _tag?: unknown } | null)?._tag === "ShowHelp") {
      if (((error as { errors?: ReadonlyArray<unknown> }).errors ?? []).length > 0) process.exitCode = 2
      return
    }
    if (isRuntimeError(error)) console.error(`${error.code}: ${error.message}${cliHint(error)}`)
    else console.error(String(error))
    process.exitCode = 1
  })

/** Runs the CLI on `process.argv` (the `l02` binary's entry point). */
export const runCli = (): void =>
  Command.run(l02, { version: "0.1.0" }).pipe(
    Effect.catch((error) => reportAndExit(error)),
    Effect.provide(NodeServices.layer),
    NodeRuntime.runMain({ disableErrorReporting: true })
  )

if (import.meta.main) runCli()
