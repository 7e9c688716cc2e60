// Graph validation: every refusal is E2006 naming the node, before anything runs; valid graphs come
// back in dependency order. Templates render as documented.
import { describe, expect, it } from "vitest"
import { WorkflowGraphInvalid } from "../../src/domain/Errors.ts"
import { render } from "../../src/workflows/templates.ts"
import { evaluateCondition } from "../../src/workflows/conditions.ts"
import { validateGraph, type ValidGraph } from "../../src/workflows/validateGraph.ts"
import { backoffMs } from "../../src/workflows/graphWorkflow.ts"

const agent = { name: "worker", trustLevel: "TRUSTED" }
const step = (id: string, input: unknown = "go") => ({ id, kind: "agent", spawn: agent, input })

const refused = (document: unknown): WorkflowGraphInvalid => {
  const result = validateGraph(document)
  expect(result).toBeInstanceOf(WorkflowGraphInvalid)
  const error = result as WorkflowGraphInvalid
  expect(error.code).toBe("E2006")
  return error
}

describe("validateGraph", () => {
  it("accepts a pipeline with a fan-out, a join, an approval, a timer and a sub-workflow, in dependency order", () => {
    const valid = validateGraph({
      name: "pipeline",
      nodes: [
        step("review", { code: "{{ nodes.code.output.text }}", tests: "{{ nodes.tests.output.text }}" }),
        step("plan", "plan {{ input.topic }}"),
        step("code", "{{ nodes.plan.output.text }}"),
        step("tests", "{{ nodes.plan.output.text }}"),
        { id: "approve", kind: "approval", prompt: "ship?" },
        { id: "pause", kind: "timer", seconds: 1 },
        { id: "publish", kind: "workflow", graph: { name: "inner", nodes: [step("one", "{{ input.what }}")] }, input: { what: "{{ nodes.review.output.text }}" } }
      ],
      edges: [
        { from: "plan", to: "code" },
        { from: "plan", to: "tests" },
        { from: "code", to: "review" },
        { from: "tests", to: "review" },
        { from: "review", to: "approve" },
        { from: "approve", to: "pause", when: { path: "nodes.approve.output.ok", equals: true } },
        { from: "pause", to: "publish" }
      ]
    }) as ValidGraph
    expect(valid).not.toBeInstanceOf(WorkflowGraphInvalid)
    const at = (id: string) => valid.order.indexOf(id)
    expect(at("plan")).toBe(0)
    expect(at("code")).toBeLessThan(at("review"))
    expect(at("tests")).toBeLessThan(at("review"))
    expect(at("review")).toBeLessThan(at("approve"))
    expect(at("pause")).toBeLessThan(at("publish"))
    expect(valid.children.get("publish")?.order).toEqual(["one"])
  })

  it("refuses a document of the wrong shape, naming the node", () => {
    expect(refused({ name: "x", nodes: [] }).message).toMatch(/document format/)
    const e = refused({ name: "x", nodes: [step("a"), { id: "b", kind: "timer", seconds: -1 }] })
    expect(e.node).toBe("b")
    expect(refused({ name: "x", nodes: [{ id: "a", kind: "teleport" }] }).node).toBe("a")
    expect(refused({ name: "x", nodes: [{ id: "1bad", kind: "timer", seconds: 1 }] }).message).toMatch(/node id/)
    expect(refused({ name: "x", nodes: [{ ...step("a"), spawn: { name: "Not A Dns Name" } }] }).node).toBe("a")
  })

  it("refuses duplicate ids, unknown nodes, self edges, repeated edges and cycles", () => {
    expect(refused({ name: "x", nodes: [step("a"), step("a")] }).message).toMatch(/two nodes have the id a/)
    const unknown = refused({ name: "x", nodes: [step("a")], edges: [{ from: "a", to: "ghost" }] })
    expect(unknown).toMatchObject({ node: "ghost", key: "edges[0]" })
    expect(refused({ name: "x", nodes: [step("a")], edges: [{ from: "a", to: "a" }] }).message).toMatch(/to itself/)
    expect(refused({ name: "x", nodes: [step("a"), step("b")], edges: [{ from: "a", to: "b" }, { from: "a", to: "b" }] }).message).toMatch(/repeats/)
    const cycle = refused({
      name: "x",
      nodes: [step("a"), step("b"), step("c")],
      edges: [{ from: "a", to: "b" }, { from: "b", to: "c" }, { from: "c", to: "b" }]
    })
    expect(cycle.message).toMatch(/cycle/)
    expect(["b", "c"]).toContain(cycle.node)
  })

  it("refuses an agent step naming no agent or two, and a compensation likewise", () => {
    expect(refused({ name: "x", nodes: [{ id: "a", kind: "agent", input: "hi" }] }).message).toMatch(/names no agent/)
    expect(refused({ name: "x", nodes: [{ id: "a", kind: "agent", spawn: agent, agent: "other", input: "hi" }] }).message).toMatch(/both spawn and agent/)
    expect(refused({ name: "x", nodes: [{ ...step("a"), compensate: { input: "undo" } }] }).message).toMatch(/compensation of node a names no agent/)
  })

  it("refuses templates and conditions that read a node that does not finish before them", () => {
    const parallel = refused({ name: "x", nodes: [step("a"), step("b", "{{ nodes.a.output.text }}")] })
    expect(parallel).toMatchObject({ node: "b" })
    expect(parallel.message).toMatch(/does not finish before it/)
    expect(refused({ name: "x", nodes: [step("a", "{{ nodes.a.output }}")] }).message).toMatch(/the node itself/)
    expect(refused({ name: "x", nodes: [step("a", "{{ env.HOME }}")] }).message).toMatch(/names nothing/)
    expect(refused({ name: "x", nodes: [step("a", "{{ failure.message }}")] }).message).toMatch(/only a compensation/)
    const condition = refused({
      name: "x",
      nodes: [step("a"), step("b"), step("c")],
      edges: [{ from: "a", to: "c", when: { path: "nodes.b.output.text", equals: "x" } }, { from: "b", to: "c" }]
    })
    expect(condition).toMatchObject({ node: "c" })
    // A compensation may read its own node's output and the failure.
    expect(validateGraph({ name: "x", nodes: [{ ...step("a"), compensate: { spawn: agent, input: "undo {{ nodes.a.output.text }}: {{ failure.message }}" } }] })).not.toBeInstanceOf(WorkflowGraphInvalid)
  })

  it("names a sub-workflow's node as outer/inner", () => {
    const e = refused({ name: "x", nodes: [{ id: "sub", kind: "workflow", graph: { name: "inner", nodes: [step("one", "{{ nodes.two.output }}"), step("two")] } }] })
    expect(e.node).toBe("sub/one")
  })
})

describe("templates and conditions", () => {
  const scope = { input: { topic: "parsers", n: 3 }, nodes: { plan: { state: "completed", output: { text: "step 1", data: { ok: true, items: [1, 2] } } } } }

  it("replaces a whole-string template by the value and interpolates others as text", () => {
    expect(render("{{ nodes.plan.output.data }}", scope)).toEqual({ ok: true, items: [1, 2] })
    expect(render("plan {{ input.topic }} x{{ input.n }}: {{ nodes.plan.output.data.items }}", scope)).toBe("plan parsers x3: [1,2]")
    expect(render({ a: ["{{ input.n }}", "{{ input.missing }}"] }, scope)).toEqual({ a: [3, undefined] })
  })

  it("evaluates equals, notEquals, contains and truthy", () => {
    expect(evaluateCondition({ path: "nodes.plan.output.data.ok", equals: true }, scope)).toBe(true)
    expect(evaluateCondition({ path: "nodes.plan.output.data.ok", notEquals: true }, scope)).toBe(false)
    expect(evaluateCondition({ path: "nodes.plan.output.text", contains: "step" }, scope)).toBe(true)
    expect(evaluateCondition({ path: "input.missing", truthy: true }, scope)).toBe(false)
    expect(evaluateCondition({ path: "input.missing", truthy: false }, scope)).toBe(true)
  })
})

describe("retry backoff", () => {
  it("doubles from backoffSeconds up to maxBackoffSeconds, defaulting to 1 s and 300 s", () => {
    expect([0, 1, 2, 3, 4].map((a) => backoffMs({ retry: { attempts: 5, backoffSeconds: 0.5, maxBackoffSeconds: 3 } }, a))).toEqual([500, 1000, 2000, 3000, 3000])
    expect([0, 1, 8, 9].map((a) => backoffMs({ retry: { attempts: 10 } }, a))).toEqual([1000, 2000, 256_000, 300_000])
  })
})


describe("templates under hostile input", () => {
  it("validates and renders a megabyte of unclosed braces and spaces in linear time", () => {
    const hostile = `{{${" ".repeat(1_000_000)}`
    const started = performance.now()
    const result = validateGraph({ name: "x", nodes: [{ id: "a", kind: "agent", spawn: { name: "a", trustLevel: "TRUSTED" }, input: hostile }] })
    expect(result).not.toBeInstanceOf(WorkflowGraphInvalid)
    expect(render(hostile, { input: null, nodes: {} })).toBe(hostile)
    expect(render(`{{${" ".repeat(1000)}input.x${" ".repeat(1000)}}}`, { input: { x: 7 }, nodes: {} })).toBe(7)
    // The quadratic-or-worse pattern took seconds at 2,000 characters.
    expect(performance.now() - started).toBeLessThan(2000)
  })
})
