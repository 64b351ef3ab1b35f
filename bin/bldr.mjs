#!/usr/bin/env -S -u NODE_EXTRA_CA_CERTS node
// The Node CLI of the `bldr` command (bin/bldr runs it, or the native thin client
// for a build a kept local mesh runs). The TypeScript sources are compiled to dist/ by `npm install`
// (the `prepare` script: tsc, then esbuild bundles the CLI into dist/src/bundle).
// The bundle is what runs: Node 20's ES module loader costs ~0.5 ms per module and
// a mesh process loads ~800 of them (libp2p and its dependencies), ~0.5 s of CPU
// for every client, coordinator and worker start. dist/src/cli/main.js runs instead
// when it is newer than the bundle (tsc ran since the last bundle), so a stale
// bundle never hides a change.
// The shebang drops NODE_EXTRA_CA_CERTS: Node parses that bundle before any code
// runs (~50 ms of CPU for Debian's, a tenth of a no-op build), and bldr opens no
// TLS connection of its own (a Docker daemon over TLS is trusted by DOCKER_CERT_PATH).
// It exits as soon as the command is done: a closed libp2p TCP listener can hold
// the event loop open for another second. Output to a pipe is written first (below).
import { statSync } from 'node:fs'

const mtime = (rel) => statSync(new URL(rel, import.meta.url), { throwIfNoEntry: false })?.mtimeMs ?? -1
const bundled = mtime('../dist/src/bundle/main.js') >= mtime('../dist/src/cli/main.js')
// A pipe whose reader is slower than bldr still gets every byte: an empty write's
// callback runs once everything written before it is out.
const flushed = (stream) => new Promise((resolve) => (stream.writableLength > 0 ? stream.write('', resolve) : resolve()))
const exit = (code) => Promise.all([flushed(process.stdout), flushed(process.stderr)]).then(() => process.exit(code))
import(bundled ? '../dist/src/bundle/main.js' : '../dist/src/cli/main.js').then((m) => m.main(process.argv.slice(2))).then(
  (code) => exit(code),
  (err) => { console.error('bldr: unexpected error, please report:\n', err); return exit(70) },
)
