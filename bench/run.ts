// `npm run bench`: runs every benchmark that can run here, prints the numbers and writes JSON to
// bench/results/latest.json. Targets are checked and reported, never asserted in unit tests.
import { mkdirSync, writeFileSync } from "node:fs"
import { benchIdleHeap, benchMemoryBackendHeap, benchMemoryStoresHeap, benchTransitions, sampleAgentData } from "./inProcess.ts"

const results: Record<string, unknown> = { at: new Date().toISOString(), node: process.version }
const targets: Array<{ name: string; value: number; target: string; ok: boolean }> = []

const transitions = await benchTransitions(1000, 30)
results.transitions = transitions
targets.push({ name: "lifecycle transitions/s (in-memory, persisted)", value: transitions.transitionsPerSecond, target: ">= 20000", ok: transitions.transitionsPerSecond >= 20_000 })

const heap = await benchIdleHeap(10_000, 1)
const backendHeap = await benchMemoryBackendHeap(10_000)
const storesHeap = await benchMemoryStoresHeap(10_000, await sampleAgentData())
const runtimeShare = heap.heapBytesPerIdleAgent - backendHeap.heapBytesPerSandbox - storesHeap.heapBytesPerAgent
results.idleHeap = {
  ...heap,
  memoryBackendBytesPerSandbox: backendHeap.heapBytesPerSandbox,
  memoryStoresBytesPerAgent: storesHeap.heapBytesPerAgent,
  runtimeBytesPerIdleAgent: runtimeShare
}
targets.push({ name: "heap bytes per idle agent at 10,000, in-memory backend and stores, everything included", value: heap.heapBytesPerIdleAgent, target: "<= 8192", ok: heap.heapBytesPerIdleAgent <= 8192 })

// A default-configured runtime (embedded store on files, memory backend) in a process of its own.
{
  const { benchEmbeddedFootprint } = await import("./embeddedFootprint.ts")
  const footprint = await benchEmbeddedFootprint(1000)
  results.embeddedFootprint = footprint
  targets.push({ name: "default runtime: resident after createRuntime, MB", value: Number(footprint.afterCreateRuntimeMb), target: "<= 150", ok: Number(footprint.afterCreateRuntimeMb) <= 150 })
  targets.push({ name: "default runtime: resident with 1,000 idle agents, MB", value: Number(footprint.idleMb), target: "<= 200", ok: Number(footprint.idleMb) <= 200 })
}

// The process backend (and the runtime on it) against a bare spawn of the same program.
{
  const { benchProcess } = await import("./process.ts")
  const proc = await benchProcess({})
  results.process = proc
  targets.push({ name: "process: backend spawn + first exchange p50 / bare child_process.spawn + exchange p50", value: proc.ratios.backendSpawnExchange, target: "<= 1.3", ok: proc.ratios.backendSpawnExchange <= 1.3 })
  targets.push({ name: "process: backend stop + remove p50 / bare SIGTERM and wait p50", value: proc.ratios.backendTerminate, target: "<= 2", ok: proc.ratios.backendTerminate <= 2 })
  // Not targets: the whole runtime (state written to the embedded store before and after each step).
  console.error(`process: runtime spawn + first execute / bare: ${proc.ratios.runtimeSpawnExchange}x; runtime terminate / bare: ${proc.ratios.runtimeTerminate}x`)
}

// Durable execute runs on the embedded default: a step of 10,000 small events written to the store
// against the same step with its events in memory only, and the replay of a finished run.
{
  const { benchRunStreaming } = await import("./runs.ts")
  const streaming = await benchRunStreaming(10_000, 7)
  results.runStreaming = streaming
  targets.push({ name: "runs: step of 10,000 events, durable p50 / in-memory p50 (process backend)", value: streaming.ratio, target: "<= 1.3", ok: streaming.ratio <= 1.3 })
  targets.push({ name: "runs: replay of a finished run's 10,000 events from the embedded store (attach from 0) p50, ms", value: streaming.replayP50Ms, target: "<= 200", ok: streaming.replayP50Ms <= 200 })
}

// Workflows on the embedded default: node dispatch against the same executes called directly, and
// runs waiting on an approval.
{
  const { benchWaitingWorkflows, benchWorkflowDispatch } = await import("./workflows.ts")
  const dispatch = await benchWorkflowDispatch(10, 15)
  results.workflowDispatch = dispatch
  targets.push({ name: "workflow of 10 sequential agent steps p50 / the same 10 executes called directly p50", value: dispatch.ratio, target: "<= 1.2", ok: dispatch.ratio <= 1.2 })
  targets.push({ name: "workflow: added p50 per node on the embedded store, ms", value: dispatch.addedPerNodeMs, target: "<= 5", ok: dispatch.addedPerNodeMs <= 5 })
  const waiting = await benchWaitingWorkflows(Number(process.env.L02_BENCH_WAITING_RUNS ?? 10_000))
  results.waitingWorkflows = waiting
  targets.push({ name: `workflow: heap bytes per run waiting on an approval (${waiting.runs} runs)`, value: waiting.heapBytesPerWaitingRun, target: "<= 10240", ok: waiting.heapBytesPerWaitingRun <= 10_240 })
  targets.push({ name: "workflow: resume of one waiting run (signal to its end) p50, ms", value: waiting.resumeP50Ms, target: "<= 50", ok: waiting.resumeP50Ms <= 50 })
}

// Several supervisors on Effect Cluster, when PostgreSQL answers: routing, failover, memory per runner.
{
  const { benchCluster, clusterBenchStore } = await import("./cluster.ts")
  const storeUrl = clusterBenchStore()
  if (storeUrl === undefined) {
    results.cluster = { skipped: "no PostgreSQL answers: set L02_BENCH_POSTGRES_URL" }
  } else {
    const cluster = await benchCluster({ storeUrl, agents: Number(process.env.L02_BENCH_CLUSTER_AGENTS ?? 10_000) })
    results.cluster = cluster
    targets.push({ name: "cluster: getState through a non-owner p50 - on the owner p50 (HTTP, loopback), ms", value: cluster.routing.addedP50Ms, target: "<= 2", ok: cluster.routing.addedP50Ms <= 2 })
    targets.push({ name: `cluster: failover, kill -9 until each of ${cluster.failover.agents} agents answers from a survivor, p50 ms`, value: cluster.failover.p50Ms, target: `<= ${cluster.failover.targetMs} (lease + 2 s)`, ok: cluster.failover.p50Ms <= cluster.failover.targetMs })
    targets.push({ name: "cluster: failover, the same, max ms", value: cluster.failover.maxMs, target: `<= ${cluster.failover.targetMs} (lease + 2 s)`, ok: cluster.failover.maxMs <= cluster.failover.targetMs })
    // Not a target: reported.
    console.error(`cluster: ${cluster.memory.agents} agents over three runners (hosted ${cluster.memory.hosted.join(" / ")}): RSS ${cluster.memory.rssMb.join(" / ")} MB`)
  }
}

// Docker: the backend and the full runtime against raw dockerode, when an engine answers.
if (process.env.L02_BENCH_DOCKER !== "0") {
  try {
    const { benchDocker } = await import("./docker.ts")
    const { benchDockerRuntime } = await import("./dockerRuntime.ts")
    results.dockerBackend = await benchDocker({})
    const runtimeDocker = (await benchDockerRuntime({})) as { ratios: { spawnP50: number; suspendResumeP50: number; burstWall: number; terminateForceP50: number }; burst: number }
    results.dockerRuntime = runtimeDocker
    targets.push({ name: "docker: runtime spawn p50 / raw create+start p50", value: runtimeDocker.ratios.spawnP50, target: "<= 1.10", ok: runtimeDocker.ratios.spawnP50 <= 1.1 })
    targets.push({ name: "docker: runtime suspend+resume p50 / raw pause+unpause p50", value: runtimeDocker.ratios.suspendResumeP50, target: "<= 1.2", ok: runtimeDocker.ratios.suspendResumeP50 <= 1.2 })
    targets.push({ name: "docker: runtime terminate({ force: true }) p50 / raw remove({ force: true }) p50", value: runtimeDocker.ratios.terminateForceP50, target: "<= 1.1", ok: runtimeDocker.ratios.terminateForceP50 <= 1.1 })
    targets.push({ name: `docker: ${runtimeDocker.burst} concurrent runtime spawns / raw parallel (wall)`, value: runtimeDocker.ratios.burstWall, target: "<= 1.15", ok: runtimeDocker.ratios.burstWall <= 1.15 })
    const { benchDockerWarm } = await import("./dockerWarm.ts")
    const warm = (await benchDockerWarm({})) as { warmSpawnPausedP50: number; warmSpawnPausedNoThawedP50: number; warmSpawnRunningP50: number; rawUnpauseP50: number }
    results.dockerWarm = warm
    targets.push({ name: "docker: warm-pool spawn p50, paused pool with its thawed sandbox (full API, state persisted), ms", value: warm.warmSpawnPausedP50, target: "<= 20", ok: warm.warmSpawnPausedP50 <= 20 })
    targets.push({ name: "docker: warm-pool spawn p50, running pool (full API, state persisted), ms", value: warm.warmSpawnRunningP50, target: "<= 20", ok: warm.warmSpawnRunningP50 <= 20 })
    // Not a target: a claim of a sandbox that is really paused costs the engine's unpause (raw p50 beside it).
    console.error(`docker: warm-pool spawn p50, paused pool with thawed: 0 (each claim unpauses; raw unpause p50 ${warm.rawUnpauseP50} ms): ${warm.warmSpawnPausedNoThawedP50} ms`)
    if (process.env.L02_BENCH_IDLE_AGENTS !== "0") {
      const { benchIdleFleet } = await import("./idleFleet.ts")
      const fleet = (await benchIdleFleet(Number(process.env.L02_BENCH_IDLE_AGENTS ?? 1000))) as { agents: number; rssMb: number; store: string }
      results.dockerIdleFleet = fleet
      targets.push({ name: `docker: supervisor RSS with ${fleet.agents} idle agents (${fleet.store} store), MB`, value: fleet.rssMb, target: "<= 150", ok: fleet.rssMb <= 150 })
    }
  } catch (error) {
    results.docker = { skipped: `no Docker engine answered or the agent image is missing (${String((error as Error).message ?? error)}); run .ci/setup-docker.sh and l02 image build` }
  }
}

// Kubernetes: the full runtime against a raw Pod create on a real cluster, when one is named.
if ((process.env.L02_BENCH_KUBECONFIG ?? "") !== "") {
  const { benchKubernetes } = await import("./kubernetes.ts")
  const kube = (await benchKubernetes({ kubeconfig: process.env.L02_BENCH_KUBECONFIG!, runs: Number(process.env.L02_BENCH_KUBE_RUNS ?? 10) })) as {
    ratios: { spawnP50: number }
    suspendResume: { p50: number }
  }
  results.kubernetes = kube
  targets.push({ name: "kubernetes: runtime spawn p50 / raw Pod create until running p50 (same Pod, same client)", value: kube.ratios.spawnP50, target: "<= 1.2", ok: kube.ratios.spawnP50 <= 1.2 })
  // Not a target: no raw counterpart (a Pod cannot pause); reported.
  console.error(`kubernetes: suspend + resume round trip p50 (checkpoint, new Pod, workspace back): ${kube.suspendResume.p50} ms`)
} else {
  results.kubernetes = { skipped: "set L02_BENCH_KUBECONFIG to a cluster's kubeconfig (.ci/setup-k8s.sh starts one)" }
}

console.log(JSON.stringify(results, null, 2))
console.log("\ntarget check:")
for (const t of targets) console.log(`  ${t.ok ? "ok  " : "MISS"} ${t.name}: ${t.value} (target ${t.target})`)
mkdirSync(new URL("./results/", import.meta.url), { recursive: true })
writeFileSync(new URL("./results/latest.json", import.meta.url), JSON.stringify({ ...results, targets }, null, 2))
