/**
 * The local mesh kept between builds (`bldr build --distributed` with no
 * coordinator, src/net/mesh-daemon.ts): real background processes, reached
 * over their Unix socket; what starts it, what reuses it, what stops it, and
 * faults of builds on it.
 */
import assert from 'node:assert/strict'
import { appendFile, mkdir, readFile, readlink, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'
import { describe, it } from 'node:test'
import { createConnection } from 'node:net'
import { isAlive } from '../../src/cas/fs-util.js'
import { daemonFiles } from '../../src/net/mesh-daemon.js'
import { childPids, copyExample, keptMeshOf, makeProject, runCli, startBldr, withProject as withProjectOnly, type CliResult } from '../helpers.js'

const MESH = ['--distributed', '--local-workers', '2', '-j', '2']

function assertBuilt(r: CliResult): void {
  assert.equal(r.code, 0, `bldr failed:\n${r.stdout}\n${r.stderr}`)
}

/** The kept mesh a build started as it ended (its note), if it did. */
function startedAfter(r: CliResult): number | undefined {
  const m = /^bldr: local mesh: started in the background for the next builds \(pid (\d+)\), kept for .* after the last one \(bldr mesh stop ends it\)$/m.exec(r.stderr)
  return m ? Number(m[1]) : undefined
}

/** The kept mesh a build used (its note), if it did. */
function reached(r: CliResult): number | undefined {
  const m = /^bldr: local mesh: .*; kept from an earlier build \(pid (\d+), up \d+ (s|min)\)(, which runs this build)?$/m.exec(r.stderr)
  return m ? Number(m[1]) : undefined
}

/** withProject, and a failure says what the kept mesh logged (its folder is removed after). */
async function withProject(project: Parameters<typeof withProjectOnly>[0], fn: (dir: string) => Promise<void>): Promise<void> {
  await withProjectOnly(project, async (dir) => {
    try {
      await fn(dir)
    } catch (err) {
      const log = await readFile(join(dir, '.bldr', 'mesh', 'daemon.log'), 'utf8').catch(() => '')
      if (log && err instanceof Error) err.message += `\nthe end of .bldr/mesh/daemon.log:\n${log.trimEnd().split('\n').slice(-30).join('\n')}`
      throw err
    }
  })
}

async function waitUntilGone(pids: number[], deadlineMs: number): Promise<void> {
  const end = performance.now() + deadlineMs
  while (pids.some(isAlive)) {
    if (performance.now() > end) assert.fail(`processes still running after ${deadlineMs} ms: ${pids.filter(isAlive).join(', ')}`)
    await delay(50)
  }
}

/** A change to a source that changes its object, so its compile and what uses it run again. */
async function changeSource(dir: string, n: number): Promise<void> {
  await appendFile(join(dir, 'src/lib/vars.c'), `\nint calc_extra_${n}(void);\nint calc_extra_${n}(void) { return ${n}; }\n`)
}

/** `n` independent actions that each sleep `sleepS`, and one that joins their outputs. */
function sleepProject(n: number, sleepS: number): Record<string, string> {
  const lines = ['actions:', '  warm:', '    command: [sh, -c, "echo warm > warm.txt"]', '    outputs: [warm.txt]']
  for (let i = 0; i < n; i++) lines.push(`  a${i}:`, `    command: [sh, -c, "sleep ${sleepS}; cat warm.txt > out/a${i}.txt; echo ${i} >> out/a${i}.txt"]`, '    inputs: [warm.txt]', `    outputs: [out/a${i}.txt]`)
  lines.push('  all:', `    command: [sh, -c, "cat ${Array.from({ length: n }, (_, i) => `out/a${i}.txt`).join(' ')} > all.txt"]`)
  lines.push(`    inputs: [${Array.from({ length: n }, (_, i) => `out/a${i}.txt`).join(', ')}]`, '    outputs: [all.txt]')
  return { 'BUILD.yaml': `${lines.join('\n')}\n` }
}

/** A kept mesh for `dir`: one build of `warm` alone on a mesh of its own starts it. */
async function warmUp(dir: string, args: string[]): Promise<{ pid: number; workers: number[] }> {
  const r = await runCli(['build', '-C', dir, 'warm', ...args])
  assertBuilt(r)
  const pid = startedAfter(r)
  assert.ok(pid, r.stderr)
  const mesh = await keptMeshOf(dir)
  assert.equal(mesh.pid, pid)
  return mesh
}

describe('the local mesh kept between builds', { timeout: 180_000 }, () => {
  it('a first build runs its own mesh and starts one for the next; the next reaches it; bldr mesh status shows it and bldr mesh stop ends it', async () => {
    await withProject(copyExample(), async (dir) => {
      const first = await runCli(['build', '-C', dir, ...MESH])
      assertBuilt(first)
      // Asked at once, while it starts, status waits for it.
      assert.match((await runCli(['mesh', 'status', '-C', dir])).stdout, /^bldr mesh: pid \d+, up \d+ s, 0 builds connected/)
      assert.match(first.stderr, /^bldr: local mesh: 2 worker processes × 1 slot, strategy \S+, seeding [^;]+$/m, 'its own mesh')
      const pid = startedAfter(first)
      assert.ok(pid, first.stderr)
      assert.match(first.stderr, /kept for 10 min after the last one/)
      const mesh = await keptMeshOf(dir)
      assert.equal(mesh.pid, pid)
      assert.equal(mesh.workers.length, 2)
      for (const p of [mesh.pid, ...mesh.workers]) assert.ok(isAlive(p), `process ${p} of the kept mesh`)

      await changeSource(dir, 1)
      const second = await runCli(['build', '-C', dir, ...MESH])
      assertBuilt(second)
      assert.match(second.stdout, /[1-9]\d* executed/)
      assert.equal(reached(second), mesh.pid, second.stderr)
      assert.equal(startedAfter(second), undefined)
      assert.deepEqual(await keptMeshOf(dir), mesh, 'the same worker processes')

      const status = await runCli(['mesh', 'status', '-C', dir])
      assert.equal(status.code, 0, status.stderr)
      assert.match(status.stdout, new RegExp(`^bldr mesh: pid ${mesh.pid}, up \\d+ s, 0 builds connected; stops 600 s after the last build$`, 'm'))
      assert.match(status.stdout, new RegExp(`2 worker processes \\(pids ${mesh.workers.join(', ')}; slots 1 \\+ 1\\), sandbox local`))

      const stop = await runCli(['mesh', 'stop', '-C', dir])
      assert.equal(stop.code, 0, stop.stderr)
      assert.equal(stop.stdout, `bldr mesh: stopped the local mesh (pid ${mesh.pid})\n`)
      for (const p of [mesh.pid, ...mesh.workers]) assert.ok(!isAlive(p), `process ${p} outlived bldr mesh stop`)
      const none = await runCli(['mesh', 'status', '-C', dir])
      assert.equal(none.code, 1)
      assert.equal(none.stdout, `bldr mesh: no local mesh runs for ${dir}\n`)
      assert.equal((await runCli(['mesh', 'stop', '-C', dir])).stdout, `bldr mesh: no local mesh runs for ${dir}\n`)
    })
  })

  it('a new kept mesh primes the project it was started for (its graph, its outputs in place, its sources) before a build comes', async () => {
    await withProject(copyExample(), async (dir) => {
      const first = await runCli(['build', '-C', dir, ...MESH])
      assertBuilt(first)
      assert.ok(startedAfter(first), first.stderr)
      const log = daemonFiles(join(dir, '.bldr', 'mesh')).log
      const deadline = performance.now() + 60_000
      let line: string | undefined
      while (!(line = (await readFile(log, 'utf8').catch(() => '')).split('\n').find((l) => l.includes('"msg":"primed the project for its next build"')))) {
        if (performance.now() > deadline) assert.fail(`the mesh did not prime the project:\n${await readFile(log, 'utf8').catch(() => '')}`)
        await delay(100)
      }
      const primed = JSON.parse(line) as { sources: number; outputs: number; buildFile: string }
      assert.equal(primed.buildFile, join(dir, 'BUILD.yaml'))
      assert.ok(primed.sources >= 5, `sources kept for serving: ${line}`)
      assert.ok(primed.outputs >= 3, `outputs taken as verified: ${line}`)
      await changeSource(dir, 2)
      const second = await runCli(['build', '-C', dir, ...MESH])
      assertBuilt(second)
      assert.match(second.stdout, /[1-9]\d* executed/)
      assert.match(second.stderr, /, which runs this build$/m)
    })
  })

  it('a build with other settings stops it and keeps one of its own settings; --mesh-idle 0 or another --log-level leaves it alone and keeps none', async () => {
    await withProject(copyExample(), async (dir) => {
      assertBuilt(await runCli(['build', '-C', dir, ...MESH]))
      const old = await keptMeshOf(dir)
      await changeSource(dir, 1)
      const other = await runCli(['build', '-C', dir, '--distributed', '--local-workers', '1', '-j', '2'])
      assertBuilt(other)
      assert.equal(reached(other), undefined)
      assert.match(other.stderr, /^bldr: local mesh: 1 worker process × 2 slots, strategy \S+, seeding [^;]+$/m)
      for (const p of [old.pid, ...old.workers]) assert.ok(!isAlive(p), `process ${p} of the replaced mesh is still running`)
      const now = startedAfter(other)
      assert.ok(now && now !== old.pid, other.stderr)
      const replaced = await keptMeshOf(dir)
      assert.equal(replaced.pid, now)
      assert.equal(replaced.workers.length, 1)

      await changeSource(dir, 2)
      const own = await runCli(['build', '-C', dir, ...MESH, '--mesh-idle', '0'])
      assertBuilt(own)
      assert.match(own.stderr, /^bldr: local mesh: 2 worker processes × 1 slot, strategy \S+, seeding [^;]+$/m)
      assert.equal(startedAfter(own), undefined)
      assert.deepEqual(await keptMeshOf(dir), replaced)
      assert.ok(isAlive(replaced.pid))
      // So does a build at another log level: its workers' logs come to its stderr.
      await changeSource(dir, 3)
      const verbose = await runCli(['build', '-C', dir, '--distributed', '--local-workers', '1', '-j', '2', '--log-level', 'info'])
      assertBuilt(verbose)
      assert.equal(reached(verbose), undefined)
      assert.equal(startedAfter(verbose), undefined)
      assert.match(verbose.stderr, /"msg":"worker ready"/)
      assert.deepEqual(await keptMeshOf(dir), replaced)
      assertBuilt(await runCli(['mesh', 'stop', '-C', dir]))
    })
  })

  it('it stops after --mesh-idle seconds without a build, and when its folder is removed', async () => {
    await withProject(copyExample(), async (dir) => {
      const r = await runCli(['build', '-C', dir, ...MESH, '--mesh-idle', '1'])
      assertBuilt(r)
      assert.match(r.stderr, /kept for 1 s after the last one/)
      const idle = await keptMeshOf(dir)
      await waitUntilGone([idle.pid, ...idle.workers], 15_000)
      await assert.rejects(readFile(join(dir, '.bldr', 'mesh', 'daemon.json')), /ENOENT/, 'it removed its account')

      await changeSource(dir, 1)
      assertBuilt(await runCli(['build', '-C', dir, ...MESH]))
      const kept = await keptMeshOf(dir)
      // As a user would, again if the mesh wrote into it meanwhile (its warm-up build may still run).
      await rm(join(dir, '.bldr'), { recursive: true, force: true, maxRetries: 5 })
      await waitUntilGone([kept.pid, ...kept.workers], 15_000)
    })
  })

  it("bldr gc stops it before collecting its workers' stores, even while it starts", async () => {
    await withProject(copyExample(), async (dir) => {
      const build = await runCli(['build', '-C', dir, ...MESH])
      assertBuilt(build)
      // At once: the mesh is still starting (it is found by the file its build wrote, and waited for).
      const pid = startedAfter(build)
      assert.ok(pid, build.stderr)
      const gc = await runCli(['gc', '-C', dir])
      assert.equal(gc.code, 0, gc.stderr)
      assert.match(gc.stdout, new RegExp(`^bldr gc: stopped the local mesh \\(pid ${pid}\\); the next distributed build starts another$`, 'm'))
      assert.ok(!isAlive(pid), 'the mesh outlived bldr gc')

      await changeSource(dir, 1)
      assertBuilt(await runCli(['build', '-C', dir, ...MESH]))
      const mesh = await keptMeshOf(dir)
      const again = await runCli(['gc', '-C', dir])
      assert.match(again.stdout, new RegExp(`^bldr gc: stopped the local mesh \\(pid ${mesh.pid}\\)`, 'm'))
      for (const p of [mesh.pid, ...mesh.workers]) assert.ok(!isAlive(p), `process ${p} outlived bldr gc`)
    })
  })

  it('two builds at once in one folder share the kept mesh, and two that both start one leave one', async () => {
    await withProject(copyExample(), async (dir) => {
      const [a, b] = await Promise.all([runCli(['build', '-C', dir, ...MESH]), runCli(['build', '-C', dir, ...MESH])])
      assertBuilt(a)
      assertBuilt(b)
      const mesh = await keptMeshOf(dir)
      const others = [startedAfter(a), startedAfter(b)].filter((p): p is number => p !== undefined && p !== mesh.pid)
      await waitUntilGone(others, 15_000)
      await changeSource(dir, 1)
      const [c, d] = await Promise.all([runCli(['build', '-C', dir, ...MESH]), runCli(['build', '-C', dir, ...MESH])])
      assertBuilt(c)
      assertBuilt(d)
      // A build whose actions the other finished first needs no mesh.
      for (const r of [c, d]) if (/local mesh:/.test(r.stderr)) assert.equal(reached(r), mesh.pid, r.stderr)
      assertBuilt(await runCli(['mesh', 'stop', '-C', dir]))
    })
  })

  it('a worker of the kept mesh killed (SIGKILL) mid-build: the others finish, and the mesh stops with the build', async () => {
    const n = 12
    await withProject(makeProject(sleepProject(n, 0.3)), async (dir) => {
      const mesh = await warmUp(dir, MESH)
      const build = await startBldr(['build', '-C', dir, ...MESH, '--stats', join(dir, 'stats.json')], /^\[2\//)
      process.kill(mesh.workers[0]!, 'SIGKILL')
      assert.equal(await build.exited, 0, build.output())
      assert.match(build.output(), new RegExp(`^bldr: local worker \\d \\(pid ${mesh.workers[0]}\\) exited with SIGKILL during the build; its actions go to the 1 other worker$`, 'm'))
      assert.match(build.output(), /^bldr: local mesh stopped: local worker \d \(pid \d+\) exited with SIGKILL during the build$/m)
      for (const p of [mesh.pid, ...mesh.workers]) assert.ok(!isAlive(p), `process ${p} of the mesh outlived the build`)
      const stats = JSON.parse(await readFile(join(dir, 'stats.json'), 'utf8')) as { executed: number; mesh: { workers: { actionsRun: number }[] } }
      assert.equal(stats.executed, n + 1)
      assert.equal(stats.mesh.workers.reduce((k, w) => k + w.actionsRun, 0), n + 1, 'one result per action')
      assert.equal((await readFile(join(dir, 'all.txt'), 'utf8')).split('\n').filter(Boolean).length, 2 * n)
    })
  })

  it('SIGINT to a build on the kept mesh stops the mesh (exit 130); a build killed (SIGKILL) stops it too', async () => {
    await withProject(makeProject(sleepProject(12, 0.5)), async (dir) => {
      let mesh = await warmUp(dir, MESH)
      const interrupted = await startBldr(['build', '-C', dir, ...MESH], /^\[2\//)
      interrupted.proc.kill('SIGINT')
      assert.equal(await interrupted.exited, 130, interrupted.output())
      assert.match(interrupted.output(), /^bldr: local mesh stopped: a build was interrupted \(its actions end with the workers\)$/m)
      for (const p of [mesh.pid, ...mesh.workers]) assert.ok(!isAlive(p), `process ${p} of the mesh is still running`)

      await rm(join(dir, 'warm.txt'))
      await rm(join(dir, '.bldr'), { recursive: true, force: true })
      mesh = await warmUp(dir, MESH)
      const killed = await startBldr(['build', '-C', dir, ...MESH], /^\[2\//)
      assert.deepEqual(await childPids(killed.proc.pid!), [], 'the build runs on the kept mesh, not its own')
      killed.proc.kill('SIGKILL')
      await killed.exited
      await waitUntilGone([mesh.pid, ...mesh.workers], 15_000)
    })
  })

  it("runs a build for a thin client in its own process: in the client's folder and environment, with its output and exit status", async () => {
    const project = {
      ...sleepProject(2, 0),
      'BUILD.yaml': `${sleepProject(2, 0)['BUILD.yaml']}  bad:\n    command: [sh, -c, "echo oops >&2; exit 3"]\n    outputs: [bad.txt]\n`,
    }
    await withProject(makeProject(project), async (dir) => {
      const mesh = await warmUp(dir, MESH)
      // -C and --stats are the client's: relative to its folder.
      const r = await runCli(['build', 'all', ...MESH, '--stats', 'hosted-stats.json'], { cwd: dir })
      assertBuilt(r)
      assert.equal(reached(r), mesh.pid, r.stderr)
      assert.match(r.stderr, /, which runs this build$/m)
      // The mesh ran a build of its own once ready (src/build/warm-up.ts): an action per slot and their join, run, not cached; this build waited for it.
      assert.match(await readFile(daemonFiles(join(dir, '.bldr', 'mesh')).log, 'utf8'), /"actions":3,"ms":\d+,"msg":"warm-up build done"/)
      assert.match(r.stdout, /^bldr: built 4 actions in [\d.]+ s: 3 executed, 1 cached, 0 failed/m)
      const hostedStats = JSON.parse(await readFile(join(dir, 'hosted-stats.json'), 'utf8')) as { executed: number; mesh: { workers: { executed?: number }[] } }
      assert.equal(hostedStats.executed, 3)
      // The workers' counters are this build's: read as it opened (the mesh had run its warm-up and a build before) and as it ended.
      assert.equal(hostedStats.mesh.workers.reduce((k, w) => k + (w.executed ?? 0), 0), 3, JSON.stringify(hostedStats.mesh.workers))
      assert.equal((await readFile(join(dir, 'all.txt'), 'utf8')).split('\n').filter(Boolean).length, 4)

      const failed = await runCli(['build', '-C', dir, 'bad', ...MESH])
      assert.equal(failed.code, 1, failed.stderr)
      assert.match(failed.stdout, /^FAILED: bad: /m)
      assert.match(failed.stdout, /^ {2}oops$/m)
      const unknown = await runCli(['build', '-C', dir, 'no-such-target', ...MESH])
      assert.equal(unknown.code, 2)
      assert.match(unknown.stderr, /^bldr: unknown target "no-such-target"/m)
      assert.deepEqual(await keptMeshOf(dir), mesh, 'a failed build and a bad target leave it running')
      // A malformed request is declined, and the mesh stays up.
      const socket = createConnection(daemonFiles(join(dir, '.bldr', 'mesh')).socket)
      socket.end(`${JSON.stringify({ op: 'build', argv: 5, cwd: dir })}\n`)
      let reply = ''
      for await (const chunk of socket) reply += String(chunk)
      assert.match(reply, /^\{"op":"declined","why":"malformed build request: argv must be a list of strings"\}\n$/)
      assert.ok(isAlive(mesh.pid))

      // The client's environment: BLDR_MESH_IDLE sets how long the mesh stays after this build.
      await appendFile(join(dir, 'BUILD.yaml'), '  extra:\n    command: [sh, -c, "echo x > extra.txt"]\n    outputs: [extra.txt]\n')
      const brief = await runCli(['build', '-C', dir, 'extra', ...MESH], { env: { BLDR_MESH_IDLE: '1' } })
      assertBuilt(brief)
      assert.equal(reached(brief), mesh.pid, brief.stderr)
      await waitUntilGone([mesh.pid, ...mesh.workers], 15_000)
    })
  })

  it('the native thin client runs a hosted build (the client starts no node), reads -C and -f as the Node one, and leaves the rest to it', async () => {
    await withProject(makeProject(sleepProject(2, 0.6)), async (dir) => {
      const mesh = await warmUp(dir, MESH)
      const added = async (name: string): Promise<void> => appendFile(join(dir, 'BUILD.yaml'), `  ${name}:\n    command: [sh, -c, "sleep 0.6; echo ${name} > ${name}.txt"]\n    outputs: [${name}.txt]\n`)
      // Options in each form parseArgs reads: the build is this folder's, hosted by its mesh.
      const hosted = await startBldr(['build', `--directory=${dir}`, '-fBUILD.yaml', '-j', '2', '--distributed', '--local-workers=2'], /, which runs this build$/)
      assert.match(await readlink(`/proc/${hosted.proc.pid}/exe`), /\/dist\/src\/cli\/bldr-thin-client$/)
      assert.equal(await hosted.exited, 0, hosted.output())
      assert.match(hosted.output(), /, which runs this build$/m)
      assert.match(hosted.output(), /^bldr: built 4 actions in [\d.]+ s: 3 executed, 1 cached, 0 failed/m)
      await added('one')
      const relative = await runCli(['build', 'one', '-C', '.', '-f', './BUILD.yaml', ...MESH], { cwd: dir })
      assertBuilt(relative)
      assert.equal(reached(relative), mesh.pid, relative.stderr)
      assert.match(relative.stderr, /, which runs this build$/m)
      // Declined (other settings): the Node client builds, and replaces the mesh.
      await added('two')
      const other = await runCli(['build', '-C', dir, 'two', '--distributed', '--local-workers', '1', '-j', '2'])
      assertBuilt(other)
      assert.equal(reached(other), undefined, other.stderr)
      assert.ok(startedAfter(other), other.stderr)
      assertBuilt(await runCli(['mesh', 'stop', '-C', dir]))
      // What it does not read itself goes to the Node client: help, and a usage error said as that one says it.
      assert.match((await runCli(['build', '--distributed', '--help'])).stdout, /^Usage: bldr build /)
      const bad = await runCli(['build', '-C', dir, '--distributed', '--no-such-flag'])
      assert.equal(bad.code, 2)
      assert.match(bad.stderr, /^bldr: build: unknown option --no-such-flag/m)
    })
    // A folder whose socket path is too long for it (named by a hash in TMPDIR): the Node client asks that mesh.
    await withProject(makeProject({}), async (root) => {
      const dir = join(root, 'a-folder-name-long-enough-that-the-socket-path-passes-one-hundred-bytes')
      await mkdir(dir)
      for (const [name, text] of Object.entries(sleepProject(2, 0))) await writeFile(join(dir, name), text)
      const mesh = await warmUp(dir, MESH)
      await appendFile(join(dir, 'BUILD.yaml'), '  three:\n    command: [sh, -c, "echo 3 > three.txt"]\n    outputs: [three.txt]\n')
      const r = await runCli(['build', '-C', dir, 'three', ...MESH])
      assertBuilt(r)
      assert.equal(reached(r), mesh.pid, r.stderr)
      assert.match(r.stderr, /, which runs this build$/m)
      assertBuilt(await runCli(['mesh', 'stop', '-C', dir]))
    })
  })

  it('bldr mesh stop during a build it runs: the build ends with the reason once the workers are gone, not waiting for results that never come', async () => {
    await withProject(makeProject(sleepProject(2, 60)), async (dir) => {
      const mesh = await warmUp(dir, MESH)
      const build = await startBldr(['build', '-C', dir, ...MESH], /, which runs this build$/)
      await delay(300) // its actions run (for 60 s): the workers' grace time (10 s) ends them
      assert.match((await runCli(['mesh', 'stop', '-C', dir])).stdout, new RegExp(`^bldr mesh: stopped the local mesh \\(pid ${mesh.pid}\\)$`, 'm'))
      assert.equal(await build.exited, 1, build.output())
      assert.match(build.output(), /^bldr: the local mesh stopped \(asked to stop\); no local worker is left to finish the build$/m)
      assert.doesNotMatch(build.output(), /^\{"level"/m, 'no log line of the mesh gone as well: the error above says it')
      for (const p of [mesh.pid, ...mesh.workers]) assert.ok(!isAlive(p), `process ${p} outlived bldr mesh stop`)
    })
  })

  it('a build whose hosting mesh is killed mid-build finishes in its own process', async () => {
    await withProject(makeProject(sleepProject(8, 0.4)), async (dir) => {
      const mesh = await warmUp(dir, MESH)
      const build = await startBldr(['build', '-C', dir, ...MESH], /^\[2\//)
      process.kill(mesh.pid, 'SIGKILL')
      assert.equal(await build.exited, 0, build.output())
      assert.match(build.output(), /^bldr: the local mesh running this build ended before it \(see .*daemon\.log\); this process builds what is left$/m)
      assert.match(build.output(), /^bldr: built 10 actions in /m)
      assert.equal((await readFile(join(dir, 'all.txt'), 'utf8')).split('\n').filter(Boolean).length, 16)
      await waitUntilGone(mesh.workers, 15_000)
    })
  })

  it('rejects --mesh-idle without --distributed or with --coordinator, and a bad BLDR_MESH_IDLE', async () => {
    await withProject(copyExample(), async (dir) => {
      const a = await runCli(['build', '-C', dir, '--mesh-idle', '5'])
      assert.equal(a.code, 2)
      assert.equal(a.stderr.trim(), 'bldr: --mesh-idle needs --distributed')
      const b = await runCli(['build', '-C', dir, '--coordinator', '/ip4/127.0.0.1/tcp/1', '--mesh-idle', '5'])
      assert.equal(b.code, 2)
      assert.equal(b.stderr.trim(), 'bldr: --mesh-idle applies to the local mesh; it cannot be used with --coordinator')
      const c = await runCli(['build', '-C', dir, '--distributed', '--mesh-idle=-1'])
      assert.equal(c.code, 2)
      assert.equal(c.stderr.trim(), 'bldr: invalid --mesh-idle: must be an integer >= 0 (got "-1")')
      const d = await runCli(['build', '-C', dir, '--distributed'], { env: { BLDR_MESH_IDLE: '10m' } })
      assert.equal(d.code, 2)
      assert.equal(d.stderr.trim(), 'bldr: invalid BLDR_MESH_IDLE: must be an integer >= 0 (seconds; got "10m")')
      const e = await runCli(['mesh', 'restart', '-C', dir])
      assert.equal(e.code, 2)
      assert.match(e.stderr, /unknown command "restart" \(status or stop\)/)
      const f = await runCli(['mesh'])
      assert.equal(f.code, 2)
      assert.equal(f.stderr.trim(), 'bldr: bldr mesh: a command is needed (status or stop); see bldr mesh --help')
      const help = await runCli(['mesh', '--help'])
      assert.equal(help.code, 0)
      assert.match(help.stdout, /^Usage: bldr mesh <status\|stop> \[options\]/)
    })
  })
})
