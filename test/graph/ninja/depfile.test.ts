import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { parseDepfile, projectFilesOf } from '../../../src/graph/ninja/depfile.js'

describe('depfiles', () => {
  it('reads gcc -MD output: continuations, escaped spaces and hashes, $$, several targets, -MP rules', () => {
    const text = 'CMakeFiles/a.dir/a.c.o: /p/src/a.c /p/include/a\\ b.h \\\n /usr/include/stdio.h \\\n  gen/x\\#1.h $$dir/y.h\n/p/include/a\\ b.h:\n\ngen/x\\#1.h:\n'
    assert.deepEqual(parseDepfile(text), ['/p/src/a.c', '/p/include/a b.h', '/usr/include/stdio.h', 'gen/x#1.h', '$dir/y.h'])
  })

  it('keeps a colon inside a path, and reads CRLF files', () => {
    assert.deepEqual(parseDepfile('out.o: a:b.h c.h\r\n'), ['a:b.h', 'c.h'])
  })

  it('maps dependencies onto the project: absolute under the root, or relative to the working folder; the toolchain\'s are left out', () => {
    const deps = ['/p/src/a.c', '/usr/include/stdio.h', 'generated/t.h', '../include/x.h', '/p/build/../include/x.h', '../../outside.h', '/pother/z.h']
    assert.deepEqual(projectFilesOf(deps, { execRoot: '/p', cwd: 'build' }), ['build/generated/t.h', 'include/x.h', 'src/a.c'])
  })
})
