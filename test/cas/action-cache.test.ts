import assert from 'node:assert/strict'
import { mkdtemp, rm, writeFile, mkdir } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { ActionCache, computeActionKey, encodeActionKey, type ActionKeyParts, type ActionResult } from '../../src/cas/action-cache.js'
import { createBlake3Hasher, type Hasher } from '../../src/cas/hasher.js'

const D1 = 'a'.repeat(64)
const D2 = 'b'.repeat(64)

const base: ActionKeyParts = {
  argv: ['cc', '-c', 'a.c', '-o', 'a.o'],
  env: { PATH: '/usr/bin', LANG: 'C' },
  inputs: [
    { path: 'a.c', digest: D1, executable: false },
    { path: 'a.h', digest: D2, executable: false },
  ],
  outputs: ['a.o'],
  sandbox: 'local',
  platform: 'linux-x64',
}

describe('action key', () => {
  let hasher: Hasher
  before(async () => {
    hasher = await createBlake3Hasher()
  })

  it('does not depend on the order of env entries or inputs', () => {
    const reordered: ActionKeyParts = { ...base, env: { LANG: 'C', PATH: '/usr/bin' }, inputs: [...base.inputs].reverse() }
    assert.equal(encodeActionKey(reordered), encodeActionKey(base))
    assert.equal(computeActionKey(hasher, reordered), computeActionKey(hasher, base))
  })

  const changes: [string, Partial<ActionKeyParts>][] = [
    ['an argument', { argv: ['cc', '-O2', '-c', 'a.c', '-o', 'a.o'] }],
    ['an env value', { env: { PATH: '/usr/bin', LANG: 'en_US' } }],
    ['an input digest', { inputs: [{ path: 'a.c', digest: D2, executable: false }, base.inputs[1]!] }],
    ['an input path', { inputs: [{ path: 'b.c', digest: D1, executable: false }, base.inputs[1]!] }],
    ['an input mode', { inputs: [{ path: 'a.c', digest: D1, executable: true }, base.inputs[1]!] }],
    ['an output path', { outputs: ['b.o'] }],
    ['the sandbox', { sandbox: 'docker' }],
    ['the platform', { platform: 'linux-arm64' }],
  ]
  for (const [what, change] of changes) {
    it(`changes with ${what}`, () => {
      assert.notEqual(computeActionKey(hasher, { ...base, ...change }), computeActionKey(hasher, base))
    })
  }

  it('is exactly the JSON of the canonical array', () => {
    const expected = JSON.stringify([
      'bldr-action-key-v1',
      base.argv,
      [['LANG', 'C'], ['PATH', '/usr/bin']],
      [['a.c', D1, 0], ['a.h', D2, 0]],
      ['a.o'],
      'local',
      'linux-x64',
    ])
    assert.equal(encodeActionKey(base), expected)
    assert.equal(encodeActionKey({ ...base, inputs: [...base.inputs].reverse() }), expected)
  })

  it('keeps argv order significant', () => {
    assert.notEqual(computeActionKey(hasher, { ...base, argv: [...base.argv].reverse() }), computeActionKey(hasher, base))
  })
})

describe('action cache', () => {
  let dir: string
  let ac: ActionCache
  const result: ActionResult = {
    v: 1,
    exitCode: 0,
    outputs: [{ path: 'a.o', digest: D1, size: 10, executable: false }],
    stdout: { digest: D2, size: 0 },
    stderr: { digest: D2, size: 0 },
    durationMs: 12.5,
    sandbox: 'local',
  }
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'bldr-ac-'))
    ac = new ActionCache(dir)
  })
  after(() => rm(dir, { recursive: true, force: true }))

  it('misses, then hits after put', async () => {
    const key = 'c'.repeat(64)
    assert.equal(await ac.get(key), null)
    await ac.put(key, result)
    assert.deepEqual(await ac.get(key), result)
  })

  it('treats an unreadable or malformed entry as a miss', async () => {
    const key = 'd'.repeat(64)
    await mkdir(join(dir, 'dd'), { recursive: true })
    await writeFile(join(dir, 'dd', `${key}.json`), '{"v":1,"exitCode":')
    assert.equal(await ac.get(key), null)
    await writeFile(join(dir, 'dd', `${key}.json`), JSON.stringify({ ...result, outputs: [{ path: 'x', digest: 'nothex' }] }))
    assert.equal(await ac.get(key), null)
  })
})
