import assert from 'node:assert/strict'
import { afterEach, describe, it } from 'node:test'
import { dockerOverNetwork, nodeChildEnv } from '../src/node-child-env.js'

describe('the environment of node processes bldr starts', () => {
  const saved = { ca: process.env['NODE_EXTRA_CA_CERTS'], docker: process.env['DOCKER_HOST'] }
  afterEach(() => {
    for (const [key, value] of [['NODE_EXTRA_CA_CERTS', saved.ca], ['DOCKER_HOST', saved.docker]] as const) {
      if (value === undefined) delete process.env[key]
      else process.env[key] = value
    }
  })

  it('drops NODE_EXTRA_CA_CERTS (parsed at every node start) and keeps the rest', () => {
    process.env['NODE_EXTRA_CA_CERTS'] = '/etc/ssl/certs/ca-certificates.crt'
    const env = nodeChildEnv()
    assert.equal(env['NODE_EXTRA_CA_CERTS'], undefined)
    assert.equal(env['PATH'], process.env['PATH'])
    assert.equal(process.env['NODE_EXTRA_CA_CERTS'], '/etc/ssl/certs/ca-certificates.crt', "bldr's own environment is unchanged")
    assert.equal(nodeChildEnv({ keepCaCerts: true })['NODE_EXTRA_CA_CERTS'], '/etc/ssl/certs/ca-certificates.crt')
  })

  for (const [host, network] of [[undefined, false], ['', false], ['unix:///var/run/docker.sock', false], ['tcp://10.0.0.2:2376', true], ['ssh://builder@host', true]] as const) {
    it(`DOCKER_HOST=${host ?? '(unset)'}: over the network ${network}`, () => {
      if (host === undefined) delete process.env['DOCKER_HOST']
      else process.env['DOCKER_HOST'] = host
      assert.equal(dockerOverNetwork(), network)
    })
  }
})
