/**
 * Reading a project's build file (src/build/project.ts): a ninja graph read
 * in this process is read again only when what it depends on changed.
 */
import assert from 'node:assert/strict'
import { rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { readProjectGraph } from '../../src/build/project.js'
import { BuildFileErrors } from '../../src/errors.js'
import { makeProject, withProject } from '../helpers.js'

describe('reading a ninja project', () => {
  it('keeps its graph while nothing it read changed; a change to the build file, an include, the source tree or the folder it is read from reads it again', async () => {
    await withProject(
      makeProject({
        'build.ninja': 'include rules.ninja\nbuild a.out: copy a.txt\n',
        'rules.ninja': 'rule copy\n  command = cp $in $out\n',
        'a.txt': 'a\n',
      }),
      async (dir) => {
        const read = async (cwd = dir) => {
          const before = process.cwd()
          process.chdir(cwd)
          try {
            return (await readProjectGraph({ dir, file: 'build.ninja' })).graph
          } finally {
            process.chdir(before)
          }
        }
        const first = await read()
        assert.equal(await read(), first, 'nothing changed: the same graph')

        await writeFile(join(dir, 'rules.ninja'), 'rule copy\n  command = cp -p $in $out\n')
        const included = await read()
        assert.notEqual(included, first)
        assert.match(included.get('a.out').argv.join(' '), /cp -p a\.txt a\.out/)

        await writeFile(join(dir, 'b.txt'), 'b\n')
        const grown = await read()
        assert.notEqual(grown, included)
        assert.ok(grown.get('a.out').staged?.includes('b.txt'), 'a new file is staged')

        await writeFile(join(dir, 'build.ninja'), 'include rules.ninja\nbuild a.out: copy a.txt\nbuild b.out: copy b.txt\n')
        const edited = await read()
        assert.deepEqual([...edited.actions.keys()].sort(), ['a.out', 'b.out'])
        assert.equal(await read(), edited)

        // Errors name the build file as the user's folder sees it: another folder reads it again.
        assert.notEqual(await read('/'), edited)

        await rm(join(dir, 'rules.ninja'))
        await assert.rejects(read(), (err: unknown) => err instanceof BuildFileErrors || /rules\.ninja/.test(String(err)))
      },
    )
  })
})
