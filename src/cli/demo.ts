/**
 * `l02 demo`: runs the embedded runtime through a whole agent lifecycle and prints every state change.
 */
import { setTimeout as sleep } from "node:timers/promises"
import { createRuntime, type RuntimeOptions } from "../runtime/createRuntime.ts"

const textOf = (event: { readonly line: string; readonly data?: unknown }): string => {
  const text = (event.data as { text?: unknown } | undefined)?.text
  return typeof text === "string" ? text : event.line
}

/** Where the demo writes its lines (stdout by default). */
export type Print = (line: string) => void

/** Runs the demo; resolves with the number of state changes seen. */
export const runDemo = async (options: RuntimeOptions, print: Print = console.log): Promise<number> => {
  const started = performance.now()
  const ms = () => `${(performance.now() - started).toFixed(0).padStart(5)} ms`
  print(`opening the runtime (store, backend, agents of earlier runs) ...`)
  const runtime = await createRuntime(options)
  print(`L02 Agent Runtime ${runtime.runtimeId}: backend ${runtime.config.runtime.backend}, data in ${runtime.config.runtime.data_dir}`)
  let changes = 0
  const watcher = (async () => {
    for await (const event of runtime.events()) {
      if (event.type === "agent.state") {
        changes += 1
        const error = (event.data as { error?: { code: string; message: string } } | undefined)?.error
        print(`${ms()}  ${event.agentId.slice(0, 8)}  ${event.fromState} -> ${event.toState}${error ? `  (${error.code}: ${error.message})` : ""}`)
      } else if (event.type.startsWith("fleet.")) {
        print(`${ms()}  ${event.agentId.slice(0, 8)}  ${event.type} ${JSON.stringify(event.data ?? {})}`)
      }
    }
  })()
  try {
    print(`${ms()}  spawning a TRUSTED agent "demo" ...`)
    const { agentId, sandboxId } = await runtime.spawn({ name: "demo", trustLevel: "TRUSTED", labels: { app: "demo" } })
    print(`${ms()}  spawned ${agentId} in sandbox ${sandboxId}`)
    for await (const event of runtime.execute(agentId, "hello from the demo")) {
      if (event.type === "output") print(`${ms()}  agent says: ${textOf(event)}`)
    }
    print(`${ms()}  suspending (pause) ...`)
    await runtime.suspend(agentId)
    print(`${ms()}  resuming ...`)
    await runtime.resume(agentId)
    print(`${ms()}  suspending with a checkpoint (workspace archived, sandbox removed) ...`)
    const checkpointId = await runtime.suspend(agentId, { checkpoint: true })
    print(`${ms()}  checkpoint ${checkpointId}`)
    print(`${ms()}  resuming from the checkpoint ...`)
    await runtime.resume(agentId, checkpointId)
    for await (const event of runtime.execute(agentId, "still there?")) {
      if (event.type === "output") print(`${ms()}  agent says: ${textOf(event)}`)
    }
    try {
      await runtime.resume(agentId)
    } catch (error) {
      const e = error as { code?: string; message?: string }
      print(`${ms()}  resume while running is refused: ${e.code}: ${e.message}`)
    }
    print(`${ms()}  spawning an agent with a (scripted) model that uses a tool in its sandbox ...`)
    const modelAgent = await runtime.spawn({
      name: "demo-model",
      trustLevel: "TRUSTED",
      model: {
        provider: "scripted",
        model: "scripted-demo",
        system: "You are a careful agent.",
        script: [
          { toolCalls: [{ name: "shell", arguments: { command: "echo \"hello from $(uname -s) in $(pwd)\" > greeting.txt && cat greeting.txt" } }] },
          { text: "The sandbox says hello; I saved the greeting in greeting.txt." }
        ]
      }
    })
    for await (const event of runtime.execute(modelAgent.agentId, "Say hello from your sandbox.")) {
      if (event.type === "tool.call") print(`${ms()}  model calls ${event.name} ${event.arguments}`)
      else if (event.type === "tool.result") print(`${ms()}  tool ${event.name} -> ${event.content.trim().replace(/\s*\n\s*/g, " | ")}`)
      else if (event.type === "done") print(`${ms()}  model answers: ${(event.data as { text?: string } | undefined)?.text ?? ""}`)
    }
    await runtime.terminate(modelAgent.agentId, { reason: "demo finished" })
    const state = await runtime.getState(agentId)
    print(`${ms()}  state ${state.state}/${state.activity}, restarts ${state.restartCount}, sandbox ${state.sandboxId}`)
    print(`${ms()}  terminating ...`)
    await runtime.terminate(agentId, { reason: "demo finished" })
    await sleep(20)
    const status = await runtime.fleetStatus()
    print(`${ms()}  done: ${changes} state changes; fleet ${JSON.stringify(status.byState)}`)
    // Agents of earlier runs on this data directory are in the fleet too: say what each is and why.
    for (const other of await runtime.list()) {
      if (other.state === "terminated") continue
      const found = await runtime.getState(other.agentId)
      const why = found.lastError === undefined ? "" : `: ${found.lastError.code}: ${found.lastError.message}`
      print(`${ms()}  also in the fleet, from an earlier run: ${found.agentId} "${found.name}" is ${found.state}${why} (l02 terminate ${found.agentId} removes it)`)
    }
  } finally {
    await runtime.shutdown()
    await Promise.race([watcher, sleep(100)])
    print(`${ms()}  runtime shut down`)
  }
  return changes
}
