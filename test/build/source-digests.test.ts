import assert from 'node:assert/strict'
import { lstatSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import type { Digest } from '../../src/cas/hasher.js'
import { SETTLED_MS, SourceDigests } from '../../src/build/source-digests.js'
import { makeProject, withProject } from '../helpers.js'
import { buildLocally, openProject } from '../../src/build/project.js'
import type { BuildEvent } from '../../src/build/engine.js'

const OLD_TIME = new Date('2020-01-01T00:00:00Z')
const D1 = 'a'.repeat(64) as Digest
const D2 = 'b'.repeat(64) as Digest

describe('remembered source digests', () => {
  const dir = mkdtempSync(join(tmpdir(), 'bldr-source-digests-'))
  const cacheFile = join(dir, 'state', 'source-digests.json')
  const src = join(dir, 'a.c')
  after(() => rmSync(dir, { recursive: true, force: true }))
  const st = () => lstatSync(src, { bigint: true })
  /** As if hashing began well after the file's times settled. */
  const later = () => Date.now() + SETTLED_MS + 1_000

  /** A round mtime in the past, so it can be put back exactly. */
  const OLD = OLD_TIME

  it('are trusted while the file is exactly as it was, across builds (saved and loaded)', () => {
    writeFileSync(src, 'int a;\n')
    utimesSync(src, OLD, OLD)
    const first = SourceDigests.load(cacheFile)
    assert.equal(first.get('a.c', st()), undefined, 'nothing remembered yet')
    first.set('a.c', st(), D1, later())
    first.save()
    assert.equal(SourceDigests.load(cacheFile).get('a.c', st()), D1)
  })

  it('are not trusted after any write, even one that keeps the size and puts the mtime back', () => {
    const before = st()
    writeFileSync(src, 'int b;\n')
    utimesSync(src, OLD, OLD)
    assert.equal(st().size, before.size)
    assert.equal(st().mtimeNs, before.mtimeNs, 'the mtime is back')
    assert.equal(SourceDigests.load(cacheFile).get('a.c', st()), undefined, 'the ctime moved')
  })

  it('are not remembered for a file whose times were not yet settled when hashing began', () => {
    writeFileSync(src, 'int c;\n')
    const cache = SourceDigests.load(cacheFile)
    // Hashing began now: the file was written within the coarse-clock window, a second write in the same tick could go unseen.
    cache.set('a.c', st(), D2, Date.now())
    cache.save()
    assert.equal(SourceDigests.load(cacheFile).get('a.c', st()), undefined)
  })

  it('a corrupt or foreign cache file is ignored', () => {
    writeFileSync(cacheFile, '{"v":1,"entries":{"a.c":["x","not a digest"]}}')
    assert.equal(SourceDigests.load(cacheFile).get('a.c', st()), undefined)
    writeFileSync(cacheFile, 'garbage')
    const cache = SourceDigests.load(cacheFile)
    cache.set('a.c', st(), D1, later())
    cache.save()
    assert.equal(JSON.parse(readFileSync(cacheFile, 'utf8')).v, 1, 'rewritten whole')
  })
})

describe('a build with remembered source digests', () => {
  it('takes an unchanged source\'s digest from them (a forged entry shows it, and is caught when the source is stored), and hashes a changed source again', async () => {
    await withProject(
      makeProject({
        'BUILD.yaml': 'actions:\n  copy:\n    command: [sh, -c, "cat in.txt > out.txt"]\n    inputs: [in.txt]\n    outputs: [out.txt]\n',
        'in.txt': 'one\n',
      }),
      async (root) => {
        let events: BuildEvent[] = []
        const build = async () => {
          events = []
          return buildLocally(await openProject({ dir: root }), { jobs: 1, onEvent: (e) => events.push(e) })
        }
        const cacheFile = join(root, '.bldr', 'source-digests.json')
        assert.equal((await build()).executed, 1)
        // The file was just written: its digest is remembered only by a build that starts once its times have settled.
        await new Promise((r) => setTimeout(r, SETTLED_MS + 200))
        assert.equal((await build()).cached, 1)
        const saved = JSON.parse(readFileSync(cacheFile, 'utf8')) as { v: 1; entries: Record<string, [string, string]> }
        assert.ok(saved.entries['in.txt'], `remembered: ${JSON.stringify(saved)}`)
        // Forge the remembered digest: the next build believes it (a new key, so the action runs), and storing the source finds the truth.
        writeFileSync(cacheFile, JSON.stringify({ v: 1, entries: { 'in.txt': [saved.entries['in.txt']![0], 'c'.repeat(64)] } }))
        const forged = await build()
        assert.equal(forged.ok, false, 'the forged digest was used, and caught')
        assert.match(JSON.stringify(events), /in\.txt.*changed \(was blake3 c{64}/)
        // A change that keeps the size and puts the mtime back: only the ctime says so, and that is enough.
        rmSync(cacheFile)
        assert.equal((await build()).executed, 0, 'cached again under the true digest')
        // A round mtime, so it can be put back exactly; the ctime cannot be.
        utimesSync(join(root, 'in.txt'), OLD_TIME, OLD_TIME)
        await new Promise((r) => setTimeout(r, SETTLED_MS + 200))
        await build()
        assert.ok(JSON.parse(readFileSync(cacheFile, 'utf8')).entries['in.txt'], 'remembered again')
        const before = lstatSync(join(root, 'in.txt'), { bigint: true })
        writeFileSync(join(root, 'in.txt'), 'two\n')
        utimesSync(join(root, 'in.txt'), OLD_TIME, OLD_TIME)
        assert.equal(lstatSync(join(root, 'in.txt'), { bigint: true }).mtimeNs, before.mtimeNs)
        assert.equal(lstatSync(join(root, 'in.txt')).size, Number(before.size))
        const again = await build()
        assert.equal(again.executed, 1, 'the changed source was hashed again and its action ran')
        assert.equal(readFileSync(join(root, 'out.txt'), 'utf8'), 'two\n')
      },
    )
  })
})
