/**
 * The head start a kept local mesh takes on its project (src/build/prime-project.ts),
 * in a process that has run no build of it, as the mesh's own process is when
 * it starts: a CMake project built by a `bldr build` process of its own, then
 * primed here, then built here on a mesh after one source changed.
 */
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { appendFile, cp, mkdtemp, readdir, readFile, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'
import { after, before, describe, it } from 'node:test'
import { buildDistributed } from '../../src/build/distributed.js'
import { primeProject } from '../../src/build/prime-project.js'
import { openProject } from '../../src/build/project.js'
import { servedSourcesOf } from '../../src/build/served-sources.js'
import { SETTLED_MS } from '../../src/build/source-digests.js'
import { DEFAULT_SEED_POLICY } from '../../src/net/seed-policy.js'
import { handedOver, removeProject, REPO_ROOT, runCli } from '../helpers.js'

describe('priming a project for its next build', { timeout: 180_000 }, () => {
  let dir: string
  let build: string
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'bldr-prime-'))
    await cp(join(REPO_ROOT, 'examples', 'cmake-hello'), dir, { recursive: true })
    build = join(dir, 'build')
    execFileSync('cmake', ['-G', 'Ninja', '-S', dir, '-B', build], { stdio: 'pipe' })
    // Sources settled, as they usually are before a build (one written as a build hashes it is hashed again at the next).
    await delay(SETTLED_MS + 100)
    const r = await runCli(['build', '-f', 'build.ninja', '--distributed', '--local-workers', '2', '--mesh-idle', '0'], { cwd: build })
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`)
  })
  after(async () => {
    await removeProject(dir)
  })

  it('stops at once when told to', async () => {
    const stopped = new AbortController()
    stopped.abort()
    assert.deepEqual(await primeProject({ buildFile: join(build, 'build.ninja'), signal: stopped.signal }), { sources: 0, outputs: 0 })
  })

  it("takes the outputs in place as verified and keeps every source for serving: the next build on a mesh hands over only the one that changed", async () => {
    const primed = await primeProject({ buildFile: join(build, 'build.ninja'), signal: new AbortController().signal })
    const project = await openProject({ dir: build, file: 'build.ninja' })
    const library = project.cas.hasher.hash(await readFile(join(build, 'libgreet.a')))
    assert.ok(project.cas.isKnown(library), 'the library in place (a link to its blob) counts as that blob, verified in this process')
    const sources: string[] = []
    for (const p of await readdir(dir, { recursive: true })) if (!p.startsWith('build/') && (await stat(join(dir, p))).isFile()) sources.push(p)
    assert.ok(primed.outputs >= 5, `outputs taken as verified: ${primed.outputs}`)
    assert.ok(primed.sources >= sources.length, `sources kept: ${primed.sources}, the source tree: ${sources.join(', ')}`)

    const served = servedSourcesOf(project.root, project.cas.hasher)
    const handed = handedOver(served, project.root)
    await appendFile(join(dir, 'src', 'greet.c'), '\nint greet_primed(void) { return 1; }\n')
    const { summary } = await buildDistributed(await openProject({ dir: build, file: 'build.ninja' }), { localSlots: [1, 1], strategy: 'random', seedPolicy: DEFAULT_SEED_POLICY, meshIdleS: 0 })
    assert.equal(summary.ok, true)
    assert.ok(summary.executed > 0, 'the changed source was compiled on the mesh')
    assert.deepEqual(handed, ['src/greet.c'], 'every other source the actions stage was kept when primed')
  })
})
