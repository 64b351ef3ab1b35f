import assert from 'node:assert/strict'
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import { checkBwrap, findBwrap } from '../../sandbox/bwrap.js'
import { SandboxError } from '../../sandbox/types.js'

const dir = mkdtempSync(join(tmpdir(), 'bldr-bwrap-check-'))
after(() => rmSync(dir, { recursive: true, force: true }))

/** A program standing where bwrap would: it says why it cannot make namespaces and fails, as bwrap does in a container without user namespaces. */
function failingBwrap(name: string, message: string): string {
  const path = join(dir, name)
  writeFileSync(path, `#!/bin/sh\necho '${message}' >&2\nexit 1\n`)
  chmodSync(path, 0o755)
  return path
}

describe('checking bubblewrap', () => {
  it('probes the real bwrap without blocking, one probe for callers at once, and the sync check then finds it probed', async () => {
    const [a, b] = await Promise.all([checkBwrap(), checkBwrap()])
    assert.equal(a, b)
    assert.match(a, /\/bwrap$/)
    assert.equal(findBwrap(), a)
  })

  it('says why bwrap cannot make namespaces, from its own error, in the async and the sync check', async () => {
    const fake = failingBwrap('bwrap-userns', 'bwrap: No permissions to create new namespace')
    await assert.rejects(checkBwrap(fake), (err: unknown) => {
      assert.ok(err instanceof SandboxError)
      assert.match(err.message, /bubblewrap cannot create namespaces here: bwrap: No permissions to create new namespace$/)
      return true
    })
    assert.throws(() => findBwrap(fake), /bubblewrap cannot create namespaces here: bwrap: No permissions to create new namespace$/)
  })

  it('a failed probe is not remembered: the next check probes again', async () => {
    const path = failingBwrap('bwrap-later', 'bwrap: not yet')
    await assert.rejects(checkBwrap(path), /not yet/)
    writeFileSync(path, '#!/bin/sh\nexit 0\n')
    assert.equal(await checkBwrap(path), path)
  })

  it('says how to install it when it is not there', async () => {
    await assert.rejects(checkBwrap(join(dir, 'no-such-bwrap')), /bubblewrap is not installed \(on Debian: apt-get install bubblewrap\)/)
  })
})
