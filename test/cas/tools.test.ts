import assert from 'node:assert/strict'
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { createBlake3Hasher } from '../../src/cas/hasher.js'
import { programNames, ToolIndex } from '../../src/cas/tools.js'
import { SourceDigests } from '../../src/build/source-digests.js'

describe('the programs an action starts', () => {
  it('names argv[0] and, for sh -c, the first word of each command', () => {
    assert.deepEqual(programNames(['cc', '-c', 'a.c']), ['cc'])
    assert.deepEqual(programNames(['/bin/sh', '-c', '/usr/bin/cc -DX=1 -o a.o -c a.c']), ['/bin/sh', '/usr/bin/cc'])
    assert.deepEqual(programNames(['/bin/sh', '-c', 'cd /tmp/b && /usr/bin/ar qc lib.a a.o && /usr/bin/ranlib lib.a']), ['/bin/sh', '/usr/bin/ar', '/usr/bin/ranlib'])
    assert.deepEqual(programNames(['sh', '-c', 'LC_ALL=C sort x | uniq > y; echo done']), ['sh', 'sort', 'uniq'])
    assert.deepEqual(programNames(['sh', '-c', '"$CC" -c a.c']), ['sh'], 'a quoted or expanded word names no file')
  })

  it('keys a program by the file it resolves to and its content; programs in the project are inputs, not tools', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bldr-tools-'))
    try {
      const bin = join(dir, 'bin')
      const project = join(dir, 'project')
      mkdirSync(bin)
      mkdirSync(project)
      const tool = (name: string, body: string): void => {
        writeFileSync(join(bin, name), `#!/bin/sh\n${body}\n`)
        chmodSync(join(bin, name), 0o755)
      }
      tool('mycc-1', 'echo one')
      tool('mycc-2', 'echo two')
      symlinkSync('mycc-1', join(bin, 'mycc'))
      writeFileSync(join(project, 'gen.sh'), '#!/bin/sh\n')
      chmodSync(join(project, 'gen.sh'), 0o755)
      const PATH = `${bin}:/usr/bin:/bin`
      const index = new ToolIndex(await createBlake3Hasher(), project)
      const [one] = index.toolsOf(['mycc', '-c', 'a.c'], { PATH })
      assert.equal(one?.path, join(bin, 'mycc-1'), 'the symlink resolved')
      assert.equal(index.toolsOf(['nope-not-a-tool'], { PATH }).length, 0)
      assert.equal(index.toolsOf([join(project, 'gen.sh')], { PATH }).length, 0, 'a program in the project is an input')
      // The compiler is upgraded in place: same path, new content, new digest.
      tool('mycc-1', 'echo one, upgraded')
      const [upgraded] = index.toolsOf(['mycc', '-c', 'a.c'], { PATH })
      assert.equal(upgraded?.path, one?.path)
      assert.notEqual(upgraded?.digest, one?.digest)
      const [other] = new ToolIndex(await createBlake3Hasher(), project).toolsOf([join(bin, 'mycc-2')], { PATH })
      assert.notEqual(other?.digest, upgraded?.digest)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('remembers the digest of a settled program between processes by its identity; a fresh one is hashed and not remembered', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bldr-tools-'))
    try {
      const file = join(dir, 'tool-digests.json')
      const sh = realpathSync('/bin/sh')
      const project = join(dir, 'project')
      const hasher = await createBlake3Hasher()
      const first = SourceDigests.load(file)
      const [hashed] = new ToolIndex(hasher, project, first).toolsOf(['/bin/sh'], {})
      assert.equal(hashed?.digest, hasher.hash(readFileSync(sh)))
      first.save()
      const saved = JSON.parse(readFileSync(file, 'utf8')) as { entries: Record<string, [string, string]> }
      assert.equal(saved.entries[sh]?.[1], hashed?.digest, 'the system shell (old, settled) is remembered')
      // A later process trusts the remembered digest while the file is unchanged: it does not read the file.
      const forged = 'c'.repeat(64)
      saved.entries[sh] = [saved.entries[sh]![0], forged]
      writeFileSync(file, JSON.stringify(saved))
      const [remembered] = new ToolIndex(hasher, project, SourceDigests.load(file)).toolsOf(['/bin/sh'], {})
      assert.equal(remembered?.digest, forged)
      // A program written just now could change again within the clock's tick: hashed, not remembered.
      const bin = join(dir, 'bin')
      mkdirSync(bin)
      writeFileSync(join(bin, 'fresh-cc'), '#!/bin/sh\n')
      chmodSync(join(bin, 'fresh-cc'), 0o755)
      const third = SourceDigests.load(file)
      const [fresh] = new ToolIndex(hasher, project, third).toolsOf(['fresh-cc'], { PATH: bin })
      assert.equal(fresh?.digest, hasher.hash(readFileSync(join(bin, 'fresh-cc'))))
      third.save()
      const after = JSON.parse(readFileSync(file, 'utf8')) as { entries: Record<string, unknown> }
      assert.equal(after.entries[join(bin, 'fresh-cc')], undefined)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
