/** Where the benches find the repository and its CLI (they run from dist/bench, two folders below it). */
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

export const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
/** `bin/bldr`, as a user runs it. */
export const BLDR = join(REPO, 'bin', 'bldr')
/** The Node CLI, for the processes a bench starts with node flags. */
export const BLDR_NODE = join(REPO, 'bin', 'bldr.mjs')
