/**
 * What the mesh executor sends for an action (src/build/mesh-executor.ts):
 * the files a ninja file stages (its whole source tree) go as one listing
 * blob shared by every action, so a payload does not grow with the tree. The
 * session here records what is submitted and answers at once; the mesh itself
 * is exercised end to end by test/build/ninja-cmake.test.ts.
 */
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { createBlake3Hasher } from '../../src/cas/hasher.js'
import { openCasStore } from '../../src/cas/store.js'
import { createMeshExecutor, type MeshSession, type MeshSessionEvents } from '../../src/build/mesh-executor.js'
import { DEFAULT_ACTION_TIMEOUT_MS, DEFAULT_CAPABILITIES, HERMETIC_ENV, type Action } from '../../src/graph/action.js'
import { parseInputListing, type ActionPayload } from '../../src/worker/action-payload.js'

describe('the mesh executor', () => {
  it('sends the staged source tree as one listing blob that every action shares, inline in the first payload only; a payload names only its other inputs', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'bldr-mesh-executor-'))
    try {
      const cas = await openCasStore(join(dir, 'cas'), await createBlake3Hasher())
      const empty = (await cas.putBytes('')).digest
      const submitted: ActionPayload[] = []
      let handlers: MeshSessionEvents | undefined
      const session: MeshSession = {
        buildId: 'b1',
        clientId: 'client',
        clientAddrs: [],
        setHandlers: (h) => (handlers = h),
        submit: async ({ id, payload }) => {
          submitted.push(payload)
          setImmediate(() => handlers?.result(id, 'w1', { ok: true, exec: { exitCode: 0, signal: null, timedOut: false, outputs: [], missingOutputs: [], stdout: empty, stderr: empty, durationMs: 1 } }))
        },
        fetchBlobs: async () => {},
      }
      const executor = createMeshExecutor({ connect: async () => session, cas, sandbox: 'bwrap', slots: 2 })
      const tree = await Promise.all(Array.from({ length: 500 }, async (_, i) => ({ path: `src/f${String(i).padStart(3, '0')}.h`, digest: (await cas.putBytes(`int f${i};\n`)).digest, executable: false })))
      const staged = tree.map((t) => t.path)
      const obj = { path: 'build/a.o', digest: (await cas.putBytes('object')).digest, executable: false }
      const action = (id: string, extra: typeof tree): Action => ({
        id,
        owner: 'cc',
        mnemonic: 'Ninja',
        description: id,
        argv: ['/bin/sh', '-c', 'true'],
        env: HERMETIC_ENV,
        inputs: extra.map((e) => e.path),
        outputs: [`build/${id}`],
        timeoutMs: DEFAULT_ACTION_TIMEOUT_MS,
        capabilities: DEFAULT_CAPABILITIES,
        origin: { file: 'build.ninja', line: 1 },
        staged,
      })
      const signal = new AbortController().signal
      // The engine hands over the inputs with the staged files, its own ones first, in any order.
      await executor.execute(action('x', [tree[7]!]), [tree[7]!, ...[...tree].reverse()], { signal, onStart: () => {} })
      await executor.execute(action('y', [obj]), [obj, ...tree], { signal, onStart: () => {} })
      assert.equal(submitted.length, 2)
      const [x, y] = submitted as [ActionPayload, ActionPayload]
      assert.ok(x.listed && y.listed)
      assert.equal(x.listed.digest, y.listed.digest, 'one listing for both')
      assert.equal(x.listed.entries, 500)
      assert.deepEqual(x.inputs, [], 'a staged source is in the listing only')
      assert.deepEqual(y.inputs.map((i) => i.path), ['build/a.o'])
      const listing = parseInputListing((await cas.getBytes(x.listed.digest)).toString('utf8'))
      assert.ok(Array.isArray(listing))
      assert.deepEqual(listing, tree, 'in the staged order, every digest as hashed')
      assert.equal(x.listed.text, (await cas.getBytes(x.listed.digest)).toString('utf8'), 'the first payload carries the listing itself')
      assert.equal(y.listed.text, undefined)
      assert.ok(JSON.stringify(y).length < 2_000, `a payload after it stays small (${JSON.stringify(y).length} bytes)`)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})
