// Every public export has JSDoc: each exported declaration outside internal/ folders is preceded by a
// /** ... */ comment (re-exports are documented where they are declared).
import { globSync, readFileSync } from "node:fs"
import { describe, expect, it } from "vitest"

const declaration = /^export (declare )?((const|let|function|async function|class|abstract class|interface|enum) |type [A-Za-z_$])/

/** `file:line: declaration` for each exported declaration without a JSDoc comment right above it. */
const undocumentedExports = (files: ReadonlyArray<string>): Array<string> =>
  files.flatMap((file) => {
    const lines = readFileSync(file, "utf8").split("\n")
    return lines.flatMap((line, i) => {
      if (!declaration.test(line)) return []
      let j = i - 1
      while (j >= 0 && lines[j]!.trim() === "") j--
      return (lines[j] ?? "").trim().endsWith("*/") ? [] : [`${file}:${i + 1}: ${line.trim().slice(0, 100)}`]
    })
  })

describe("JSDoc", () => {
  const files = globSync(["src/**/*.ts", "machines/**/*.ts"]).filter((f) => !f.split("/").includes("internal"))

  it("finds the public modules", () => {
    expect(files).toContain("src/index.ts")
    expect(files.length).toBeGreaterThan(50)
  })

  it("documents every exported declaration of the public modules", () => {
    expect(undocumentedExports(files)).toEqual([])
  })

  it("notices an undocumented export", () => {
    expect(undocumentedExports(["test/docs/fixtures/undocumented.ts"])).toEqual([
      "test/docs/fixtures/undocumented.ts:6: export const undocumented = 2"
    ])
  })
})
