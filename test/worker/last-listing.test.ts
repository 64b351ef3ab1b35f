import assert from 'node:assert/strict'
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { createBlake3Hasher } from '../../src/cas/hasher.js'
import { openCasStore, type CasStore } from '../../src/cas/store.js'
import { inputListingBytes } from '../../src/worker/action-payload.js'
import { LastListing } from '../../src/worker/last-listing.js'

/** A blob put into the store's folder by hand, as an earlier worker process left it: nothing in this process has hashed it. */
async function leftBehind(cas: CasStore, text: string): Promise<string> {
  const digest = cas.hasher.hash(text)
  await mkdir(join(cas.pathOf(digest), '..'), { recursive: true })
  await writeFile(cas.pathOf(digest), text, { mode: 0o444 })
  return digest
}

describe('the last input listing, checked by a new worker process', () => {
  it("checks the blobs of the listing an earlier process noted, removes a corrupt one, and stops when told", async () => {
    const dir = await mkdtemp(join(tmpdir(), 'bldr-last-listing-'))
    try {
      const cas = await openCasStore(join(dir, 'cas'), await createBlake3Hasher())
      const tree = await Promise.all(['a.h', 'b.h', 'c.h', 'd.h'].map(async (path) => ({ path, digest: await leftBehind(cas, `/* ${path} */\n`), executable: false })))
      const listing = await leftBehind(cas, inputListingBytes(tree))
      const file = join(dir, 'last-listing')
      new LastListing(file).note(listing)
      assert.equal(await readFile(file, 'utf8'), `${listing}\n`)

      // Rot one of them behind the worker's back: the check finds it, as a use would.
      const rotten = cas.pathOf(tree[2]!.digest)
      await chmod(rotten, 0o644)
      await writeFile(rotten, '/* not c.h */\n')
      const aborted = new AbortController()
      aborted.abort()
      assert.equal(await new LastListing(file).verify(cas, { signal: aborted.signal }), 1, 'only the listing itself before it stopped')
      assert.equal(cas.isKnown(tree[0]!.digest), false)

      assert.equal(await new LastListing(file).verify(cas), 3, 'its three intact blobs (the listing itself was checked before it stopped)')
      for (const i of [0, 1, 3]) assert.equal(cas.isKnown(tree[i]!.digest), true)
      assert.equal(await cas.has(tree[2]!.digest), false, 'the corrupt blob is removed (fetched again when an action needs it)')
      assert.equal(cas.corruption.storedRemoved, 1)
      assert.equal(await new LastListing(file).verify(cas), 0, 'nothing left to check in this process')
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('checks nothing when no listing was noted, the note is not a digest, or the listing left the store', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'bldr-last-listing-'))
    try {
      const cas = await openCasStore(join(dir, 'cas'), await createBlake3Hasher())
      const file = join(dir, 'last-listing')
      assert.equal(await new LastListing(file).verify(cas), 0)
      await writeFile(file, 'not a digest\n')
      assert.equal(await new LastListing(file).verify(cas), 0)
      new LastListing(file).note('e'.repeat(64))
      assert.equal(await new LastListing(file).verify(cas), 0)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})
