// The contract every WorkflowStore implementation passes. Tests use fresh ids and filter by their own
// runs, so they never assume an empty store.
import { randomUUID } from "node:crypto"
import { expect, layer, type Vitest } from "@effect/vitest"
import { Effect, type Layer, Option } from "effect"
import type { WorkflowRun } from "../../src/domain/WorkflowRun.ts"
import { WorkflowStore } from "../../src/services/WorkflowStore.ts"

const run = (overrides: Partial<WorkflowRun> = {}): WorkflowRun => ({
  workflowId: randomUUID(),
  name: "pipeline",
  state: "running",
  graph: { name: "pipeline", nodes: [{ id: "a", kind: "timer", seconds: 1 }] },
  input: { topic: "x", list: [1, null, "y"] },
  origin: "remote",
  nodes: { a: { state: "running", attempts: 1, output: { text: "ü ✓", data: { n: 1.5 } } } },
  snapshot: { status: "active", value: "running" },
  createdAt: new Date(Date.UTC(2026, 11, 4, 10, 0, 0, Math.floor(Math.random() * 999))).toISOString(),
  updatedAt: new Date().toISOString(),
  ...overrides
})

/** Registers the WorkflowStore contract tests on `it`, whose layer provides the store under test. */
export const workflowStoreTests = (it: Vitest.MethodsNonLive<WorkflowStore>) => {
  it.effect("saves a run and reads it back whole; a second save replaces it", () =>
    Effect.gen(function* () {
      const store = yield* WorkflowStore
      const first = run()
      yield* store.save(first)
      expect(Option.getOrThrow(yield* store.get(first.workflowId))).toEqual(first)
      const changed = { ...first, state: "completed" as const, output: { a: 1 }, updatedAt: new Date().toISOString() }
      yield* store.save(changed)
      expect(Option.getOrThrow(yield* store.get(first.workflowId))).toEqual(changed)
      expect(Option.isNone(yield* store.get(randomUUID()))).toBe(true)
    }))

  it.effect("lists by state and parent, oldest first, with a limit", () =>
    Effect.gen(function* () {
      const store = yield* WorkflowStore
      const parent = run({ createdAt: "2026-12-04T09:00:00.000Z", state: "waiting" })
      const older = run({ parentId: parent.workflowId, createdAt: "2026-12-04T09:00:01.000Z", state: "completed" })
      const newer = run({ parentId: parent.workflowId, createdAt: "2026-12-04T09:00:02.000Z", state: "running" })
      for (const r of [newer, parent, older]) yield* store.save(r)
      const children = yield* store.list({ parentId: parent.workflowId })
      expect(children.map((r) => r.workflowId)).toEqual([older.workflowId, newer.workflowId])
      expect((yield* store.list({ parentId: parent.workflowId, state: "running" })).map((r) => r.workflowId)).toEqual([newer.workflowId])
      expect((yield* store.list({ parentId: parent.workflowId, state: ["running", "completed"], limit: 1 })).map((r) => r.workflowId)).toEqual([older.workflowId])
      const topLevel = yield* store.list({ parentId: null, state: "waiting" })
      expect(topLevel.map((r) => r.workflowId)).toContain(parent.workflowId)
      expect(topLevel.every((r) => r.parentId === undefined)).toBe(true)
    }))

  it.effect("hands out copies: changing a read run does not change the stored one", () =>
    Effect.gen(function* () {
      const store = yield* WorkflowStore
      const saved = run()
      yield* store.save(saved)
      const read = Option.getOrThrow(yield* store.get(saved.workflowId)) as { nodes: Record<string, unknown> }
      read.nodes.a = "tampered"
      expect(Option.getOrThrow(yield* store.get(saved.workflowId)).nodes.a).toEqual(saved.nodes.a)
    }))
}

/** The contract on a layer. */
export const workflowStoreContract = (name: string, storeLayer: Layer.Layer<WorkflowStore, unknown>) =>
  layer(storeLayer, { timeout: "60 seconds", excludeTestServices: true })(`WorkflowStore contract: ${name}`, workflowStoreTests)
