import assert from 'node:assert/strict'
import type { ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { chmod, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { lpStream } from '@libp2p/utils'
import type { Multiaddr } from '@multiformats/multiaddr'
import { createBlake3Hasher } from '../../src/cas/hasher.js'
import { CasStore, openCasStore } from '../../src/cas/store.js'
import { BlobNotFoundError, DigestMismatchError } from '../../src/errors.js'
import { CAS_PROTOCOL_ID, CasClient } from '../../src/net/cas-protocol.js'
import { createMeshNode, parseMultiaddr, type MeshNode } from '../../src/net/node.js'
import { spawnReady, stopProcess } from '../helpers.js'
import { slowly } from './fixtures/slowly.js'

describe('/bldr/cas/1.0.0 between two processes', { timeout: 60_000 }, () => {
  let dir: string
  let server: CasStore
  let local: CasStore
  let peer: { proc: ChildProcess; addr: Multiaddr }
  let node: MeshNode
  let client: CasClient
  const large = randomBytes(3 * 1024 * 1024 + 17)
  const d: Record<string, string> = {}

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'bldr-cas-net-'))
    const hasher = await createBlake3Hasher()
    server = await openCasStore(join(dir, 'server'), hasher)
    local = await openCasStore(join(dir, 'client'), hasher)
    d.small = (await server.putBytes('hello world')).digest
    d.large = (await server.putBytes(large)).digest
    d.corrupt = (await server.putBytes('this blob will rot')).digest
    const rotten = server.pathOf(d.corrupt)
    await chmod(rotten, 0o644)
    await writeFile(rotten, 'this blob has rotted')
    d.truth = (await server.putBytes('the truth')).digest
    d.lie = hasher.hash('a lie') // claimed by the peer, which sends the truth's bytes
    d.missing = hasher.hash('nobody has this')
    const { proc, value } = await spawnReady('dist/test/net/fixtures/cas-peer.js', [join(dir, 'server'), '--lie', `${d.lie}=${d.truth}`])
    peer = { proc, addr: parseMultiaddr(value) }
    node = await createMeshNode()
    client = new CasClient(node, local, { timeoutMs: 5000 })
  })
  after(async () => {
    await node.stop()
    await stopProcess(peer.proc)
    await rm(dir, { recursive: true, force: true })
  })

  it('says which blobs it has', async () => {
    assert.deepEqual(await client.has(peer.addr, [d.small!, d.large!, d.missing!]), [d.small, d.large])
  })

  it('fetches small and multi-chunk blobs, verified, into the local store', async () => {
    await client.fetch(peer.addr, d.small!)
    assert.equal((await local.getBytes(d.small!)).toString(), 'hello world')
    const ref = await client.fetch(peer.addr, d.large!)
    assert.equal(ref.size, large.byteLength)
    assert.ok((await local.getBytes(d.large!)).equals(large))
  })

  it('fetches and pushes a blob many times the stream buffers into a store slower than the network: the receiver holds the sender back', async () => {
    // 24 MiB stored at 2 ms per 64 KiB chunk (32 MB/s): without flow control the receiver's 4 MiB read buffer overflows.
    const big = randomBytes(24 * 1024 * 1024)
    const slowDir = await mkdtemp(join(tmpdir(), 'bldr-cas-slow-'))
    const hasher = await createBlake3Hasher()
    const slowLocal = new (class extends CasStore {
      override putStream(expected: string, chunks: AsyncIterable<Uint8Array>, opts: { maxBytes: number; where: string }) {
        return super.putStream(expected, slowly(chunks, 2), opts)
      }
    })(join(slowDir, 'local'), hasher)
    const slowPeer = await spawnReady('dist/test/net/fixtures/cas-peer.js', [join(slowDir, 'peer'), '--slow-ms', '2'])
    try {
      const bigDigest = (await server.putBytes(big)).digest
      const ref = await new CasClient(node, slowLocal, { timeoutMs: 10_000 }).fetch(peer.addr, bigDigest)
      assert.equal(ref.size, big.byteLength)
      assert.ok((await slowLocal.getBytes(bigDigest)).equals(big), 'fetched whole and verified')
      const addr = parseMultiaddr(slowPeer.value)
      assert.equal((await new CasClient(node, slowLocal, { timeoutMs: 10_000 }).pushMany(addr, [bigDigest])).size, 0)
      assert.deepEqual(await client.has(addr, [bigDigest]), [bigDigest], 'pushed whole and verified')
    } finally {
      await stopProcess(slowPeer.proc)
      await rm(slowDir, { recursive: true, force: true })
    }
  })

  it('fetches many blobs over one stream, each verified; one missing, rotten there or not matching its name does not stop the rest', async () => {
    const refs = await Promise.all(Array.from({ length: 40 }, (_, i) => server.putBytes(`blob ${i} `.repeat(i * 50))))
    const big = randomBytes(1536 * 1024 + 3) // over the size a store gathers in memory
    const bigDigest = (await server.putBytes(big)).digest
    const rot = (await server.putBytes('this blob rots too')).digest
    await chmod(server.pathOf(rot), 0o644)
    await writeFile(server.pathOf(rot), 'this blob has rotted too')
    const ask = [refs[0]!.digest, d.missing!, ...refs.slice(1, 20).map((r) => r.digest), bigDigest, d.lie!, rot, ...refs.slice(20).map((r) => r.digest)]
    const got = await client.fetchMany(peer.addr, ask)
    assert.equal(got.size, ask.length)
    for (const r of refs) {
      assert.deepEqual(got.get(r.digest), r)
      assert.ok((await local.getBytes(r.digest)).equals(await server.getBytes(r.digest)))
    }
    assert.equal(refs[0]!.size, 0, 'an empty blob among them')
    assert.ok((await local.getBytes(bigDigest)).equals(big))
    assert.ok(got.get(d.missing!) instanceof BlobNotFoundError)
    assert.ok(got.get(d.lie!) instanceof DigestMismatchError, 'the bytes sent for the lie were refused')
    assert.equal(await local.has(d.lie!), false)
    const rotten = got.get(rot)
    assert.ok(rotten instanceof BlobNotFoundError && /corrupt here \(removed\)/.test(rotten.message))
  })

  it('does not serve a blob that rotted on its disk, and drops it', async () => {
    await assert.rejects(client.fetch(peer.addr, d.corrupt!), (err: unknown) => err instanceof BlobNotFoundError && /corrupt here \(removed\)/.test(err.message))
    assert.deepEqual(await client.has(peer.addr, [d.corrupt!]), [])
    assert.equal(await local.has(d.corrupt!), false)
  })

  it('refuses bytes that do not match the digest asked for, naming both', async () => {
    await assert.rejects(client.fetch(peer.addr, d.lie!), (err: unknown) => {
      assert.ok(err instanceof DigestMismatchError)
      assert.equal(err.expected, d.lie)
      assert.equal(err.actual, d.truth)
      assert.match(err.message, new RegExp(`expected blake3 ${d.lie}, got blake3 ${d.truth}`))
      return true
    })
    assert.equal(await local.has(d.lie!), false, 'nothing unverified was kept')
    assert.deepEqual(await readdir(join(dir, 'client', 'tmp')), [], 'no partial file was left behind')
  })

  it('accepts pushed blobs after verifying them, sending only those the peer lacks', async () => {
    const mine = await Promise.all([local.putBytes(randomBytes(200_000)), local.putBytes(randomBytes(2 * 1024 * 1024)), local.putBytes('')])
    await local.putBytes('hello world') // the peer has this one
    assert.equal(await local.has(d.small!), true)
    const refused = await client.pushMany(peer.addr, [...mine.map((m) => m.digest), d.small!, mine[0]!.digest])
    assert.equal(refused.size, 0)
    assert.deepEqual(await client.has(peer.addr, mine.map((m) => m.digest)), mine.map((m) => m.digest))
    assert.ok((await server.getBytes(mine[1]!.digest)).equals(await local.getBytes(mine[1]!.digest)))
  })

  it('refuses a pushed blob whose bytes are not its name, and stores the next one', async () => {
    const hasher = await createBlake3Hasher()
    const claimed = hasher.hash('claimed contents')
    const honest = hasher.hash('honest contents')
    const stream = await node.dialProtocol(peer.addr, CAS_PROTOCOL_ID)
    const lp = lpStream(stream)
    const frame = (v: unknown) => new TextEncoder().encode(JSON.stringify(v))
    const answer = async () => JSON.parse(new TextDecoder().decode((await lp.read()).subarray()))
    await lp.write(frame({ op: 'putMany', blobs: [{ digest: claimed, size: 14 }, { digest: honest, size: 15 }] }))
    assert.deepEqual(await answer(), { want: [claimed, honest] })
    for (const bytes of ['other contents', 'honest contents']) {
      await lp.write(new TextEncoder().encode(bytes))
      await lp.write(new Uint8Array(0))
    }
    const stored = await answer()
    assert.deepEqual(stored.stored, [honest])
    assert.equal(stored.refused.length, 1)
    assert.equal(stored.refused[0].digest, claimed)
    assert.match(stored.refused[0].error, new RegExp(`expected blake3 ${claimed}, got blake3 ${hasher.hash('other contents')}`))
    assert.deepEqual(await client.has(peer.addr, [claimed, honest]), [honest])
  })

  it('serves a source it has not stored (a mesh client\'s), read again and verified at each request; not once the file changed', async () => {
    const file = join(dir, 'source.c')
    await writeFile(file, 'int main(void) { return 0; }\n')
    const digest = (await createBlake3Hasher()).hash('int main(void) { return 0; }\n')
    const empty = join(dir, 'empty-server')
    const { proc, value } = await spawnReady('dist/test/net/fixtures/cas-peer.js', [empty, '--serve-file', file])
    try {
      const addr = parseMultiaddr(value)
      assert.deepEqual(await client.has(addr, [digest, d.missing!]), [digest])
      const got = await client.fetchMany(addr, [digest])
      assert.ok(!(got.get(digest) instanceof Error), String(got.get(digest)))
      assert.equal((await local.getBytes(digest)).toString(), 'int main(void) { return 0; }\n')
      const stored = (await readdir(empty, { recursive: true, withFileTypes: true }).catch(() => [])).filter((e) => e.isFile())
      assert.deepEqual(stored.map((e) => e.name), [], 'the server stored nothing')
      await local.remove(digest)
      await writeFile(file, 'int main(void) { return 1; }\n')
      const again = await client.fetchMany(addr, [digest])
      assert.ok(again.get(digest) instanceof BlobNotFoundError, `a changed file is not served: ${String(again.get(digest))}`)
      assert.equal(await local.has(digest), false)
    } finally {
      await stopProcess(proc)
    }
  })

  it('answers a malformed request with an error and keeps serving', async () => {
    const stream = await node.dialProtocol(peer.addr, CAS_PROTOCOL_ID)
    const lp = lpStream(stream)
    await lp.write(new TextEncoder().encode(JSON.stringify({ op: 'get', digest: 'not-a-digest' })))
    const answer = JSON.parse(new TextDecoder().decode((await lp.read()).subarray()))
    assert.match(answer.error, /request fails its schema: digest: must be a 64-character lower-case hex BLAKE3 digest/)
    assert.deepEqual(await client.has(peer.addr, [d.small!]), [d.small])
  })
})
