/**
 * A real CMake project (examples/cmake-hello: a library with a configured and
 * a generated header, an executable, two tests) configured with
 * `cmake -G Ninja` at test time and built by `bldr build -f build.ninja`: on a
 * local mesh of worker processes (bwrap), outputs compared byte for byte with
 * ninja's own build in the same folder, ctest run against bldr's binaries, and
 * header edits rebuilding exactly the compiles that read the header.
 */
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { appendFile, cp, mkdtemp, readFile, readlink, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { createBlake3Hasher } from '../../src/cas/hasher.js'
import { openCasStore } from '../../src/cas/store.js'
import { executedIn, removeProject, REPO_ROOT, runCli, type CliResult } from '../helpers.js'

const EXAMPLE = join(REPO_ROOT, 'examples', 'cmake-hello')

function assertBuilt(r: CliResult): void {
  assert.equal(r.code, 0, `bldr failed:\n${r.stdout}\n${r.stderr}`)
}

/** Files ninja's statements make (phony ones and CMake's never-made `.util` outputs aside), from `ninja -t targets all`. */
function ninjaOutputs(buildDir: string): string[] {
  const listing = execFileSync('ninja', ['-C', buildDir, '-t', 'targets', 'all'], { encoding: 'utf8' })
  return listing
    .split('\n')
    .map((l) => /^(.+): (\S+)$/.exec(l))
    .filter((m): m is RegExpExecArray => m !== null && m[2] !== 'phony' && !m[1]!.endsWith('.util') && m[1] !== 'build.ninja' && !['clean', 'help'].includes(m[1]!))
    .map((m) => m[1] as string)
    .sort()
}

describe('bldr build -f build.ninja: a CMake project', { timeout: 240_000 }, () => {
  let dir: string
  let build: string
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'bldr-cmake-'))
    await cp(EXAMPLE, dir, { recursive: true })
    build = join(dir, 'build')
    execFileSync('cmake', ['-G', 'Ninja', '-S', dir, '-B', build], { stdio: 'pipe' })
  })
  after(async () => {
    await removeProject(dir)
  })

  it('on a local mesh with bwrap: every output byte-identical to ninja\'s, ctest passes on bldr\'s binaries, a header edit rebuilds exactly its readers', async () => {
    // ninja's build, kept, then cleaned away.
    execFileSync('ninja', ['-C', build], { stdio: 'pipe' })
    const outputs = ninjaOutputs(build)
    assert.ok(outputs.includes('hello') && outputs.includes('libgreet.a') && outputs.includes('generated/table.h'), `ninja's outputs: ${outputs.join(', ')}`)
    const reference = new Map<string, Buffer>()
    for (const o of outputs) reference.set(o, await readFile(resolve(build, o)))
    execFileSync('ninja', ['-C', build, '-t', 'clean'], { stdio: 'pipe' })
    await rm(join(build, '.ninja_log'), { force: true })
    await rm(join(build, '.ninja_deps'), { force: true })
    await assert.rejects(stat(join(build, 'hello')), 'ninja -t clean removed the binary')

    const statsFile = join(dir, 'stats.json')
    const distributed = ['build', '-f', 'build/build.ninja', '--distributed', '--local-workers', '2', '--sandbox', 'bwrap', '--stats', statsFile]
    const r = await runCli(distributed, { cwd: dir })
    assertBuilt(r)
    assert.deepEqual(await executedIn(statsFile), [
      'CMakeFiles/greet-shared.dir/src/format.c.o',
      'CMakeFiles/greet-shared.dir/src/greet.c.o',
      'CMakeFiles/greet.dir/src/format.c.o',
      'CMakeFiles/greet.dir/src/greet.c.o',
      'CMakeFiles/hello-shared.dir/src/main.c.o',
      'CMakeFiles/hello.dir/src/main.c.o',
      'generated/table.h',
      'hello',
      'hello-shared',
      'libgreet-shared.so.1',
      'libgreet-shared.so.1.2.0',
      'libgreet.a',
    ])
    for (const [o, bytes] of reference) assert.ok(bytes.equals(await readFile(resolve(build, o))), `${o} differs from ninja's`)
    // The versioned shared library's names are symbolic links, as ninja's build makes them (a statement of their own).
    assert.equal(await readlink(join(build, 'libgreet-shared.so')), 'libgreet-shared.so.1')
    assert.equal(await readlink(join(build, 'libgreet-shared.so.1')), 'libgreet-shared.so.1.2.0')
    await assert.rejects(stat(join(build, 'CMakeFiles/hello.dir/src/main.c.o.d')), 'deps = gcc: the depfile is read, not left behind (as ninja)')
    // The workers got the sources from the client without the client copying them into its store.
    const store = await openCasStore(join(build, '.bldr', 'cas'), await createBlake3Hasher())
    const source = (await createBlake3Hasher()).hash(await readFile(join(dir, 'src/main.c')))
    assert.equal(await store.has(source), false, 'a source is served, not stored, by a mesh client')
    assert.equal(await store.has((await createBlake3Hasher()).hash(reference.get('hello')!)), true, 'its outputs are in its store')

    const ctest = execFileSync('ctest', ['--output-on-failure'], { cwd: build, encoding: 'utf8' })
    assert.match(ctest, /100% tests passed, 0 tests failed out of 3/)

    // Nothing changed: nothing runs.
    assertBuilt(await runCli(distributed, { cwd: dir }))
    assert.deepEqual(await executedIn(statsFile), [])

    // A header only format.c reads: only its compile runs (its object is unchanged, so the archive is restored).
    await appendFile(join(dir, 'src/format-internal.h'), '/* touched */\n')
    assertBuilt(await runCli(distributed, { cwd: dir }))
    assert.deepEqual(await executedIn(statsFile), ['CMakeFiles/greet-shared.dir/src/format.c.o', 'CMakeFiles/greet.dir/src/format.c.o'])

    // The header every source reads, with code no object uses: every compile (each source twice: static and shared), nothing else.
    await appendFile(join(dir, 'include/greet.h'), '#define GREET_MAX 64\nstatic inline int greet_max(void) { return GREET_MAX; }\n')
    assertBuilt(await runCli(distributed, { cwd: dir }))
    assert.deepEqual(await executedIn(statsFile), [
      'CMakeFiles/greet-shared.dir/src/format.c.o',
      'CMakeFiles/greet-shared.dir/src/greet.c.o',
      'CMakeFiles/greet.dir/src/format.c.o',
      'CMakeFiles/greet.dir/src/greet.c.o',
      'CMakeFiles/hello-shared.dir/src/main.c.o',
      'CMakeFiles/hello.dir/src/main.c.o',
    ])

    // A header cmake wrote into the build folder (no statement makes it) is found and followed too.
    await appendFile(join(build, 'generated/version.h'), '#define HELLO_EXTRA "x"\n')
    assertBuilt(await runCli(distributed, { cwd: dir }))
    assert.deepEqual(await executedIn(statsFile), ['CMakeFiles/greet-shared.dir/src/greet.c.o', 'CMakeFiles/greet.dir/src/greet.c.o'])
  })

  it('with the local sandbox and a named target: builds only that target\'s actions, and the binary passes its tests', async () => {
    const other = join(dir, 'build-local')
    execFileSync('cmake', ['-G', 'Ninja', '-S', dir, '-B', other], { stdio: 'pipe' })
    const statsFile = join(dir, 'stats-local.json')
    const r = await runCli(['build', '-C', other, '-f', 'build.ninja', 'greet', '--stats', statsFile], { cwd: dir })
    assertBuilt(r)
    assert.match(r.stderr, /sandbox local: these commands name files under .* by absolute path; .* differ from an in-place build/, 'the user is told what local cannot keep identical')
    assert.deepEqual(await executedIn(statsFile), ['CMakeFiles/greet.dir/src/format.c.o', 'CMakeFiles/greet.dir/src/greet.c.o', 'generated/table.h', 'libgreet.a'])
    await assert.rejects(stat(join(other, 'hello')), 'hello was not asked for')

    assertBuilt(await runCli(['build', '-C', other, '-f', 'build.ninja', '--stats', statsFile], { cwd: dir }))
    assert.deepEqual(await executedIn(statsFile), [
      'CMakeFiles/greet-shared.dir/src/format.c.o',
      'CMakeFiles/greet-shared.dir/src/greet.c.o',
      'CMakeFiles/hello-shared.dir/src/main.c.o',
      'CMakeFiles/hello.dir/src/main.c.o',
      'hello',
      'hello-shared',
      'libgreet-shared.so.1',
      'libgreet-shared.so.1.2.0',
    ])
    // local runs commands in its scratch folder, so the link gives hello-shared that folder as its RUNPATH: only bwrap and docker, which show the project at its own path, make a binary that finds its shared library (above).
    const ctest = execFileSync('ctest', ['--output-on-failure', '-E', 'shared'], { cwd: other, encoding: 'utf8' })
    assert.match(ctest, /100% tests passed, 0 tests failed out of 2/)
  })

  it('--sandbox docker: each action in a container that shows the project at its own path; outputs byte-identical to ninja\'s', async () => {
    const other = join(dir, 'build-docker')
    execFileSync('cmake', ['-G', 'Ninja', '-S', dir, '-B', other], { stdio: 'pipe' })
    // The reference was built before the header edits of the first test: build the same sources.
    execFileSync('ninja', ['-C', other], { stdio: 'pipe' })
    const expected = new Map<string, Buffer>()
    for (const o of ninjaOutputs(other)) if (!o.startsWith('/')) expected.set(o, await readFile(join(other, o)))
    execFileSync('ninja', ['-C', other, '-t', 'clean'], { stdio: 'pipe' })
    assertBuilt(await runCli(['build', '-C', other, '-f', 'build.ninja', '--sandbox', 'docker'], { cwd: dir }))
    assert.ok(expected.size >= 6)
    for (const [o, bytes] of expected) assert.ok(bytes.equals(await readFile(join(other, o))), `${o} differs from ninja's`)
  })

  it('bldr graph lists the commands in dependency order; a broken ninja file is refused with its file and line', async () => {
    const g = await runCli(['graph', '-C', build, '-f', 'build.ninja', 'hello'])
    assert.equal(g.code, 0, g.stderr)
    const lines = g.stdout.trim().split('\n')
    assert.equal(lines.length, 6)
    assert.match(lines[0] ?? '', /gen-table\.sh/)
    assert.match(lines[5] ?? '', /-o hello/)

    const broken = join(dir, 'broken.ninja')
    await appendFile(broken, 'rule cc\n  command = cc $in\nbuild a.o: c a.c\n')
    const r = await runCli(['build', '-f', 'broken.ninja'], { cwd: dir })
    assert.equal(r.code, 2)
    assert.match(r.stderr, /broken\.ninja:3: unknown rule "c"/)
  })
})
