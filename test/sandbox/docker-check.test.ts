import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { describe, it } from 'node:test'
import { promisify } from 'node:util'
import { checkDockerDaemon } from '../../sandbox/docker.js'

const run = promisify(execFile)

/** In a fresh process: check the daemon at DOCKER_HOST, then say whether dockerode was loaded. */
const probe = `
import { createRequire } from 'node:module'
const { checkDockerDaemon } = await import(${JSON.stringify(new URL('../../sandbox/docker.js', import.meta.url).href)})
let outcome = 'ok'
try { await checkDockerDaemon(3000) } catch (err) { outcome = err.message }
const loaded = Object.keys(createRequire(import.meta.url).cache).some((p) => p.includes('/node_modules/dockerode/'))
process.stdout.write(JSON.stringify({ outcome, loaded }))
`

async function probeWith(env: Record<string, string>): Promise<{ outcome: string; loaded: boolean }> {
  const { stdout } = await run(process.execPath, ['--input-type=module', '-e', probe], { env: { ...process.env, ...env } })
  return JSON.parse(stdout) as { outcome: string; loaded: boolean }
}

describe('checking for a Docker daemon', () => {
  it('pings the local daemon without loading dockerode', async () => {
    await checkDockerDaemon()
    assert.deepEqual(await probeWith({ DOCKER_HOST: 'unix:///var/run/docker.sock' }), { outcome: 'ok', loaded: false })
  })

  it('says where it looked when no daemon answers, on a socket or over TCP', async () => {
    const socket = await probeWith({ DOCKER_HOST: 'unix:///nonexistent/docker.sock' })
    assert.match(socket.outcome, /cannot reach the Docker daemon at \/nonexistent\/docker\.sock: connect ENOENT .*\(start dockerd, or point DOCKER_HOST at one\)/)
    const tcp = await probeWith({ DOCKER_HOST: 'tcp://127.0.0.1:1' })
    assert.match(tcp.outcome, /cannot reach the Docker daemon at 127\.0\.0\.1:1: connect ECONNREFUSED/)
    assert.equal(socket.loaded || tcp.loaded, false)
  })

  it('leaves a daemon over TLS to dockerode, which knows TLS', async () => {
    const tls = await probeWith({ DOCKER_HOST: 'tcp://127.0.0.1:1', DOCKER_TLS_VERIFY: '1', DOCKER_CERT_PATH: '/nonexistent' })
    assert.equal(tls.loaded, true)
    assert.match(tls.outcome, /cannot make a Docker client for tcp:\/\/127\.0\.0\.1:1: ENOENT.*ca\.pem.* \(check DOCKER_HOST and DOCKER_CERT_PATH\)/)
  })
})
