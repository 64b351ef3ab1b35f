import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { dirname, join } from 'node:path'
import { describe, it } from 'node:test'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { promisify } from 'node:util'

const LOG_JS = pathToFileURL(join(dirname(fileURLToPath(import.meta.url)), '..', 'src', 'log.js')).href

/** Run `body` in a fresh node (this test process may have loaded pino already); its stdout and stderr. */
async function fresh(body: string): Promise<{ stdout: string; stderr: string }> {
  const script = `
    import { createRequire } from 'node:module'
    import { createLogger } from ${JSON.stringify(LOG_JS)}
    const loaded = () => Object.keys(createRequire(import.meta.url).cache).some((k) => k.includes('/node_modules/pino/'))
    ${body}
  `
  return promisify(execFile)(process.execPath, ['--input-type=module', '-e', script])
}

describe('createLogger', () => {
  it('loads pino only for a record that passes the level, through child loggers too', async () => {
    const { stdout, stderr } = await fresh(`
      const log = createLogger('warn')
      const child = log.child({ component: 'worker' })
      const grandchild = child.child({ workerId: 'w1' })
      grandchild.info({ n: 1 }, 'below the level')
      child.debug('below the level')
      console.log('before', loaded())
      grandchild.warn({ n: 2 }, 'passes')
      console.log('after', loaded())
    `)
    assert.deepEqual(stdout.trim().split('\n'), ['before false', 'after true'])
    const lines = stderr.trim().split('\n').map((l) => JSON.parse(l))
    assert.equal(lines.length, 1, stderr)
    assert.equal(lines[0].msg, 'passes')
    assert.equal(lines[0].component, 'worker', 'the child carries its bindings')
    assert.equal(lines[0].workerId, 'w1')
    assert.equal(lines[0].n, 2)
    assert.equal(lines[0].level, 40)
  })

  it('silent logs nothing and loads nothing', async () => {
    const { stdout, stderr } = await fresh(`
      const log = createLogger('silent').child({ component: 'x' })
      log.fatal('no')
      log.error('no')
      console.log(loaded(), log.isLevelEnabled('fatal'))
    `)
    assert.equal(stdout.trim(), 'false false')
    assert.equal(stderr, '')
  })
})
