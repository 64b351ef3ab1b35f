/**
 * Reused scratch folders (sandbox/scratch.ts), on the real file system: what an
 * action leaves behind never reaches the next one, including in folders the
 * clean-up does not list because they looked unchanged.
 */
import assert from 'node:assert/strict'
import { mkdtemp, readdir, readFile, rm, unlink, utimes, writeFile, mkdir } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { createBlake3Hasher } from '../../src/cas/hasher.js'
import { openCasStore, type CasStore } from '../../src/cas/store.js'
import { ScratchPool, type Scratch, type ScratchLayout } from '../../sandbox/scratch.js'

async function withPool(fn: (pool: ScratchPool, cas: CasStore) => Promise<void>, opts: { sealed?: boolean; actionUid?: number } = {}): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'bldr-scratch-'))
  const cas = await openCasStore(join(dir, 'cas'), await createBlake3Hasher(), { sealed: opts.sealed ?? false })
  const pool = new ScratchPool(cas, join(dir, 'scratch'), opts.actionUid !== undefined ? { actionUid: opts.actionUid } : {})
  try {
    await fn(pool, cas)
  } finally {
    pool.close()
    await rm(dir, { recursive: true, force: true })
  }
}

async function layoutOf(cas: CasStore, files: Record<string, string>, outputs: string[]): Promise<ScratchLayout> {
  const inputs = []
  for (const [path, text] of Object.entries(files)) inputs.push({ path, digest: (await cas.putBytes(text)).digest, executable: false })
  return { inputs, outputs }
}

/** Stage `layout` in `scratch` a second time with its folders dated an hour back, so they count as settled. */
async function settle(pool: ScratchPool, scratch: Scratch, layout: ScratchLayout): Promise<void> {
  pool.release(scratch, { retain: true })
  const hourAgo = new Date(Date.now() - 3_600_000)
  for (const d of ['', ...scratch.dirs]) await utimes(join(scratch.execRoot, d), hourAgo, hourAgo)
  await pool.acquire(layout, scratch)
}

const HEADERS = { 'include/a.h': 'int a(void);\n', 'include/b.h': 'int b(void);\n', 'src/x.c': 'int x;\n' }

describe('scratch folders', () => {
  it('a file an action adds to a settled folder of inputs is gone before the next action', async () => {
    await withPool(async (pool, cas) => {
      const layout = await layoutOf(cas, HEADERS, ['out/x.o'])
      const scratch = await pool.acquire(layout)
      await settle(pool, scratch, layout)
      assert.ok(scratch.settled.has('include'), 'the folder counts as settled (so its listing may be skipped when unchanged)')
      // The action: its output, and a stray file beside the staged headers and at the top.
      await writeFile(join(scratch.execRoot, 'out/x.o'), 'object')
      await writeFile(join(scratch.execRoot, 'include/stray.h'), 'left behind')
      await writeFile(join(scratch.execRoot, 'stray.txt'), 'left behind')
      await mkdir(join(scratch.execRoot, 'include/gen'))
      assert.deepEqual(pool.inputsWrittenTo(scratch), [])
      pool.release(scratch, { retain: true })
      await pool.acquire(layout, scratch)
      assert.deepEqual((await readdir(join(scratch.execRoot, 'include'))).sort(), ['a.h', 'b.h'])
      assert.deepEqual((await readdir(scratch.execRoot)).sort(), ['include', 'out', 'src'])
      assert.deepEqual(await readdir(join(scratch.execRoot, 'out')), [], 'the last output is not there for the next action')
    })
  })

  it('an unchanged settled folder keeps its staged files; one the action deleted is staged again', async () => {
    await withPool(async (pool, cas) => {
      const layout = await layoutOf(cas, HEADERS, ['out/x.o'])
      const scratch = await pool.acquire(layout)
      await settle(pool, scratch, layout)
      assert.deepEqual(pool.inputsWrittenTo(scratch), [])
      pool.release(scratch, { retain: true })
      await pool.acquire(layout, scratch)
      assert.equal(await readFile(join(scratch.execRoot, 'include/a.h'), 'utf8'), 'int a(void);\n')

      await settle(pool, scratch, layout)
      await unlink(join(scratch.execRoot, 'include/b.h'))
      assert.deepEqual(pool.inputsWrittenTo(scratch), [], 'removing a link does not touch the stored blob')
      pool.release(scratch, { retain: true })
      await pool.acquire(layout, scratch)
      assert.equal(await readFile(join(scratch.execRoot, 'include/b.h'), 'utf8'), 'int b(void);\n')
    })
  })

  it('a staged file written in place in a settled folder is not kept for the next action', async () => {
    await withPool(async (pool, cas) => {
      const layout = await layoutOf(cas, HEADERS, ['out/x.o'])
      const scratch = await pool.acquire(layout)
      await settle(pool, scratch, layout)
      // In place: the folder's mtime does not change (tests run as root, who may write a read-only file).
      await writeFile(join(scratch.execRoot, 'include/a.h'), 'int a(void) { return 1; }\n', { flag: 'r+' })
      assert.deepEqual(pool.inputsWrittenTo(scratch), ['include/a.h'], 'the write reached the stored blob through the link')
      pool.release(scratch, { retain: true })
      await assert.rejects(pool.acquire(layout, scratch), /digest mismatch/, 'the written blob is checked again, not staged as it is')
    })
  })

  it('a sub-folder the action made inside a settled folder is removed, its known sub-folders kept', async () => {
    await withPool(async (pool, cas) => {
      const layout = await layoutOf(cas, { ...HEADERS, 'include/sys/c.h': 'int c(void);\n' }, ['out/x.o'])
      const scratch = await pool.acquire(layout)
      await settle(pool, scratch, layout)
      await mkdir(join(scratch.execRoot, 'include/sys/extra'), { recursive: true })
      await writeFile(join(scratch.execRoot, 'include/sys/extra/d.h'), 'left behind')
      assert.deepEqual(pool.inputsWrittenTo(scratch), [])
      pool.release(scratch, { retain: true })
      await pool.acquire(layout, scratch)
      assert.deepEqual(await readdir(join(scratch.execRoot, 'include/sys')), ['c.h'])
      assert.deepEqual((await readdir(join(scratch.execRoot, 'include'))).sort(), ['a.h', 'b.h', 'sys'])
    })
  })

  it('inputs the action cannot write (a sealed store) are not checked after the run, but one it replaced is staged again', { skip: process.getuid?.() !== 0 && 'a sealed store needs root' }, async () => {
    await withPool(
      async (pool, cas) => {
        const layout = await layoutOf(cas, HEADERS, ['out/x.o'])
        const scratch = await pool.acquire(layout)
        assert.ok([...scratch.files.values()].every((f) => f.linked && f.sealed), 'links to blobs the action\'s user does not own')
        await settle(pool, scratch, layout)
        // The action removes a staged header and writes its own in its place (its folder's mtime moves).
        await unlink(join(scratch.execRoot, 'include/a.h'))
        await writeFile(join(scratch.execRoot, 'include/a.h'), 'int a(void) { return 2; }\n')
        assert.deepEqual(pool.inputsWrittenTo(scratch), [])
        pool.release(scratch, { retain: true })
        await pool.acquire(layout, scratch)
        assert.equal(await readFile(join(scratch.execRoot, 'include/a.h'), 'utf8'), 'int a(void);\n')
        assert.equal(await readFile(join(scratch.execRoot, 'include/b.h'), 'utf8'), 'int b(void);\n')
      },
      { sealed: true, actionUid: 1000 },
    )
  })
})
