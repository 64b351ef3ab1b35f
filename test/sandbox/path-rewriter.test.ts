import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { pathRewriter } from '../../sandbox/local.js'

describe('local sandbox: moving a command to its scratch folder', () => {
  it('replaces the project folder wherever it is a whole path, and nothing else', () => {
    const move = pathRewriter('/p/proj', '/s/1/root')
    assert.equal(move('cd /p/proj/build && cc -I/p/proj/include -c /p/proj/src/a.c'), 'cd /s/1/root/build && cc -I/s/1/root/include -c /s/1/root/src/a.c')
    assert.equal(move('/p/proj'), '/s/1/root')
    assert.equal(move('/p/project/a.c /p/proj.old/b.c /p/proj-2/c'), '/p/project/a.c /p/proj.old/b.c /p/proj-2/c')
    assert.equal(move("'/p/proj/a b.c':/p/proj"), "'/s/1/root/a b.c':/s/1/root")
  })

  it('takes the folder literally (regular-expression characters and $ in either path)', () => {
    assert.equal(pathRewriter('/p/a+b (1)', '/s/$&')('x /p/a+b (1)/y /p/aab (1)/z'), 'x /s/$&/y /p/aab (1)/z')
  })
})
