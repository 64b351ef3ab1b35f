/**
 * The environment of a node process bldr starts for itself (a local runner, a
 * local mesh's worker): the caller's, without NODE_EXTRA_CA_CERTS. Node reads
 * and parses that bundle as it starts, before any code runs: ~50 ms of CPU for
 * Debian's 220 KB ca-certificates.crt (`node -e 0` took 93 ms with it, 40 ms
 * without, on the 2-core benchmark machine), paid again by every runner and
 * worker. None of them opens a TLS connection, except a Docker client talking
 * to a daemon over TCP (`keepCaCerts`), for which it stays.
 */
export function nodeChildEnv(opts: { keepCaCerts?: boolean } = {}): NodeJS.ProcessEnv {
  if (opts.keepCaCerts || process.env['NODE_EXTRA_CA_CERTS'] === undefined) return process.env
  const { NODE_EXTRA_CA_CERTS: _dropped, ...env } = process.env
  return env
}

/** Whether Docker clients here may talk TLS: DOCKER_HOST names a TCP or SSH daemon, not the local socket. */
export function dockerOverNetwork(): boolean {
  const host = process.env['DOCKER_HOST']
  return host !== undefined && host !== '' && !host.startsWith('unix:') && !host.startsWith('npipe:')
}
