import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { chmod, link, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { createBlake3Hasher, type Hasher } from '../../src/cas/hasher.js'
import { BLOB_OWNER, openCasStore, type CasStore } from '../../src/cas/store.js'
import { BlobNotFoundError, DigestMismatchError } from '../../src/errors.js'

/** Official BLAKE3 test vectors (BLAKE3-team/BLAKE3 test_vectors, hash of the empty input and of "abc"). */
const EMPTY = 'af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262'
const ABC = '6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85'

/** Flip one byte of a file that is read-only in the store. */
async function corrupt(path: string, offset = 0): Promise<void> {
  await chmod(path, 0o644)
  const bytes = await readFile(path)
  bytes[offset] = (bytes[offset] ?? 0) ^ 0xff
  await writeFile(path, bytes)
}

describe('BLAKE3 hasher', () => {
  let hasher: Hasher
  before(async () => {
    hasher = await createBlake3Hasher()
  })
  it('matches the reference vectors', () => {
    assert.equal(hasher.hash(''), EMPTY)
    assert.equal(hasher.hash(Buffer.from('abc')), ABC)
  })
  it('streams to the same digest as one shot, across independent streams', async () => {
    const data = randomBytes(1 << 20)
    const a = await hasher.createStream()
    const b = await hasher.createStream()
    for (let i = 0; i < data.length; i += 4096) {
      a.update(data.subarray(i, i + 4096))
      b.update(Buffer.from('x'))
    }
    assert.equal(a.digest(), hasher.hash(data))
    assert.equal(b.digest(), hasher.hash('x'.repeat(256)))
  })
})

describe('CAS store', () => {
  let dir: string
  let cas: CasStore
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'bldr-cas-'))
    cas = await openCasStore(join(dir, 'cas'), await createBlake3Hasher())
  })
  after(() => rm(dir, { recursive: true, force: true }))

  it('stores bytes under their BLAKE3 digest in a sharded folder, read-only', async () => {
    const ref = await cas.putBytes('abc')
    assert.deepEqual(ref, { digest: ABC, size: 3 })
    assert.equal(cas.pathOf(ABC), join(dir, 'cas', '6', ABC))
    assert.equal((await stat(cas.pathOf(ABC))).mode & 0o777, 0o444)
    assert.equal((await cas.getBytes(ABC)).toString(), 'abc')
    assert.equal(await cas.has(ABC), true)
    assert.equal(await cas.has(EMPTY), false)
  })

  it('leaves no temporary files behind', async () => {
    await cas.putBytes('one')
    await cas.putBytes('one')
    const src = join(dir, 'src.txt')
    await writeFile(src, 'two')
    await cas.putFile(src)
    assert.deepEqual(await readdir(join(dir, 'cas', 'tmp')), [])
    assert.equal(await readFile(src, 'utf8'), 'two', 'putFile without move keeps the source')
  })

  it('moves a file into the store when asked', async () => {
    const src = join(dir, 'moved.txt')
    await writeFile(src, 'moved contents')
    const ref = await cas.putFile(src, { move: true })
    await assert.rejects(stat(src), /ENOENT/)
    assert.equal((await cas.getBytes(ref.digest)).toString(), 'moved contents')
  })

  it('detects a corrupted blob on read, naming both digests', async () => {
    const ref = await cas.putBytes('precious bytes')
    await corrupt(cas.pathOf(ref.digest))
    const actual = (await createBlake3Hasher()).hash(await readFile(cas.pathOf(ref.digest)))
    await assert.rejects(cas.getBytes(ref.digest), (err: unknown) => {
      assert.ok(err instanceof DigestMismatchError)
      assert.equal(err.expected, ref.digest)
      assert.equal(err.actual, actual)
      assert.match(err.message, new RegExp(`expected blake3 ${ref.digest}, got blake3 ${actual}`))
      return true
    })
  })

  it('removes a blob found corrupt (counted), so storing the right bytes again repairs it', async () => {
    const ref = await cas.putBytes('bytes that rot')
    await corrupt(cas.pathOf(ref.digest), 2)
    const before = cas.corruption.storedRemoved
    await assert.rejects(cas.verify(ref.digest), (err: unknown) => err instanceof DigestMismatchError && /removed from the store/.test(err.message))
    assert.equal(cas.corruption.storedRemoved, before + 1)
    assert.equal(await cas.has(ref.digest), false, 'a corrupt blob is not kept')
    await assert.rejects(cas.getBytes(ref.digest), BlobNotFoundError)
    // "Already stored" would otherwise skip this write and keep the bad bytes.
    await cas.putBytes('bytes that rot')
    assert.equal((await cas.getBytes(ref.digest)).toString(), 'bytes that rot')
  })

  it('refuses to materialize a corrupted blob and writes nothing', async () => {
    const ref = await cas.putBytes('to be copied out')
    await corrupt(cas.pathOf(ref.digest), 3)
    const dest = join(dir, 'out', 'copy.txt')
    await assert.rejects(cas.materialize(ref.digest, dest), DigestMismatchError)
    await assert.rejects(stat(dest), /ENOENT/)
  })

  it('materializes a blob with the requested mode', async () => {
    const ref = await cas.putBytes('#!/bin/sh\necho hi\n')
    const dest = join(dir, 'bin', 'script')
    await cas.materialize(ref.digest, dest, { executable: true })
    assert.equal((await stat(dest)).mode & 0o777, 0o755)
    assert.equal(await readFile(dest, 'utf8'), '#!/bin/sh\necho hi\n')
  })

  it('verifies large blobs while streaming them out', async () => {
    const big = randomBytes(33 * 1024 * 1024)
    const src = join(dir, 'big.bin')
    await writeFile(src, big)
    const ref = await cas.putFile(src)
    const dest = join(dir, 'big-copy.bin')
    await cas.materialize(ref.digest, dest)
    assert.ok((await readFile(dest)).equals(big))
    await corrupt(cas.pathOf(ref.digest), 20 * 1024 * 1024)
    await assert.rejects(cas.materialize(ref.digest, join(dir, 'big-bad.bin')), DigestMismatchError)
    await assert.rejects(stat(join(dir, 'big-bad.bin')), /ENOENT/)
  })

  it('reports a missing blob by digest', async () => {
    await assert.rejects(cas.getBytes(EMPTY), BlobNotFoundError)
    await assert.rejects(cas.materialize(EMPTY, join(dir, 'nope')), BlobNotFoundError)
  })

  it('keeps blobs in 16 folders by their first hex digit, and moves those of a store laid out by two digits when it opens', async () => {
    const root = join(dir, 'layout')
    const fresh = await openCasStore(root, cas.hasher)
    const refs = await Promise.all(Array.from({ length: 200 }, (_, i) => fresh.putBytes(`blob ${i}`)))
    const shards = (await readdir(root)).filter((n) => n !== 'tmp').sort()
    assert.ok(shards.length <= 16 && shards.every((n) => /^[0-9a-f]$/.test(n)), `one-digit shards only: ${shards.join(' ')}`)
    for (const r of refs) assert.equal(fresh.pathOf(r.digest), join(root, r.digest.slice(0, 1), r.digest))
    // The layout before: <d0d1>/<digest>.
    const old = join(dir, 'old-layout')
    const ref = await cas.putBytes('stored by an older bldr')
    await mkdir(join(old, ref.digest.slice(0, 2)), { recursive: true })
    await writeFile(join(old, ref.digest.slice(0, 2), ref.digest), 'stored by an older bldr')
    const reopened = await openCasStore(old, cas.hasher)
    assert.equal((await reopened.getBytes(ref.digest)).toString(), 'stored by an older bldr')
    assert.deepEqual((await readdir(old)).sort(), [ref.digest.slice(0, 1), 'tmp'], 'the two-digit folder is gone')
  })
})

describe('a sealed CAS store (a worker run as root)', { skip: process.getuid?.() !== 0 && 'a sealed store needs root' }, () => {
  it('gives its blobs to a user no sandbox runs as, also those stored before it was sealed; a write from outside is still caught at the next use', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'bldr-cas-sealed-'))
    try {
      const hasher = await createBlake3Hasher()
      const before = await (await openCasStore(join(dir, 'cas'), hasher)).putBytes('stored before sealing')
      assert.equal((await stat(join(dir, 'cas', before.digest.slice(0, 1), before.digest))).uid, 0)
      const cas = await openCasStore(join(dir, 'cas'), hasher, { sealed: true })
      const ref = await cas.putBytes('abc')
      for (const d of [ref.digest, before.digest]) {
        await cas.verify(d)
        const st = await stat(cas.pathOf(d))
        assert.deepEqual([st.uid, st.gid, st.mode & 0o777], [BLOB_OWNER.uid, BLOB_OWNER.gid, 0o444], d)
      }
      // Root (or a failing disk) can still write it: the next use looks, finds it changed, and drops it.
      await writeFile(cas.pathOf(ref.digest), 'abd')
      await assert.rejects(cas.verify(ref.digest), DigestMismatchError)
      assert.equal(await cas.has(ref.digest), false)
      await mkdir(join(dir, 'stage'))
      await assert.rejects(cas.stage(ref.digest, join(dir, 'stage', 'abc')), BlobNotFoundError)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})

describe('a client store run by root: sources sealed, outputs the user\'s', { skip: process.getuid?.() !== 0 && 'sealing needs root' }, () => {
  it('gives a new source blob away, leaves a blob already stored as it was, and places a given-away blob in the project as a copy, never a link', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'bldr-cas-sources-'))
    try {
      const cas = await openCasStore(join(dir, 'cas'), await createBlake3Hasher())
      await writeFile(join(dir, 'src.txt'), 'a source\n')
      await writeFile(join(dir, 'out.txt'), 'an output\n')
      const output = await cas.putFile(join(dir, 'out.txt'), { move: true })
      const source = await cas.putFile(join(dir, 'src.txt'), { seal: true })
      const owner = async (d: string) => {
        const st = await stat(cas.pathOf(d))
        return [st.uid, st.mode & 0o777]
      }
      assert.deepEqual(await owner(source.digest), [BLOB_OWNER.uid, 0o444])
      assert.deepEqual(await owner(output.digest), [0, 0o444])
      // A source with an output's bytes: the stored blob (a link in the project) keeps its owner.
      await writeFile(join(dir, 'same.txt'), 'an output\n')
      await cas.putFile(join(dir, 'same.txt'), { seal: true })
      assert.deepEqual(await owner(output.digest), [0, 0o444])

      assert.equal(await cas.placeOutput(output.digest, join(dir, 'project', 'o.txt'), { executable: false }), 'link')
      assert.equal(await cas.placeOutput(source.digest, join(dir, 'project', 's.txt'), { executable: false }), 'copy')
      const placed = await stat(join(dir, 'project', 's.txt'))
      assert.deepEqual([placed.uid, placed.ino === (await stat(cas.pathOf(source.digest))).ino], [0, false])
      assert.equal(await readFile(join(dir, 'project', 's.txt'), 'utf8'), 'a source\n')
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})

describe('what a process verified, across the stores it opens on one folder', () => {
  /** A hasher that counts its one-shot hashes (every file this small is hashed in one). */
  async function countingHasher(): Promise<Hasher & { count: number }> {
    const h = await createBlake3Hasher()
    const counting = { algorithm: h.algorithm, count: 0, hash: (data: Uint8Array | string) => (counting.count++, h.hash(data)), createStream: () => h.createStream() }
    return counting
  }
  /** A store on a new folder (removed after `fn`), hashing with a counting hasher. */
  async function withCountingStore(fn: (w: { dir: string; cas: CasStore; hasher: Hasher & { count: number } }) => Promise<void>): Promise<void> {
    const dir = await mkdtemp(join(tmpdir(), 'bldr-cas-verified-'))
    try {
      const hasher = await countingHasher()
      await fn({ dir, cas: await openCasStore(join(dir, 'cas'), hasher), hasher })
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  }
  /** A blob put into the store's folder by hand, as an earlier process left it: nothing here has hashed it. */
  async function leftBehind(cas: CasStore, text: string): Promise<string> {
    const digest = (await createBlake3Hasher()).hash(text)
    await mkdir(join(cas.pathOf(digest), '..'), { recursive: true })
    await writeFile(cas.pathOf(digest), text, { mode: 0o444 })
    return digest
  }

  it('a store opened again on the same folder does not hash again what the first one verified, and still catches a blob changed since', async () => {
    await withCountingStore(async ({ dir, cas: first, hasher }) => {
      const digest = await leftBehind(first, 'stored by an earlier process')
      await first.verify(digest)
      assert.equal(hasher.count, 1)
      const again = await openCasStore(join(dir, 'cas'), hasher)
      await again.verify(digest)
      assert.equal(hasher.count, 1, 'the second store trusts the check the first one made')
      await corrupt(again.pathOf(digest))
      await assert.rejects(again.verify(digest), DigestMismatchError)
      assert.equal(hasher.count, 2)
      // A store on another folder shares nothing.
      const other = await openCasStore(join(dir, 'other-cas'), hasher)
      const elsewhere = await leftBehind(other, 'stored by an earlier process')
      assert.equal(elsewhere, digest)
      await other.verify(elsewhere)
      assert.equal(hasher.count, 3)
    })
  })

  it('placing a new version of an output of the same size does not read the old one; an identical copy in place is kept', async () => {
    await withCountingStore(async ({ dir, cas, hasher }) => {
      const dest = join(dir, 'project', 'out.o')
      await mkdir(join(dir, 'project'))
      const v1 = await cas.putBytes('version 1')
      const v2 = await cas.putBytes('version 2')
      assert.equal(await cas.placeOutput(v1.digest, dest, { executable: false }), 'link')
      const before = hasher.count
      assert.equal(await cas.placeOutput(v2.digest, dest, { executable: false }), 'link')
      assert.equal(hasher.count, before, 'the old output is a link to a blob known to be another one')
      assert.equal(await readFile(dest, 'utf8'), 'version 2')
      assert.equal((await stat(dest)).ino, (await stat(cas.pathOf(v2.digest))).ino)

      const copy = join(dir, 'project', 'copy.o')
      await writeFile(copy, 'version 2')
      assert.equal(await cas.placeOutput(v2.digest, copy, { executable: false }), 'kept')
      assert.equal(hasher.count, before + 1, 'a file that is no blob of this store is read to tell')
      await writeFile(copy, 'version 3')
      assert.equal(await cas.placeOutput(v2.digest, copy, { executable: false }), 'link')
      assert.equal(await readFile(copy, 'utf8'), 'version 2')
    })
  })

  it('verifyPlaced takes an output in place that is a link to a blob as that blob, verified; not a copy, nor a link changed since', async () => {
    await withCountingStore(async ({ dir, cas, hasher }) => {
      await mkdir(join(dir, 'project'))
      const digest = await leftBehind(cas, 'an output an earlier build placed')
      const dest = join(dir, 'project', 'out.o')
      await link(cas.pathOf(digest), dest)
      assert.equal(await cas.verifyPlaced(dest), digest)
      const counted = hasher.count
      await cas.verify(digest)
      assert.equal(hasher.count, counted, 'its blob is verified now')

      await writeFile(join(dir, 'project', 'copy.o'), 'an output an earlier build placed')
      assert.equal(await cas.verifyPlaced(join(dir, 'project', 'copy.o')), undefined)
      assert.equal(await cas.verifyPlaced(join(dir, 'project', 'missing.o')), undefined)

      const other = await leftBehind(cas, 'another output')
      const dest2 = join(dir, 'project', 'other.o')
      await link(cas.pathOf(other), dest2)
      await corrupt(dest2)
      assert.equal(await cas.verifyPlaced(dest2), undefined, 'its bytes no longer name its blob')
      await assert.rejects(cas.verify(other), DigestMismatchError)
    })
  })
})
