/**
 * The folder of the compiled sandbox modules (dist/sandbox), which holds the
 * runner scripts that start as processes of their own (runner-main.js, and
 * those a warm sandbox binds). bin/bldr runs the CLI bundle in dist/src/bundle
 * (package.json's `bundle` script), where this module's code is inlined, so
 * from there the folder is found beside the bundle's.
 */
import { basename, dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))

export const SANDBOX_DIST_DIR = basename(here) === 'bundle' ? join(here, '..', '..', 'sandbox') : here
