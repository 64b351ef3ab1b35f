/** The project's source files on disk, for the graph (see src/graph/source-tree.ts). */
import { stat } from 'node:fs/promises'
import { join } from 'node:path'
import { glob } from 'tinyglobby'
import { isErrnoException } from '../cas/fs-util.js'
import { STATE_DIR } from '../graph/paths.js'
import type { SourceTree } from '../graph/source-tree.js'

export function createFsSourceTree(root: string): SourceTree {
  return {
    async isFile(path: string): Promise<boolean> {
      try {
        return (await stat(join(root, path))).isFile()
      } catch (err) {
        if (isErrnoException(err, 'ENOENT') || isErrnoException(err, 'ENOTDIR')) return false
        throw err
      }
    },
    async glob(pattern: string): Promise<string[]> {
      const matches = await glob(pattern, {
        cwd: root,
        onlyFiles: true,
        expandDirectories: false,
        ignore: [`**/${STATE_DIR}/**`],
      })
      return matches.sort()
    },
  }
}
