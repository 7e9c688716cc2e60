/**
 * Edge conditions: the value at a path of the run (`nodes.review.output.data.verdict`) compared
 * with `equals`, `notEquals`, `contains` or `truthy`. Every comparison given must hold.
 */
import type { EdgeCondition } from "../domain/WorkflowGraph.ts"
import { readPath, type TemplateScope } from "./templates.ts"

const sameJson = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b)

/** Whether the condition holds in the scope. */
export const evaluateCondition = (condition: EdgeCondition, scope: TemplateScope): boolean => {
  const value = readPath(scope, condition.path)
  if (condition.equals !== undefined && !sameJson(value, condition.equals)) return false
  if (condition.notEquals !== undefined && sameJson(value, condition.notEquals)) return false
  if (condition.contains !== undefined) {
    const text = typeof value === "string" ? value : value === undefined ? "" : JSON.stringify(value)
    if (!text.includes(condition.contains)) return false
  }
  if (condition.truthy !== undefined && Boolean(value) !== condition.truthy) return false
  return true
}
