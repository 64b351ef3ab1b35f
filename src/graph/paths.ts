/** Rules for the paths a BUILD file may name: inside the project, relative, normalized. */
import { dirname, join, posix } from 'node:path'

/** bldr's own state folder; no action may read or write it. */
export const STATE_DIR = '.bldr'
/** The build file read when none is named (`-f`). */
export const DEFAULT_BUILD_FILE = 'BUILD.yaml'

/** A project's state folder: beside its build file (a BUILD.yaml project's root, or a ninja build folder). */
export function stateDirOf(buildFile: string): string {
  return join(dirname(buildFile), STATE_DIR)
}
/** Where the C/C++ rules put their outputs. */
export const RULE_OUTPUT_DIR = 'bldr-out'

export type PathCheck = { ok: true; path: string } | { ok: false; rule: string }

/**
 * A path relative to the project root, normalized (`./a//b` → `a/b`). Refused:
 * absolute paths, any `..` segment, the root itself, and bldr's state folder.
 */
export function checkProjectPath(raw: string, what: 'input' | 'output' | 'pattern'): PathCheck {
  if (raw.includes('\\')) return { ok: false, rule: `${what} path ${JSON.stringify(raw)} must use "/" as separator` }
  if (raw.startsWith('/')) return { ok: false, rule: `${what} path ${JSON.stringify(raw)} is absolute; paths must be relative to the project root` }
  if (raw.split('/').includes('..')) {
    return { ok: false, rule: `${what} path ${JSON.stringify(raw)} contains ".."; paths must stay inside the project root` }
  }
  const path = posix.normalize(raw).replace(/\/+$/, '')
  if (path === '.' || path === '') return { ok: false, rule: `${what} path ${JSON.stringify(raw)} names the project root itself; name a file` }
  if (path === STATE_DIR || path.startsWith(`${STATE_DIR}/`)) {
    return { ok: false, rule: `${what} path ${JSON.stringify(raw)} is inside bldr's state folder ${STATE_DIR}/` }
  }
  return { ok: true, path }
}

const GLOB_CHARS = /[*?[\]{}!]/

export function isGlob(pattern: string): boolean {
  return GLOB_CHARS.test(pattern)
}
