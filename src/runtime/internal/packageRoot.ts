/**
 * The directory of this package (the one holding its package.json), found by walking up from this
 * module, so packaged files (config/, src/agent/) resolve the same from the TypeScript sources
 * (src/runtime/internal) and from the compiled build (dist/src/runtime/internal).
 */
import { existsSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"

const find = (from: string): string => {
  let dir = from
  for (;;) {
    if (existsSync(join(dir, "package.json"))) return dir
    const parent = dirname(dir)
    if (parent === dir) throw new Error(`no package.json above ${from}: the l02 package is incomplete`)
    dir = parent
  }
}

/** Absolute path of the package's root directory. */
export const packageRoot: string = find(dirname(fileURLToPath(import.meta.url)))

/** Absolute path of a file shipped with the package, from its path relative to the root. */
export const packagePath = (relative: string): string => join(packageRoot, relative)
