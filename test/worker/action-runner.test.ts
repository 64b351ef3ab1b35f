import assert from 'node:assert/strict'
import { chmodSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { createBlake3Hasher } from '../../src/cas/hasher.js'
import { openCasStore, type CasStore } from '../../src/cas/store.js'
import { ToolIndex } from '../../src/cas/tools.js'
import { DEFAULT_CAPABILITIES, HERMETIC_ENV } from '../../src/graph/action.js'
import { inputListingBytes, type ActionPayload, type ResultReport } from '../../src/worker/action-payload.js'
import { createActionRunner, type BlobExchange, type BlobHolder } from '../../src/worker/action-runner.js'
import { createLocalSandbox } from '../../sandbox/local.js'
import { StoreBudget } from '../../src/worker/store-budget.js'
import { LastListing } from '../../src/worker/last-listing.js'

/** A worker's store and sandbox, and a peer store the exchange fetches from and pushes to (two real stores; only the wire is left out). */
async function withWorker(fn: (w: { cas: CasStore; peer: CasStore; run: ReturnType<typeof createActionRunner>; fetched: string[]; requests: { holders: string; digests: number }[]; pushed: string[]; budget?: StoreBudget }) => Promise<void>, maxStore?: number, lastListing?: LastListing): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'bldr-runner-'))
  const hasher = await createBlake3Hasher()
  const cas = await openCasStore(join(dir, 'worker-cas'), hasher)
  const peer = await openCasStore(join(dir, 'client-cas'), hasher)
  const sandbox = createLocalSandbox({ cas, scratchRoot: join(dir, 'scratch'), slots: 1 })
  const fetched: string[] = []
  /** Each fetch asked of the exchange: its holders and how many blobs. */
  const requests: { holders: string; digests: number }[] = []
  const pushed: string[] = []
  const blobs: BlobExchange = {
    id: 'worker',
    fetchBlobs: async (digests, holders: readonly BlobHolder[]) => {
      const failed = new Map<string, Error>()
      requests.push({ holders: holders.map((h) => h.id).join(','), digests: digests.length })
      for (const digest of digests) {
        fetched.push(`${digest.slice(0, 8)}@${holders.map((h) => h.id).join(',')}`)
        if (await peer.has(digest)) await cas.putBytes(await peer.getBytes(digest))
        else failed.set(digest, new Error(`no holder has blake3 ${digest}`))
      }
      return failed
    },
    pushBlobs: async (digests) => {
      for (const d of digests) {
        pushed.push(d)
        await peer.putBytes(await cas.getBytes(d))
      }
    },
  }
  try {
    const budget = maxStore !== undefined ? new StoreBudget(cas, maxStore) : undefined
    await fn({ cas, peer, run: createActionRunner({ cas, sandboxes: [sandbox], blobs, ...(budget ? { budget } : {}), ...(lastListing ? { lastListing } : {}) }), fetched, requests, pushed, ...(budget ? { budget } : {}) })
  } finally {
    await sandbox.close()
    await rm(dir, { recursive: true, force: true })
  }
}

function payload(over: Partial<ActionPayload>): ActionPayload {
  return {
    v: 1,
    client: 'client',
    clientAddrs: [],
    sandbox: 'local',
    argv: ['sh', '-c', 'true'],
    env: { ...HERMETIC_ENV },
    inputs: [],
    outputs: [],
    timeoutMs: 10_000,
    capabilities: { ...DEFAULT_CAPABILITIES, readPaths: [], writePaths: [] },
    ...over,
  }
}

const report = (detail: unknown): ResultReport => detail as ResultReport

describe('the action runner of a worker', () => {
  it('fetches missing inputs (producer first, then the client), runs, frees its slot, and pushes outputs before reporting them', async () => {
    await withWorker(async ({ cas, peer, run, fetched, pushed }) => {
      const src = await peer.putBytes('hello\n')
      /** How much was sent to the client when the runner said the slot was free. */
      const atSlotDone: { pushed: number }[] = []
      const out = await run(
        {
          id: 'b/upper',
          payload: payload({ argv: ['sh', '-c', 'tr a-z A-Z < in.txt > out.txt; echo done'], inputs: [{ path: 'in.txt', digest: src.digest, executable: false, from: 'w2' }], outputs: ['out.txt'] }),
        },
        { slotDone: () => void atSlotDone.push({ pushed: pushed.length }) },
      )
      assert.equal(out.ok, true)
      assert.deepEqual(atSlotDone, [{ pushed: 0 }], 'the slot was freed once, before anything was sent to the client')
      assert.ok(await cas.has(report(out.detail).exec!.outputs[0]!.digest), "the output is in the worker's store")
      const exec = report(out.detail).exec!
      assert.equal(exec.exitCode, 0)
      assert.equal(exec.outputs.length, 1)
      assert.equal((await peer.getBytes(exec.outputs[0]!.digest)).toString(), 'HELLO\n', 'the client has the output')
      assert.equal((await peer.getBytes(exec.stdout)).toString(), 'done\n')
      assert.deepEqual(fetched, [`${src.digest.slice(0, 8)}@w2,client`])
      assert.ok(pushed.includes(exec.outputs[0]!.digest))
    })
  })

  it('fetches what an action lacks in batches by holder, once per blob however many inputs or running actions need it', async () => {
    await withWorker(async ({ cas, peer, run, fetched, requests }) => {
      const sources = await Promise.all(Array.from({ length: 70 }, (_, i) => peer.putBytes(`source ${i}\n`)))
      const produced = await Promise.all(Array.from({ length: 5 }, (_, i) => peer.putBytes(`object ${i}\n`)))
      const here = await cas.putBytes('source 0\n') // already in the worker's store
      assert.equal(here.digest, sources[0]!.digest)
      const inputs = (prefix: string) => [
        ...sources.map((s, i) => ({ path: `${prefix}/src/${i}.c`, digest: s.digest, executable: false })),
        { path: `${prefix}/src/copy-of-1.c`, digest: sources[1]!.digest, executable: false },
        ...produced.map((o, i) => ({ path: `${prefix}/obj/${i}.o`, digest: o.digest, executable: false, from: 'w2' })),
      ]
      const [a, b] = await Promise.all(['a', 'b'].map((p) => run({ id: `b/${p}`, payload: payload({ argv: ['sh', '-c', `cat ${p}/src/*.c ${p}/obj/*.o | wc -l`], inputs: inputs(p) }) })))
      for (const out of [a!, b!]) {
        assert.equal(out.ok, true, JSON.stringify(out.detail))
        assert.equal(report(out.detail).exec!.exitCode, 0)
      }
      assert.equal(fetched.length, 69 + 5, 'every missing blob fetched once, for both actions')
      assert.equal(new Set(fetched).size, fetched.length)
      const byHolders = (h: string) => requests.filter((r) => r.holders === h)
      assert.deepEqual(byHolders('client').map((r) => r.digests).sort((x, y) => y - x), [32, 32, 5], 'the client\'s blobs in batches of at most 32')
      assert.deepEqual(byHolders('w2,client').map((r) => r.digests), [5], 'the producer\'s blobs in one request')
      assert.equal(requests.length, 4)
    })
  })

  it('takes the inputs a listing blob names (fetched from the client and read once for all actions), with those the payload names itself; notes the listing for the next worker process', async () => {
    const noted = join(await mkdtemp(join(tmpdir(), 'bldr-listing-')), 'last-listing')
    await withWorker(async ({ peer, run, fetched }) => {
      const tree = await Promise.all(['a.h', 'b.h', 'c.h'].map(async (path) => ({ path, digest: (await peer.putBytes(`/* ${path} */\n`)).digest, executable: false })))
      const listing = (await peer.putBytes(inputListingBytes(tree))).digest
      const own = await peer.putBytes('generated\n')
      const listed = { digest: listing, entries: tree.length }
      for (const n of [1, 2]) {
        const out = await run({ id: `b/cat${n}`, payload: payload({ argv: ['sh', '-c', 'cat a.h b.h c.h gen.txt > out.txt'], inputs: [{ path: 'gen.txt', digest: own.digest, executable: false }], listed, outputs: ['out.txt'] }) })
        assert.equal(out.ok, true, JSON.stringify(out.detail))
        assert.equal(report(out.detail).exec?.exitCode, 0)
      }
      assert.equal(fetched.filter((f) => f.startsWith(listing.slice(0, 8))).length, 1, 'the listing was fetched once')
      assert.equal(readFileSync(noted, 'utf8'), `${listing}\n`)
      // A listing that is not one, or that names another number of inputs than the payload says, is the worker's failure.
      const junk = (await peer.putBytes('[["a.h", "not a digest", 0]]')).digest
      for (const bad of [{ digest: junk, entries: 1 }, { digest: listing, entries: 2 }]) {
        const out = await run({ id: 'b/bad', payload: payload({ listed: bad }) })
        assert.equal(out.ok, false)
        assert.match(report(out.detail).error ?? '', /inputs unavailable: the input listing blake3 [0-9a-f]{64} (is malformed: entry 0: bad digest|names 3 inputs, the payload says 2)/)
      }
      assert.equal(readFileSync(noted, 'utf8'), `${listing}\n`, 'a malformed listing is not noted')

      // Sent inline: used without a fetch if it is what its digest says; one that is not is fetched.
      const tree2 = [...tree, { path: 'd.h', digest: (await peer.putBytes('/* d.h */\n')).digest, executable: false }]
      const text = inputListingBytes(tree2)
      const inline = { digest: (await peer.putBytes(text)).digest, entries: tree2.length, text }
      const before = fetched.length
      const out = await run({ id: 'b/inline', payload: payload({ argv: ['sh', '-c', 'cat a.h d.h > out.txt'], listed: inline, outputs: ['out.txt'] }) })
      assert.equal(report(out.detail).exec?.exitCode, 0, JSON.stringify(out.detail))
      assert.deepEqual(fetched.slice(before).map((f) => f.slice(0, 8)), [tree2[3]!.digest.slice(0, 8)], 'only d.h, not the listing')
      const tree3 = [...tree, { path: 'e.h', digest: (await peer.putBytes('/* e.h */\n')).digest, executable: false }]
      const third = (await peer.putBytes(inputListingBytes(tree3))).digest
      const wrong = { digest: third, entries: tree3.length, text: inputListingBytes(tree2) }
      const fallback = await run({ id: 'b/wrong-inline', payload: payload({ argv: ['sh', '-c', 'cat a.h e.h > out.txt'], listed: wrong, outputs: ['out.txt'] }) })
      assert.equal(report(fallback.detail).exec?.exitCode, 0, JSON.stringify(fallback.detail))
      assert.ok(fetched.some((f) => f.startsWith(third.slice(0, 8))), 'a listing sent inline that is not what its digest says is not used: the listing is fetched')
    }, undefined, new LastListing(noted))
    await rm(join(noted, '..'), { recursive: true, force: true })
  })

  it('takes a blob it checked before as there, and fetches it again if it left the store or changed meanwhile', async () => {
    await withWorker(async ({ cas, peer, run, fetched }) => {
      const src = await peer.putBytes('hello\n')
      const runAt = (id: string, path: string) => run({ id, payload: payload({ argv: ['sh', '-c', `cat ${path}`], inputs: [{ path, digest: src.digest, executable: false }] }) })
      const stdoutOf = async (out: Awaited<ReturnType<typeof runAt>>) => (await peer.getBytes(report(out.detail).exec!.stdout)).toString()
      const first = await runAt('b/1', 'a/in.txt')
      assert.equal(first.ok, true, JSON.stringify(first.detail))
      assert.equal(fetched.length, 1)
      // Known and still there: not fetched, not even looked at before staging.
      const second = await runAt('b/2', 'b/in.txt')
      assert.equal(await stdoutOf(second), 'hello\n')
      assert.equal(fetched.length, 1)
      // Removed behind the worker's back: staging finds it gone, and it is fetched again.
      rmSync(cas.pathOf(src.digest))
      const third = await runAt('b/3', 'c/in.txt')
      assert.equal(third.ok, true, JSON.stringify(third.detail))
      assert.equal(await stdoutOf(third), 'hello\n')
      assert.equal(fetched.length, 2)
      // Changed behind its back (other bytes under its name): found at staging, dropped, fetched again.
      const path = cas.pathOf(src.digest)
      chmodSync(path, 0o644)
      writeFileSync(path, 'rotten\n')
      const fourth = await runAt('b/4', 'd/in.txt')
      assert.equal(fourth.ok, true, JSON.stringify(fourth.detail))
      assert.equal(await stdoutOf(fourth), 'hello\n', 'the action read the right bytes')
      assert.equal(fetched.length, 3)
    })
  })

  it('sends a depfile the payload says to read (deps = gcc) back as text in its report: not an output, not pushed', async () => {
    await withWorker(async ({ run, pushed }) => {
      const out = await run({
        id: 'b/cc',
        payload: payload({ argv: ['sh', '-c', 'printf "a.o: a.c a.h\\n" > a.o.d; echo obj > a.o'], outputs: ['a.o', 'a.o.d'], depfile: 'a.o.d', readDepfile: true }),
      })
      assert.equal(out.ok, true)
      const exec = report(out.detail).exec!
      assert.equal(exec.depfileText, 'a.o: a.c a.h\n')
      assert.deepEqual(exec.outputs.map((o) => o.path), ['a.o'])
      assert.deepEqual(exec.missingOutputs, [])
      assert.deepEqual(pushed.sort(), [exec.outputs[0]!.digest, exec.stdout, exec.stderr].sort(), 'only the object, stdout and stderr went to the client')
    })
  })

  it('reports a failed command as the action\'s failure, with its exit code', async () => {
    await withWorker(async ({ run }) => {
      const out = await run({ id: 'b/fail', payload: payload({ argv: ['sh', '-c', 'echo oops >&2; exit 3'] }) })
      assert.equal(out.ok, true)
      assert.equal(report(out.detail).exec!.exitCode, 3)
    })
  })

  it('reports what it could not do as the worker\'s failure: a bad payload, another sandbox, an input nobody has', async () => {
    await withWorker(async ({ run }) => {
      const bad = await run({ id: 'b/bad', payload: { v: 1, argv: 'ls' } })
      assert.equal(bad.ok, false)
      assert.match(report(bad.detail).error!, /payload fails its schema: /)
      const docker = await run({ id: 'b/docker', payload: payload({ sandbox: 'docker' }) })
      assert.match(report(docker.detail).error!, /needs sandbox docker; this worker offers local/)
      const missing = 'ab'.repeat(32)
      const lost = await run({ id: 'b/lost', payload: payload({ inputs: [{ path: 'x', digest: missing, executable: false }] }) })
      assert.equal(lost.ok, false)
      assert.match(report(lost.detail).error!, new RegExp(`inputs unavailable: no holder has blake3 ${missing}`))
    })
  })

  it('keeps its store within --max-store: an action\'s inputs stay while it runs, and what is evicted is fetched again', async () => {
    await withWorker(async ({ cas, peer, run, fetched, budget }) => {
      const src = await peer.putBytes('x'.repeat(30_000))
      const once = async (id: string) => {
        const out = await run({ id, payload: payload({ argv: ['sh', '-c', 'wc -c < in.txt > n.txt'], inputs: [{ path: 'in.txt', digest: src.digest, executable: false }], outputs: ['n.txt'] }) })
        assert.equal(out.ok, true, JSON.stringify(out.detail))
        assert.equal(report(out.detail).exec!.exitCode, 0, 'the input was there for the run')
      }
      await once('b/one')
      assert.equal(await cas.has(src.digest), false, 'over the budget after the run: the 30 KB input went')
      assert.ok(budget!.bytes <= 20_000 * 0.9, `the store is within the budget (${budget!.bytes} bytes)`)
      assert.ok(budget!.evicted.blobs > 0)
      await once('b/two')
      assert.equal(fetched.length, 2, 'fetched again for the second run')
    }, 20_000)
  })

  it('runs an action only with the programs the client keyed it with: another sh, or none, is the worker\'s failure', async () => {
    await withWorker(async ({ cas, run }) => {
      const [sh] = new ToolIndex(cas.hasher, '/nonexistent').toolsOf(['sh'], HERMETIC_ENV)
      assert.ok(sh, 'this machine has sh')
      const same = await run({ id: 'b/same', payload: payload({ argv: ['sh', '-c', 'true'], tools: [sh] }) })
      assert.equal(same.ok, true, JSON.stringify(same.detail))
      const other = await run({ id: 'b/other', payload: payload({ argv: ['sh', '-c', 'true'], tools: [{ ...sh, digest: 'cd'.repeat(32) }] }) })
      assert.equal(other.ok, false)
      assert.match(report(other.detail).error!, new RegExp(`this worker's sh \\(${sh.path}, blake3 ${sh.digest}\\) is not the client's \\(${sh.path}, blake3 ${'cd'.repeat(32)}\\); it would not make the same outputs`))
      const none = await run({ id: 'b/none', payload: payload({ argv: ['no-such-compiler-here'], tools: [{ name: 'no-such-compiler-here', path: '/opt/cc', digest: sh.digest }] }) })
      assert.match(report(none.detail).error!, /this worker has no no-such-compiler-here \(the client's is \/opt\/cc/)
    })
  })
})
