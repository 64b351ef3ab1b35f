import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { isThinArchiveFile, thinArchiveMembers } from '../../src/cas/thin-archive.js'

describe('thin archives', () => {
  it('names the members of a real thin archive (long names, relative to its folder), and nothing of a regular one', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'bldr-thin-'))
    try {
      await mkdir(join(dir, 'objects-with-a-long-folder-name'), { recursive: true })
      await mkdir(join(dir, 'lib'))
      await writeFile(join(dir, 'a.c'), 'int a(void) { return 1; }\n')
      await writeFile(join(dir, 'b.c'), 'int b(void) { return 2; }\n')
      execFileSync('cc', ['-c', 'a.c', '-o', 'objects-with-a-long-folder-name/a.o'], { cwd: dir })
      execFileSync('cc', ['-c', 'b.c', '-o', 'b.o'], { cwd: dir })
      execFileSync('ar', ['csrDT', 'lib/libthin.a', 'objects-with-a-long-folder-name/a.o', 'b.o'], { cwd: dir })
      execFileSync('ar', ['csrD', 'lib/libfat.a', 'b.o'], { cwd: dir })
      assert.equal(isThinArchiveFile(join(dir, 'lib/libthin.a')), true)
      assert.deepEqual(thinArchiveMembers(await readFile(join(dir, 'lib/libthin.a'))), ['../objects-with-a-long-folder-name/a.o', '../b.o'])
      assert.equal(isThinArchiveFile(join(dir, 'lib/libfat.a')), false)
      assert.equal(thinArchiveMembers(await readFile(join(dir, 'lib/libfat.a'))), undefined)
      assert.equal(isThinArchiveFile(join(dir, 'missing.a')), false)
      assert.equal(thinArchiveMembers(Buffer.from('!<thin>\nnot a header')), undefined, 'a malformed one names nothing')
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})
