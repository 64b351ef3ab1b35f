import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { BuildFileError, BuildFileErrors } from '../../../src/errors.js'
import { parseNinjaManifest } from '../../../src/graph/ninja/manifest-parser.js'
import { loadNinjaGraph, projectRootOf } from '../../../src/graph/ninja/ninja-load.js'

const RULES = `rule cc
  command = cc -MD -MF $out.d -c $in -o $out
  depfile = $out.d
  deps = gcc
  description = CC $out
rule ar
  command = ar rcs $out $in
rule gen
  command = sh $in > $out
rule regen
  command = cmake .
  generator = 1
pool link_pool
  depth = 1
rule ld
  command = cc $in -o $out
  pool = link_pool
`

/** A CMake-like manifest: sources by absolute path under /p, the build folder /p/build. */
const MANIFEST = `${RULES}
build gen/t.h | /p/build/gen/t.h: gen /p/tools/t.sh
build order_a: phony || gen/t.h
build obj/a.o: cc /p/src/a.c || order_a
build obj/b.o: cc /p/src/b.c | /usr/lib/x.h || order_a
build liba.a: ar obj/a.o obj/b.o
build app: ld obj/b.o | liba.a /usr/lib/libm.so
build all: phony app
build build.ninja: regen /p/CMakeLists.txt
build /p/CMakeLists.txt: phony
default all
`

const FILES = ['CMakeLists.txt', 'src/a.c', 'src/b.c', 'include/a.h', 'tools/t.sh', 'build/build.ninja', 'build/CMakeCache.txt', 'build/gen/config.h', 'build/obj/a.o', 'build/.ninja_log']

function load(text: string, files = FILES, buildDir = '/p/build') {
  const manifest = parseNinjaManifest('build.ninja', () => text)
  const root = projectRootOf(manifest, buildDir)
  return { root, graph: loadNinjaGraph({ manifest, root, buildDir, files }) }
}

function errorsOf(text: string, files = FILES, buildDir = '/p/build'): string[] {
  try {
    load(text, files, buildDir)
  } catch (err) {
    if (err instanceof BuildFileError) return [err.message]
    assert.ok(err instanceof BuildFileErrors, `expected BuildFileErrors, got ${String(err)}`)
    return err.errors.map((e) => e.message)
  }
  assert.fail('the manifest was accepted')
}

describe('ninja manifest → actions', () => {
  it('finds the project root holding the build folder and the sources, and maps every path onto it', () => {
    const { root, graph } = load(MANIFEST)
    assert.equal(root, '/p')
    const a = graph.get('obj/a.o')
    assert.deepEqual(a.inputs, ['src/a.c'])
    assert.deepEqual(a.orderOnly, ['build/gen/t.h'], 'order-only through the phony target, to the file')
    assert.deepEqual(a.outputs, ['build/obj/a.o', 'build/obj/a.o.d'], 'the depfile is an output')
    assert.deepEqual(a.depfile, { path: 'build/obj/a.o.d', keep: false })
    assert.equal(a.execRoot, '/p')
    assert.equal(a.cwd, 'build')
    assert.deepEqual(a.argv, ['/bin/sh', '-c', 'cc -MD -MF obj/a.o.d -c /p/src/a.c -o obj/a.o'])
    assert.equal(a.description, 'CC obj/a.o')
    assert.deepEqual(graph.depsOf('obj/a.o'), ['gen/t.h'])
  })

  it('leaves toolchain files out, and stages the source tree without outputs, ninja\'s own files or build.ninja\'s generator outputs', () => {
    const { graph } = load(MANIFEST)
    assert.deepEqual(graph.get('obj/b.o').inputs, ['src/b.c'])
    assert.deepEqual(graph.get('app').inputs, ['build/liba.a', 'build/obj/b.o'])
    assert.deepEqual(graph.get('obj/a.o').staged, ['CMakeLists.txt', 'build/CMakeCache.txt', 'build/gen/config.h', 'include/a.h', 'src/a.c', 'src/b.c', 'tools/t.sh'])
    assert.equal(graph.get('app').pool?.depth, 1)
  })

  it('leaves other build folders (CMake\'s, Meson\'s) out of the staged source tree, and says which; keeps its own, and a declared input there', () => {
    const files = [...FILES, 'build-rel/CMakeCache.txt', 'build-rel/obj/a.o', 'build-rel/gen/config.h', 'mbuild/meson-private/coredata.dat', 'mbuild/foo.o', 'build/_deps/sub-build/CMakeCache.txt', 'build/_deps/sub-build/x.h', 'notes/CMakeCache.txt.md'].sort()
    const manifest = parseNinjaManifest('build.ninja', () => `${MANIFEST}build extra.o: cc /p/src/a.c | /p/build-rel/gen/config.h
`)
    let told: readonly string[] = []
    const graph = loadNinjaGraph({ manifest, root: '/p', buildDir: '/p/build', files, onOtherBuildFolders: (f) => (told = f) })
    assert.deepEqual(told, ['build-rel', 'mbuild'])
    const staged = graph.get('obj/a.o').staged ?? []
    assert.ok(!staged.some((f) => f.startsWith('build-rel/') || f.startsWith('mbuild/')), staged.join(' '))
    assert.ok(staged.includes('build/CMakeCache.txt') && staged.includes('build/gen/config.h'), 'its own build folder stays')
    assert.ok(staged.includes('build/_deps/sub-build/x.h'), 'a build folder inside its own is its own')
    assert.ok(staged.includes('notes/CMakeCache.txt.md'))
    assert.deepEqual(graph.get('extra.o').inputs, ['build-rel/gen/config.h', 'src/a.c'], 'a declared input in another build folder is still an input')
  })

  it('an in-source build (the build folder is the root) has no other build folder', () => {
    const manifest = parseNinjaManifest('build.ninja', () => `${RULES}build x.o: cc src/a.c\n`)
    let told: readonly string[] | undefined
    loadNinjaGraph({ manifest, root: '/p', buildDir: '/p', files: ['CMakeCache.txt', 'src/a.c', 'sub/CMakeCache.txt'], onOtherBuildFolders: (f) => (told = f) })
    assert.equal(told, undefined)
  })

  it('targets: outputs as written and as project paths, phony aliases; defaults from `default`; generator statements are not actions', () => {
    const { graph } = load(MANIFEST)
    assert.deepEqual(graph.targets.get('all'), ['app'])
    assert.deepEqual(graph.targets.get('obj/b.o'), ['obj/b.o'])
    assert.deepEqual(graph.targets.get('build/obj/b.o'), ['obj/b.o'])
    assert.deepEqual(graph.targets.get('/p/build/gen/t.h'), ['gen/t.h'])
    assert.deepEqual(graph.defaults, ['all'])
    assert.equal(graph.actions.has('build.ninja'), false)
    assert.deepEqual([...graph.closure(graph.targets.get('all') ?? [])].sort(), ['app', 'gen/t.h', 'liba.a', 'obj/a.o', 'obj/b.o'])
  })

  it('without `default`, builds every output nothing else uses', () => {
    const { graph } = load(`${RULES}\nbuild x.o: cc /p/src/a.c\nbuild y.o: cc /p/src/b.c\nbuild lib.a: ar x.o\n`)
    assert.deepEqual(graph.defaults, ['y.o', 'lib.a'])
  })

  it('refuses with file and line: a missing input, two statements making one file, a path outside the project, a cycle, an unknown default, dyndep', () => {
    assert.deepEqual(errorsOf(`${RULES}\nbuild x.o: cc /p/src/missing.c\n`), ['build.ninja:19: input src/missing.c is missing and no statement makes it'])
    assert.deepEqual(errorsOf(`${RULES}\nbuild x.o: cc /p/src/a.c\nbuild x.o: cc /p/src/b.c\n`), ['build.ninja:20: multiple statements make build/x.o (also build.ninja:19)'])
    assert.deepEqual(errorsOf(`${RULES}\nbuild a: ar b\nbuild b: ar a\n`), ['build.ninja:19: dependency cycle: a -> b -> a'])
    assert.deepEqual(errorsOf(`${RULES}\nbuild x.o: cc /p/src/a.c\ndefault nope\n`), ['build.ninja:20: unknown target "nope" in default'])
    assert.match(errorsOf(`${RULES}\nbuild x.o: cc /p/src/a.c\n  dyndep = dd\n`)[0] ?? '', /^build\.ninja:19: dyndep is not supported/)
  })

  it('takes a file another statement makes as an input when the command names it without declaring it (meson\'s shared libraries), if it waits for that statement', () => {
    const text = `rule cc
  command = cc -c $in -o $out
rule link
  command = cc -o $out $in $LINK_ARGS
rule shsym
  command = extract $in $out
build obj/a.o: cc ../src/a.c
build libfoo.so: link obj/a.o
build libfoo.so.symbols: shsym libfoo.so
build app.o: cc ../src/main.c
build app: link app.o | libfoo.so.symbols
  LINK_ARGS = -Wl,--start-group libfoo.so -Wl,--end-group '-Wl,-rpath,$$ORIGIN/' /p/build/libfoo.so
build early: link app.o
  LINK_ARGS = libfoo.so
build self: link obj/a.o
  LINK_ARGS = -Wl,-soname,self
build libs: phony libfoo.so.symbols
build app2: link app.o || libs
  LINK_ARGS = libfoo.so obj/a.o
`
    const { graph } = load(text, ['src/a.c', 'src/main.c', 'build/build.ninja'])
    assert.deepEqual(graph.get('app2').inputs, ['build/app.o', 'build/libfoo.so', 'build/obj/a.o'], 'files of statements it waits for through a phony target and through each other, each taken')
    assert.deepEqual(graph.get('app').inputs, ['build/app.o', 'build/libfoo.so', 'build/libfoo.so.symbols'], 'named twice (relative and absolute), taken once')
    assert.deepEqual(graph.get('early').inputs, ['build/app.o'], 'a statement it does not wait for is not waited for because of a word')
    assert.deepEqual(graph.get('self').inputs, ['build/obj/a.o'], 'its own output is not its input')
  })

  it('meson\'s layout: sources named relative to the build folder (../src/a.c) widen the project to their folder', () => {
    const { root, graph } = load(`${RULES}\nbuild a.o: cc ../src/a.c\n  extra = -I../include\n`)
    assert.equal(root, '/p')
    assert.deepEqual(graph.get('a.o').inputs, ['src/a.c'])
    assert.equal(graph.get('a.o').cwd, 'build')
  })

  it('refuses a manifest whose files share no folder with the build folder but /', () => {
    assert.match(errorsOf(`${RULES}\nbuild x.o: cc /elsewhere/a.c\n`)[0] ?? '', /^build\.ninja:19: \/elsewhere\/a\.c and the build folder \/p\/build have no common folder but \//)
  })
})
