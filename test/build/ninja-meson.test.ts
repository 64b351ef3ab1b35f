/**
 * A real Meson project (examples/meson-shapes: a shared library with a
 * generated source and a header meson writes when it configures, an
 * executable linked to it, two tests) configured with `meson setup` at test
 * time and built by `bldr build -f build.ninja` on a local mesh of worker
 * processes (bwrap): outputs compared byte for byte with ninja's own build in
 * the same folder, `meson test` run against bldr's binaries, and a header
 * edit rebuilding exactly the compiles that read it.
 */
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { appendFile, cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { executedIn, removeProject, REPO_ROOT, runCli } from '../helpers.js'

const EXAMPLE = join(REPO_ROOT, 'examples', 'meson-shapes')

describe('bldr build -f build.ninja: a Meson project', { timeout: 240_000 }, () => {
  let dir: string
  let build: string
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'bldr-meson-'))
    await cp(EXAMPLE, dir, { recursive: true })
    build = join(dir, 'build')
    execFileSync('meson', ['setup', build], { cwd: dir, stdio: 'pipe' })
  })
  after(async () => {
    await removeProject(dir)
  })

  it('on a local mesh with bwrap: every output byte-identical to ninja\'s, meson test passes on bldr\'s binaries, a header edit rebuilds exactly its readers', async () => {
    // Meson links shapes-cli against libshapes.so but declares only its symbols file: the file named in the command is an input too.
    // libpolygon.a is a thin archive: linking it reads its member, libpolygon.a.p/src_polygon.c.o, which the link is given too.
    const outputs = ['names.c', 'libshapes.so.p/meson-generated_.._names.c.o', 'libshapes.so.p/src_area.c.o', 'libshapes.so.p/src_perimeter.c.o', 'libpolygon.a.p/src_polygon.c.o', 'libpolygon.a', 'libshapes.so', 'libshapes.so.p/libshapes.so.symbols', 'shapes-cli.p/src_main.c.o', 'shapes-cli']
    execFileSync('ninja', ['-C', build], { stdio: 'pipe' })
    assert.equal((await readFile(join(build, 'libpolygon.a'))).toString('latin1', 0, 8), '!<thin>\n', 'meson made a thin archive')
    const reference = new Map<string, Buffer>()
    for (const o of outputs) reference.set(o, await readFile(join(build, o)))
    execFileSync('ninja', ['-C', build, '-t', 'clean'], { stdio: 'pipe' })
    await rm(join(build, '.ninja_log'), { force: true })
    await rm(join(build, '.ninja_deps'), { force: true })

    const statsFile = join(dir, 'stats.json')
    const distributed = ['build', '-f', 'build/build.ninja', '--distributed', '--local-workers', '2', '--sandbox', 'bwrap', '--stats', statsFile]
    const r = await runCli(distributed, { cwd: dir })
    assert.equal(r.code, 0, `bldr failed:\n${r.stdout}\n${r.stderr}`)
    assert.deepEqual(await executedIn(statsFile), [...outputs].sort())
    for (const [o, bytes] of reference) assert.ok(bytes.equals(await readFile(join(build, o))), `${o} differs from ninja's`)

    const tests = execFileSync('meson', ['test', '-C', build, '--no-rebuild'], { encoding: 'utf8' })
    assert.match(tests, /^Ok:\s+2\s*$/m, tests)
    assert.match(tests, /^Fail:\s+0\s*$/m, tests)

    // A header only area.c, perimeter.c and polygon.c read: only those compiles run; their objects are unchanged, so the libraries are restored.
    await appendFile(join(dir, 'src/polygon.h'), '/* touched */\n')
    const again = await runCli(distributed, { cwd: dir })
    assert.equal(again.code, 0, again.stderr)
    assert.deepEqual(await executedIn(statsFile), ['libpolygon.a.p/src_polygon.c.o', 'libshapes.so.p/src_area.c.o', 'libshapes.so.p/src_perimeter.c.o'])

    // A member of the thin archive changes and the archive does not (same size, same symbols): what links the archive runs again.
    await writeFile(join(dir, 'src/polygon.c'), (await readFile(join(dir, 'src/polygon.c'), 'utf8')).replace('sides >= 3', 'sides >= 4'))
    assert.equal((await runCli(distributed, { cwd: dir })).code, 0)
    const relinked = await executedIn(statsFile)
    assert.ok(relinked.includes('libpolygon.a.p/src_polygon.c.o') && relinked.includes('libshapes.so'), `the shared library is linked again: ${relinked.join(', ')}`)
    assert.match(execFileSync(join(build, 'shapes-cli'), ['triangle', '1'], { encoding: 'utf8' }), /area -1\.000, perimeter -1\.000/, 'the library has the new member: a triangle is no polygon now')

    // The header meson wrote when it configured (no statement makes it) is followed too: every compile that reads it, then the links.
    await appendFile(join(build, 'config.h'), '#define SHAPES_EXTRA 1\nstatic inline int shapes_extra(void) { return SHAPES_EXTRA; }\n')
    assert.equal((await runCli(distributed, { cwd: dir })).code, 0)
    const executed = await executedIn(statsFile)
    assert.ok(['libshapes.so.p/src_area.c.o', 'libshapes.so.p/src_perimeter.c.o', 'shapes-cli.p/src_main.c.o'].every((a) => executed.includes(a)), executed.join(', '))
    assert.ok(!executed.includes('libshapes.so.p/meson-generated_.._names.c.o'), 'names.c does not read config.h')
    assert.match(execFileSync(join(build, 'shapes-cli'), ['square', '3'], { encoding: 'utf8' }), /square of side 3: area 9\.000, perimeter 12\.000/)
  })
})
