import assert from 'node:assert/strict'
import { appendFile, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { setTimeout as delay } from 'node:timers/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { pino } from 'pino'
import { buildDistributed } from '../../src/build/distributed.js'
import { openProject } from '../../src/build/project.js'
import { SETTLED_MS } from '../../src/build/source-digests.js'
import { servedSourcesOf, ServedSources } from '../../src/build/served-sources.js'
import { DEFAULT_SEED_POLICY } from '../../src/net/seed-policy.js'
import { createBlake3Hasher } from '../../src/cas/hasher.js'
import { copyExample, handedOver, withProject } from '../helpers.js'

describe('the sources a mesh client serves without storing them', () => {
  it('serves the bytes it was given while under its cap, and past it reads the file again, only while it still has those bytes', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'bldr-served-'))
    try {
      const hasher = await createBlake3Hasher()
      const lines: string[] = []
      const served = new ServedSources(hasher, { maxKeptBytes: 10, log: pino({ level: 'warn' }, { write: (l: string) => void lines.push(l) }) })
      const [a, b] = [join(dir, 'a.h'), join(dir, 'b.c')]
      await writeFile(a, 'int a;\n') // 7 bytes: kept
      await writeFile(b, 'int b = 2;\n') // 11 bytes: over the cap, so only its path is kept
      const da = hasher.hash('int a;\n')
      const db = hasher.hash('int b = 2;\n')
      served.add(da, a, Buffer.from('int a;\n'))
      served.add(db, b, Buffer.from('int b = 2;\n'))
      assert.equal(served.keptBytes, 7)
      assert.ok(served.has(da) && served.has(db) && !served.has(hasher.hash('other')))
      assert.ok(served.holds(da) && !served.holds(db), 'bytes held for a.h only')
      assert.equal(served.bytesOf(db)?.toString(), 'int b = 2;\n', 'read from its file')

      await writeFile(a, 'int a = 1;\n')
      await writeFile(b, 'int b = 3;\n')
      assert.equal(served.bytesOf(da)?.toString(), 'int a;\n', 'kept bytes are what the build hashed, whatever the file holds now')
      assert.equal(served.bytesOf(db), undefined, 'a file that changed is not served')
      assert.equal(served.bytesOf(db), undefined)
      assert.equal(lines.filter((l) => l.includes(b)).length, 1, `warned once, naming the file: ${lines.join('')}`)
      assert.match(lines[0] ?? '', /no longer has the bytes this build hashed/)

      await rm(b)
      served.add(hasher.hash('gone'), b, Buffer.from('gone'))
      assert.equal(served.bytesOf(hasher.hash('gone')), undefined, 'past the cap, a file that is gone is not served either')
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})

describe('the sources a process serves from one build to the next', { timeout: 120_000 }, () => {
  it('are kept: building again on a mesh, it reads and hands over only the source that changed', async () => {
    await withProject(copyExample(), async (dir) => {
      const opts = { localSlots: [1, 1], strategy: 'random', seedPolicy: DEFAULT_SEED_POLICY, meshIdleS: 0 } as const
      // Sources settled before the first build, as they usually are (one written as a build hashes it is hashed again at the next).
      await delay(SETTLED_MS + 100)
      const first = await openProject({ dir })
      assert.equal((await buildDistributed(first, opts)).summary.ok, true)
      const served = servedSourcesOf(first.root, first.cas.hasher)
      const handed = handedOver(served, first.root)
      await appendFile(join(dir, 'src/lib/vars.c'), '\nint calc_kept_sources(void) { return 1; }\n')
      const second = await buildDistributed(await openProject({ dir }), opts)
      assert.equal(second.summary.ok, true)
      assert.ok(second.summary.executed > 0, 'the changed source was compiled on the mesh')
      assert.deepEqual(handed, ['src/lib/vars.c'])
    })
  })
})
