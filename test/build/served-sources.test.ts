import assert from 'node:assert/strict'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { pino } from 'pino'
import { ServedSources } from '../../src/build/served-sources.js'
import { createBlake3Hasher } from '../../src/cas/hasher.js'

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
