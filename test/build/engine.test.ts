import assert from 'node:assert/strict'
import { chmod, mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { pino } from 'pino'
import { setTimeout as delay } from 'node:timers/promises'
import type { BuildEvent, BuildSummary } from '../../src/build/engine.js'
import { buildLocally, openProject, type LocalBuildOptions } from '../../src/build/project.js'
import { createBlake3Hasher } from '../../src/cas/hasher.js'
import { canDropCapabilities } from '../../sandbox/process-runner.js'
import { copyExample, makeProject, mtimeMs, snapshotFiles, withProject } from '../helpers.js'

async function build(dir: string, opts: { targets?: string[]; keepGoing?: boolean; jobs?: number } = {}) {
  const project = await openProject({ dir })
  const events: BuildEvent[] = []
  const summary = await buildLocally(project, { jobs: opts.jobs ?? 2, keepGoing: opts.keepGoing ?? false, targets: opts.targets ?? [], onEvent: (e) => events.push(e) })
  return { summary, events, project }
}

function withStatus(s: BuildSummary, status: string): string[] {
  return [...s.actions].filter(([, a]) => a.status === status).map(([id]) => id).sort()
}

const LIB_COMPILES = ['ast', 'error', 'eval', 'format', 'funcs', 'lexer', 'parser', 'strbuf', 'vars'].map((n) => `calc_core/compile/src/lib/${n}.c`)
const APP_COMPILES = ['calc/compile/src/app/main.c', 'calc/compile/src/app/selftest.c']

describe('local build of the example', { timeout: 120_000 }, () => {
  it('builds everything, then a rebuild with nothing changed runs nothing', async () => {
    await withProject(copyExample(), async (dir) => {
      const first = await build(dir)
      assert.equal(first.summary.ok, true)
      assert.equal(first.summary.total, 15)
      assert.equal(first.summary.executed, 15)
      assert.match(await readFile(join(dir, 'bldr-out/selftest.txt'), 'utf8'), /20 checks, 0 failed/)
      const mtime = await mtimeMs(join(dir, 'bldr-out/bin/calc'))

      const second = await build(dir)
      assert.equal(second.summary.executed, 0)
      assert.equal(second.summary.cached, 15)
      assert.equal(await mtimeMs(join(dir, 'bldr-out/bin/calc')), mtime, 'an unchanged output is not rewritten')
    })
  })

  it('reruns exactly the dependants of a changed source', async () => {
    await withProject(copyExample(), async (dir) => {
      await build(dir)
      const lexer = join(dir, 'src/lib/lexer.c')
      await writeFile(lexer, (await readFile(lexer, 'utf8')).replace('"name too long"', '"identifier too long"'))
      const { summary } = await build(dir)
      assert.deepEqual(withStatus(summary, 'executed'), ['calc/link', 'calc_core/archive', 'calc_core/compile/src/lib/lexer.c', 'selftest'])
      assert.equal(summary.cached, 11)
    })
  })

  it('stops at unchanged outputs: a comment in the shared header recompiles, nothing more', async () => {
    await withProject(copyExample(), async (dir) => {
      await build(dir)
      const header = join(dir, 'include/calc.h')
      await writeFile(header, `/* a comment changes no object file */\n${await readFile(header, 'utf8')}`)
      const { summary } = await build(dir)
      assert.deepEqual(withStatus(summary, 'executed'), [...APP_COMPILES, ...LIB_COMPILES].sort())
      assert.deepEqual(withStatus(summary, 'cached'), ['calc/link', 'calc_core/archive', 'selftest', 'version'])
    })
  })

  it('a changed generated header reruns its consumers', async () => {
    await withProject(copyExample(), async (dir) => {
      await build(dir)
      await writeFile(join(dir, 'VERSION'), '2.0.0\n')
      const { summary } = await build(dir)
      // Every compile of `calc` declares all of the target's headers, version.h among them.
      assert.deepEqual(withStatus(summary, 'executed'), [...APP_COMPILES, 'calc/link', 'selftest', 'version'])
    })
  })

  it('produces byte-identical outputs across clean rebuilds', async () => {
    await withProject(copyExample(), async (dir) => {
      await build(dir)
      const before = await snapshotFiles(dir, 'bldr-out')
      assert.ok(before.size >= 15)
      await rm(join(dir, '.bldr'), { recursive: true })
      await rm(join(dir, 'bldr-out'), { recursive: true })
      const { summary } = await build(dir)
      assert.equal(summary.executed, 15, 'the rebuild ran everything again')
      const after = await snapshotFiles(dir, 'bldr-out')
      assert.deepEqual([...after.keys()].sort(), [...before.keys()].sort())
      for (const [path, bytes] of before) assert.ok(after.get(path)?.equals(bytes), `${path} differs between clean builds`)
    })
  })

  it('restores a deleted output from the cache without running anything', async () => {
    await withProject(copyExample(), async (dir) => {
      await build(dir)
      const bin = join(dir, 'bldr-out/bin/calc')
      const bytes = await readFile(bin)
      await rm(bin)
      const { summary } = await build(dir)
      assert.equal(summary.executed, 0)
      assert.ok((await readFile(bin)).equals(bytes))
      assert.equal((await stat(bin)).mode & 0o111, 0o111, 'the binary is executable again')
    })
  })

  it('never uses a corrupted cached output: the action runs again', async () => {
    await withProject(copyExample(), async (dir) => {
      const { project } = await build(dir)
      const bin = join(dir, 'bldr-out/bin/calc')
      const bytes = await readFile(bin)
      const digest = (await createBlake3Hasher()).hash(bytes)
      const blob = project.cas.pathOf(digest)
      await chmod(blob, 0o644)
      const corrupt = Buffer.from(bytes)
      corrupt[100] = (corrupt[100] ?? 0) ^ 0xff
      await writeFile(blob, corrupt)
      await rm(bin)
      const { summary } = await build(dir)
      assert.deepEqual(withStatus(summary, 'executed'), ['calc/link'])
      assert.ok((await readFile(bin)).equals(bytes), 'the rebuilt binary has the right bytes')
      assert.ok((await readFile(blob)).equals(bytes), 'the store holds the right bytes again')
    })
  })

  it('outputs are read-only links to their blobs; one edited in place is rebuilt, not used', async () => {
    await withProject(copyExample(), async (dir) => {
      const { project } = await build(dir)
      const bin = join(dir, 'bldr-out/bin/calc')
      const bytes = await readFile(bin)
      const st = await stat(bin)
      assert.equal(st.mode & 0o777, 0o555, 'an executable output is r-x')
      assert.equal((await stat(join(dir, 'bldr-out/obj/calc_core/src/lib/eval.c.o'))).mode & 0o777, 0o444)
      assert.equal(st.ino, (await stat(project.cas.pathOf((await createBlake3Hasher()).hash(bytes)))).ino, 'the output is the stored blob')

      await chmod(bin, 0o755)
      await writeFile(bin, 'edited in place') // writes through the link, into the blob
      const { summary } = await build(dir)
      assert.deepEqual(withStatus(summary, 'executed'), ['calc/link'])
      assert.ok((await readFile(bin)).equals(bytes), 'the rebuilt binary has the right bytes')
    })
  })

  it('repairs a corrupted stored source from the project folder', async () => {
    await withProject(copyExample(), async (dir) => {
      const { project } = await build(dir)
      const src = await readFile(join(dir, 'src/lib/vars.c'))
      const blob = project.cas.pathOf((await createBlake3Hasher()).hash(src))
      await chmod(blob, 0o644)
      await writeFile(blob, 'int broken;')
      await rm(join(dir, '.bldr/ac.log'))
      const { summary } = await build(dir)
      assert.equal(summary.ok, true)
      assert.equal(summary.executed, 15)
      assert.ok((await readFile(blob)).equals(src))
    })
  })

  it('builds only the closure of the named target', async () => {
    await withProject(copyExample(), async (dir) => {
      const { summary } = await build(dir, { targets: ['calc_core'] })
      assert.equal(summary.total, 10)
      assert.deepEqual(withStatus(summary, 'executed'), ['calc_core/archive', ...LIB_COMPILES].sort())
    })
  })

  it('a build whose signal was aborted before it started runs nothing and ends as interrupted', async () => {
    await withProject(copyExample(), async (dir) => {
      const project = await openProject({ dir })
      const stop = new AbortController()
      stop.abort(new Error('the mesh is stopping'))
      const summary = await buildLocally(project, { jobs: 2, signal: stop.signal })
      assert.equal(summary.aborted, true)
      assert.equal(summary.ok, false)
      assert.equal(summary.executed, 0)
      await assert.rejects(stat(join(dir, 'bldr-out')), /ENOENT/, 'no action ran')
    })
  })
})

describe('C and C++ rules', { timeout: 60_000 }, () => {
  it('builds C++ with c++, a header-only library, and links C into a C++ binary', async () => {
    await withProject(makeProject({
      'BUILD.yaml': `
targets:
  consts:
    kind: cc_library
    srcs: [include/consts.h]
    hdrs: [include/consts.h]
  cmath:
    kind: cc_library
    srcs: [c/twice.c]
    hdrs: [c/twice.h]
    deps: [consts]
  app:
    kind: cc_binary
    srcs: [app/main.cc]
    deps: [cmath]
    copts: [-std=c++17, -O1]
`,
      'include/consts.h': '#pragma once\n#define BASE 21\n',
      'c/twice.h': '#pragma once\n#ifdef __cplusplus\nextern "C" {\n#endif\nint twice(int);\n#ifdef __cplusplus\n}\n#endif\n',
      'c/twice.c': '#include "consts.h"\n#include "twice.h"\nint twice(int x) { return 2 * x + (BASE - BASE); }\n',
      'app/main.cc': '#include <iostream>\n#include <string>\n#include "consts.h"\n#include "twice.h"\nint main() { std::cout << std::to_string(twice(BASE)) << std::endl; return 0; }\n',
    }), async (dir) => {
      const { summary, project } = await build(dir)
      assert.equal(summary.ok, true, JSON.stringify(summary.failed))
      assert.deepEqual(project.graph.targets.get('consts'), [], 'a header-only library makes no actions')
      assert.equal(project.graph.get('app/link').argv[0], 'c++')
      assert.equal(project.graph.get('app/compile/app/main.cc').argv[0], 'c++')
      assert.equal(project.graph.get('cmath/compile/c/twice.c').argv[0], 'cc')
      const { execFileSync } = await import('node:child_process')
      assert.equal(execFileSync(join(dir, 'bldr-out/bin/app'), { encoding: 'utf8' }), '42\n')
    })
  })

  it('reads another build file with -f, rooted at its folder', async () => {
    await withProject(makeProject({
      'sub/other.yaml': 'actions:\n  hello:\n    command: [sh, -c, "cat in.txt > out.txt"]\n    inputs: [in.txt]\n    outputs: [out.txt]\n',
      'sub/in.txt': 'from sub\n',
    }), async (dir) => {
      const project = await openProject({ dir, file: 'sub/other.yaml' })
      assert.equal(project.root, join(dir, 'sub'))
      const summary = await buildLocally(project, { jobs: 1 })
      assert.equal(summary.executed, 1)
      assert.equal(await readFile(join(dir, 'sub/out.txt'), 'utf8'), 'from sub\n')
    })
  })
})

describe('hermetic execution and failures', { timeout: 60_000 }, () => {
  it('an undeclared input is not visible to the action', async () => {
    await withProject(makeProject({
      'secret.txt': 'not declared',
      'declared.txt': 'declared',
      'BUILD.yaml': `
actions:
  reads-declared:
    command: [sh, -c, "cat declared.txt > a.txt"]
    inputs: [declared.txt]
    outputs: [a.txt]
  reads-undeclared:
    command: [sh, -c, "cat secret.txt > b.txt"]
    inputs: [declared.txt]
    outputs: [b.txt]
`,
    }), async (dir) => {
      const { summary, events } = await build(dir, { keepGoing: true })
      assert.deepEqual(summary.failed, ['reads-undeclared'])
      assert.equal(summary.executed, 1)
      const failure = events.find((e) => e.type === 'action-failed')
      assert.ok(failure && failure.type === 'action-failed')
      assert.equal(failure.failure.reason, 'exit 1')
      assert.match(failure.failure.stderr?.toString() ?? '', /secret\.txt: No such file/)
      assert.equal(await readFile(join(dir, 'a.txt'), 'utf8'), 'declared')
    })
  })

  it('the environment is fixed, not inherited', async () => {
    process.env['BLDR_TEST_LEAK'] = 'leaked'
    const { dir, cleanup } = await makeProject({
      'BUILD.yaml': 'actions:\n  env:\n    command: [sh, -c, "env | sort | grep -v -e ^PWD= -e ^HOME= -e ^TMPDIR= -e ^SHLVL= -e ^_= > env.txt"]\n    outputs: [env.txt]\n    env: { EXTRA: "1" }\n',
    })
    try {
      await build(dir)
      assert.equal(await readFile(join(dir, 'env.txt'), 'utf8'), 'EXTRA=1\nLANG=C\nLC_ALL=C\nPATH=/usr/local/bin:/usr/bin:/bin\nSOURCE_DATE_EPOCH=0\nTZ=UTC\n')
    } finally {
      delete process.env['BLDR_TEST_LEAK']
      await cleanup()
    }
  })

  it('a failure skips its dependants; keep-going builds the rest', async () => {
    await withProject(makeProject({
      'BUILD.yaml': `
actions:
  bad:
    command: [sh, -c, "echo compiling >&2; echo 'error: it broke' >&2; exit 3"]
    outputs: [bad.out]
  after-bad:
    command: [cp, bad.out, after.out]
    inputs: [bad.out]
    outputs: [after.out]
  after-after:
    command: [cp, after.out, after2.out]
    inputs: [after.out]
    outputs: [after2.out]
  fine:
    command: [sh, -c, "echo ok > fine.out"]
    outputs: [fine.out]
`,
    }), async (dir) => {
      const { summary, events } = await build(dir, { keepGoing: true })
      assert.equal(summary.ok, false)
      assert.deepEqual(summary.failed, ['bad'])
      assert.deepEqual(withStatus(summary, 'skipped'), ['after-after', 'after-bad'])
      assert.deepEqual(withStatus(summary, 'executed'), ['fine'])
      const failure = events.find((e) => e.type === 'action-failed')
      assert.ok(failure?.type === 'action-failed')
      assert.equal(failure.failure.exitCode, 3)
      assert.match(failure.failure.stderr?.toString() ?? '', /error: it broke/)

      // A failure is not cached: the next build runs it again.
      const again = await build(dir, { keepGoing: true })
      assert.deepEqual(again.summary.failed, ['bad'])
      assert.deepEqual(withStatus(again.summary, 'cached'), ['fine'])
    })
  })

  it('without keep-going, nothing new starts after a failure', async () => {
    await withProject(makeProject({
      'BUILD.yaml': `
actions:
  bad:
    command: [sh, -c, "exit 1"]
    outputs: [bad.out]
  c1:
    command: [sh, -c, "echo 1 > c1.out"]
    outputs: [c1.out]
  c2:
    command: [cp, c1.out, c2.out]
    inputs: [c1.out]
    outputs: [c2.out]
  c3:
    command: [cp, c2.out, c3.out]
    inputs: [c2.out]
    outputs: [c3.out]
`,
    }), async (dir) => {
      const { summary } = await build(dir, { jobs: 1 })
      assert.deepEqual(summary.failed, ['bad'])
      assert.equal(summary.actions.get('c3')?.status, 'not-started')
      assert.ok(summary.notStarted >= 1)
    })
  })

  it('an action that writes to a generated input in place fails, and the store is not left corrupt', async () => {
    await withProject(makeProject({
      'BUILD.yaml': `
actions:
  gen:
    command: [sh, -c, "echo original > data.txt"]
    outputs: [data.txt]
  vandal:
    command: [sh, -c, "chmod u+w data.txt; echo extra >> data.txt; cp data.txt out.txt"]
    inputs: [data.txt]
    outputs: [out.txt]
`,
    }), async (dir) => {
      const first = await build(dir)
      assert.deepEqual(first.summary.failed, ['vandal'])
      const failure = first.events.find((e) => e.type === 'action-failed')
      assert.ok(failure?.type === 'action-failed')
      assert.match(failure.failure.reason, /wrote to its input data\.txt \(inputs are read-only\)/)

      await writeFile(join(dir, 'BUILD.yaml'), 'actions:\n  gen:\n    command: [sh, -c, "echo original > data.txt"]\n    outputs: [data.txt]\n  reader:\n    command: [cp, data.txt, out.txt]\n    inputs: [data.txt]\n    outputs: [out.txt]\n')
      const second = await build(dir)
      assert.equal(second.summary.ok, true)
      assert.equal(await readFile(join(dir, 'out.txt'), 'utf8'), 'original\n', 'the damaged blob was not used')
      assert.equal(await readFile(join(dir, 'data.txt'), 'utf8'), 'original\n')
    })
  })

  it('an action cannot change a source input: refused by the system when root (no capabilities), else caught after the run', async () => {
    await withProject(makeProject({
      'data.txt': 'original\n',
      'BUILD.yaml': 'actions:\n  vandal:\n    command: [sh, -c, "chmod u+w data.txt; echo extra >> data.txt && cp data.txt out.txt"]\n    inputs: [data.txt]\n    outputs: [out.txt]\n',
    }), async (dir) => {
      const first = await build(dir)
      assert.deepEqual(first.summary.failed, ['vandal'])
      const failure = first.events.find((e) => e.type === 'action-failed')
      assert.ok(failure?.type === 'action-failed')
      if (canDropCapabilities()) {
        assert.equal(failure.failure.reason, 'exit 2')
        assert.match(failure.failure.stderr?.toString() ?? '', /chmod: .*data\.txt.*Operation not permitted/)
        assert.match(failure.failure.stderr?.toString() ?? '', /data\.txt: Permission denied/)
      } else {
        assert.match(failure.failure.reason, /wrote to its input data\.txt \(inputs are read-only\)/)
      }
      assert.equal(await readFile(join(dir, 'data.txt'), 'utf8'), 'original\n', 'the project file is untouched')

      await writeFile(join(dir, 'BUILD.yaml'), 'actions:\n  reader:\n    command: [cp, data.txt, out.txt]\n    inputs: [data.txt]\n    outputs: [out.txt]\n')
      const second = await build(dir)
      assert.equal(second.summary.ok, true)
      assert.equal(await readFile(join(dir, 'out.txt'), 'utf8'), 'original\n', 'a damaged blob was repaired, not used')
    })
  })

  it('a source that vanishes after the build file was read fails its action with a clear reason', async () => {
    await withProject(makeProject({
      'data.txt': 'x',
      'BUILD.yaml': 'actions:\n  copy:\n    command: [cp, data.txt, out.txt]\n    inputs: [data.txt]\n    outputs: [out.txt]\n',
    }), async (dir) => {
      const project = await openProject({ dir })
      await rm(join(dir, 'data.txt'))
      const events: BuildEvent[] = []
      const summary = await buildLocally(project, { jobs: 1, onEvent: (e) => events.push(e) })
      assert.deepEqual(summary.failed, ['copy'])
      const failure = events.find((e) => e.type === 'action-failed')
      assert.ok(failure?.type === 'action-failed')
      assert.equal(failure.failure.reason, 'source file data.txt disappeared during the build; run the build again')
    })
  })

  it('a missing declared output fails the action', async () => {
    await withProject(makeProject({
      'BUILD.yaml': 'actions:\n  lazy:\n    command: [sh, -c, "echo hi > other.txt"]\n    outputs: [promised.txt]\n',
    }), async (dir) => {
      const { summary, events } = await build(dir)
      assert.deepEqual(summary.failed, ['lazy'])
      const failure = events.find((e) => e.type === 'action-failed')
      assert.ok(failure?.type === 'action-failed')
      assert.equal(failure.failure.reason, 'did not create declared output promised.txt')
      await assert.rejects(stat(join(dir, 'other.txt')), /ENOENT/, 'undeclared outputs stay in the scratch folder')
    })
  })

  it('the timeout kills the action and its children', async () => {
    await withProject(makeProject({
      'BUILD.yaml': 'actions:\n  slow:\n    command: [sh, -c, "sleep 30 & sleep 30; echo done > out.txt"]\n    outputs: [out.txt]\n    timeout: 300ms\n',
    }), async (dir) => {
      const started = performance.now()
      const { summary, events } = await build(dir)
      assert.ok(performance.now() - started < 10_000, 'the build did not wait for the sleeps')
      assert.deepEqual(summary.failed, ['slow'])
      const failure = events.find((e) => e.type === 'action-failed')
      assert.ok(failure?.type === 'action-failed')
      assert.equal(failure.failure.reason, 'timed out after 0.3 s')
    })
  })

  it('a command that does not exist fails with a clear message', async () => {
    await withProject(makeProject({
      'BUILD.yaml': 'actions:\n  nope:\n    command: [no-such-tool-xyz, --flag]\n    outputs: [x]\n',
    }), async (dir) => {
      const { events } = await build(dir)
      const failure = events.find((e) => e.type === 'action-failed')
      assert.ok(failure?.type === 'action-failed')
      assert.equal(failure.failure.exitCode, 127)
      assert.match(failure.failure.stderr?.toString() ?? '', /cannot run "no-such-tool-xyz": not found \(PATH=\/usr\/local\/bin:\/usr\/bin:\/bin\)/)
    })
  })
})

/**
 * Remember a digest for `path` that its bytes do not have, as when the file is written between hashing
 * and storing: storing it then finds other bytes (forged, so the test does not race a writer).
 */
async function forgeRememberedDigest(dir: string, path: string): Promise<void> {
  const st = await stat(join(dir, path), { bigint: true })
  await mkdir(join(dir, '.bldr'), { recursive: true })
  const identity = `${st.dev}:${st.ino}:${st.size}:${st.mode}:${st.mtimeNs}:${st.ctimeNs}`
  await writeFile(join(dir, '.bldr', 'source-digests.json'), JSON.stringify({ v: 1, entries: { [path]: [identity, '0'.repeat(64)] } }))
}

describe('a ninja build whose source tree changes while it runs', () => {
  it('leaves a staged file that changed since it was hashed out of the staging, with one warning, instead of failing every action', async () => {
    await withProject(makeProject({
      'build.ninja': 'rule copy\n  command = cp $in $out\nbuild a.out: copy a.txt\nbuild b.out: copy b.txt\n',
      'a.txt': 'a\n',
      'b.txt': 'b\n',
      'build.log': 'a log another program is writing\n',
    }), async (dir) => {
      await forgeRememberedDigest(dir, 'build.log')
      const lines: string[] = []
      const log = pino({ level: 'warn' }, { write: (line: string) => void lines.push(line) })
      const summary = await buildLocally(await openProject({ dir, file: 'build.ninja' }), { jobs: 1, log })
      assert.equal(summary.ok, true, `failed: ${summary.failed.join(', ')}`)
      assert.equal(await readFile(join(dir, 'a.out'), 'utf8'), 'a\n')
      assert.equal(await readFile(join(dir, 'b.out'), 'utf8'), 'b\n')
      const warnings = lines.map((l) => (JSON.parse(l) as { msg: string }).msg).filter((m) => m.includes('build.log'))
      assert.deepEqual(warnings, ["file build.log changed while the build read it (no action declares it); it is left out of the files staged for this build's actions"])
    })
  })

  it('still fails an action whose declared input changed since it was hashed', async () => {
    await withProject(makeProject({
      'build.ninja': 'rule copy\n  command = cp $in $out\nbuild a.out: copy a.txt\n',
      'a.txt': 'a\n',
    }), async (dir) => {
      await forgeRememberedDigest(dir, 'a.txt')
      const events: BuildEvent[] = []
      const summary = await buildLocally(await openProject({ dir, file: 'build.ninja' }), { jobs: 1, onEvent: (e) => events.push(e) })
      assert.deepEqual(summary.failed, ['a.out'])
      const failure = events.find((e) => e.type === 'action-failed')
      assert.ok(failure?.type === 'action-failed')
      assert.match(failure.failure.reason, /^source file a\.txt changed \(was blake3 0{64}, now [0-9a-f]{64}\) during the build; run the build again$/)
    })
  })
})

/** A ninja project of `n` independent copies, i/<k>.txt -> o/<k>.txt. */
function copiesProject(n: number): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const files: Record<string, string> = { 'build.ninja': `rule copy\n  command = cp $in $out\n${Array.from({ length: n }, (_, k) => `build o/${k}.txt: copy i/${k}.txt\n`).join('')}` }
  for (let k = 0; k < n; k++) files[`i/${k}.txt`] = `${k}\n`
  return makeProject(files)
}

/** A local build of `dir` (a ninja project) with `opts`; its events. */
async function buildWith(dir: string, opts: Partial<LocalBuildOptions> = {}): Promise<{ summary: BuildSummary; events: BuildEvent[] }> {
  const events: BuildEvent[] = []
  const summary = await buildLocally(await openProject({ dir, file: 'build.ninja' }), { jobs: 2, onEvent: (e) => events.push(e), ...opts })
  return { summary, events }
}

const cachedDone = (events: BuildEvent[]): number => events.filter((e) => e.type === 'action-done' && e.status === 'cached').length

describe('the cache checks of a build', { timeout: 120_000 }, () => {
  it('let I/O in as they go, and wait while holdChecks says so', async () => {
    const N = 300
    await withProject(copiesProject(N), async (dir) => {
      assert.equal((await buildWith(dir)).summary.executed, N)

      // Nothing changed: 300 checks are far over CHECK_SLICE_MS, and a callback queued before them runs before they are all done.
      let doneWhenIoRan = -1
      const events: BuildEvent[] = []
      const unchanged = await buildWith(dir, {
        onEvent: (e) => {
          if (e.type === 'build-start') setImmediate(() => (doneWhenIoRan = cachedDone(events)))
          events.push(e)
        },
      })
      assert.equal(unchanged.summary.cached, N)
      assert.ok(doneWhenIoRan >= 0 && doneWhenIoRan < N, `I/O got in after ${doneWhenIoRan} of ${N} checks`)

      // holdChecks: no check is done while it gives a promise; all are once it settles.
      let release!: () => void
      const gate = new Promise<void>((resolve) => (release = resolve))
      let open = false
      const held: BuildEvent[] = []
      const building = buildWith(dir, { holdChecks: () => (open ? undefined : gate), onEvent: (e) => held.push(e) })
      await delay(100)
      assert.equal(cachedDone(held), 0)
      open = true
      release()
      assert.equal((await building).summary.cached, N)
    })
  })
})
