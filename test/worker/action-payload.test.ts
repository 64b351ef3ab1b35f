import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { DEFAULT_CAPABILITIES, HERMETIC_ENV } from '../../src/graph/action.js'
import { actionPayloadSchema } from '../../src/worker/action-payload.js'

const digest = (i: number): string => i.toString(16).padStart(64, '0')

function payload(inputs: unknown): unknown {
  return {
    v: 1,
    client: '12D3KooWSAkt6UUivTT4HQqTkAiuiP9ENQpfd3cyPx73VkDDPVsJ',
    clientAddrs: ['/ip4/127.0.0.1/tcp/4001'],
    sandbox: 'bwrap',
    argv: ['/bin/sh', '-c', 'cc -c a.c'],
    env: HERMETIC_ENV,
    inputs,
    outputs: ['a.o'],
    timeoutMs: 1000,
    capabilities: { ...DEFAULT_CAPABILITIES, readPaths: [], writePaths: [] },
  }
}

/** The first issue of a rejected payload, as `path: message`. */
function firstIssue(inputs: unknown): string {
  const r = actionPayloadSchema.safeParse(payload(inputs))
  assert.equal(r.success, false, 'rejected')
  const issue = r.error!.issues[0]!
  return `${issue.path.join('.')}: ${issue.message}`
}

describe('the action payload schema', () => {
  it('accepts an action naming a whole source tree as inputs, unchanged', () => {
    const inputs = Array.from({ length: 1000 }, (_, i) => ({ path: `src/mod_${i}.c`, digest: digest(i), executable: i % 7 === 0, ...(i % 3 === 0 ? { from: `peer-${i}` } : {}) }))
    const r = actionPayloadSchema.safeParse(JSON.parse(JSON.stringify(payload(inputs))))
    assert.equal(r.success, true, JSON.stringify(r.error?.issues[0]))
    assert.deepEqual(r.data!.inputs, inputs)
  })

  it('rejects a malformed input with the path and rule it breaks', () => {
    const good = { path: 'src/a.c', digest: digest(1), executable: false }
    assert.equal(firstIssue([good, { ...good, digest: 'ABC' }]), 'inputs.1.digest: must be a 64-character lower-case hex BLAKE3 digest')
    assert.equal(firstIssue([good, good, { ...good, mode: 420 }]), "inputs.2: Unrecognized key(s) in object: 'mode'")
    assert.equal(firstIssue([{ path: 'src/a.c', digest: digest(1) }]), 'inputs.0.executable: Required')
    assert.equal(firstIssue([{ ...good, path: '' }]), 'inputs.0.path: String must contain at least 1 character(s)')
    assert.equal(firstIssue([{ ...good, path: 'x'.repeat(4097) }]), 'inputs.0.path: String must contain at most 4096 character(s)')
    assert.equal(firstIssue([{ ...good, from: '' }]), 'inputs.0.from: String must contain at least 1 character(s)')
    assert.equal(firstIssue([{ ...good, executable: 'no' }]), 'inputs.0.executable: Expected boolean, received string')
    assert.equal(firstIssue([null]), 'inputs.0: Expected object, received null')
    assert.equal(firstIssue('src/a.c'), 'inputs: Expected array, received string')
    assert.equal(firstIssue(undefined), 'inputs: Required')
    assert.equal(firstIssue(Array.from({ length: 100_001 }, () => good)), 'inputs: Array must contain at most 100000 element(s)')
  })
})
