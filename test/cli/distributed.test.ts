/**
 * `bldr build --distributed` and `--coordinator` end to end: separate worker
 * processes over real libp2p TCP, each with its own store; outputs compared
 * byte for byte with a local build; every action counted.
 */
import assert from 'node:assert/strict'
import { execFileSync, type ChildProcess } from 'node:child_process'
import { appendFile, mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { isAlive } from '../../src/cas/fs-util.js'
import { childPids, copyExample, makeProject, runCli, snapshotFiles, startBldr, terminate, waitForLine, withProject, type CliResult } from '../helpers.js'

interface MeshStats {
  executed: number
  total: number
  mesh: {
    seedPolicy: string
    seedWindow: number | 'auto' | null
    meshStart: 'build start' | 'first action' | null
    workers: { id: string; actionsRun: number; executed?: number; steals?: { attempted: number; granted: number; actionsStolen: number }; startRoundTripMs?: { p50: number | null; p99: number | null; n: number }; fetched?: { blobs: number; bytes: number } }[]
  }
}

/** `n` independent actions that each sleep `sleepS` and write a line, and one that joins their outputs. */
function sleepProject(n: number, sleepS: number): Record<string, string> {
  const lines = ['actions:']
  for (let i = 0; i < n; i++) {
    lines.push(`  a${i}:`, `    command: [sh, -c, "sleep ${sleepS}; echo action ${i} > out/a${i}.txt"]`, `    outputs: [out/a${i}.txt]`)
  }
  lines.push('  all:', `    command: [sh, -c, "cat ${Array.from({ length: n }, (_, i) => `out/a${i}.txt`).join(' ')} > all.txt"]`)
  lines.push(`    inputs: [${Array.from({ length: n }, (_, i) => `out/a${i}.txt`).join(', ')}]`, '    outputs: [all.txt]')
  return { 'BUILD.yaml': `${lines.join('\n')}\n` }
}

function expectedJoin(n: number): string {
  return Array.from({ length: n }, (_, i) => `action ${i}\n`).join('')
}

async function readStats(path: string): Promise<MeshStats> {
  return JSON.parse(await readFile(path, 'utf8')) as MeshStats
}

function sum(ws: MeshStats['mesh']['workers'], f: (w: MeshStats['mesh']['workers'][number]) => number): number {
  return ws.reduce((a, w) => a + f(w), 0)
}

function assertBuilt(r: CliResult): void {
  assert.equal(r.code, 0, `bldr failed:\n${r.stdout}\n${r.stderr}`)
}

/** Every action ran exactly once, on some worker, and every worker counted what it ran. */
function assertExactlyOnce(stats: MeshStats, total: number): void {
  assert.equal(stats.total, total)
  assert.equal(stats.executed, total, 'every action executed (none cached, none lost)')
  assert.equal(sum(stats.mesh.workers, (w) => w.actionsRun), total, 'the client received one result per action')
  assert.equal(sum(stats.mesh.workers, (w) => w.executed ?? 0), total, 'the workers ran each action once between them')
}

describe('bldr build --distributed (worker processes, real libp2p)', { timeout: 180_000 }, () => {
  it('builds the example on 3 local workers with outputs byte-identical to a local build', async () => {
    await withProject(copyExample(), async (meshDir) =>
      withProject(copyExample(), async (localDir) => {
        const statsFile = join(meshDir, 'stats.json')
        const mesh = await runCli(['build', '-C', meshDir, '--distributed', '--local-workers', '3', '-j', '3', '--stats', statsFile])
        assertBuilt(mesh)
        assert.match(mesh.stderr, /local mesh: 3 worker processes/)
        assertBuilt(await runCli(['build', '-C', localDir]))
        const [a, b] = await Promise.all([snapshotFiles(meshDir, 'bldr-out'), snapshotFiles(localDir, 'bldr-out')])
        assert.ok(a.size >= 3, `outputs: ${[...a.keys()].join(', ')}`)
        assert.deepEqual([...a.keys()].sort(), [...b.keys()].sort())
        for (const [path, bytes] of a) assert.ok(bytes.equals(b.get(path)!), `${path} differs from the local build`)
        const stats = await readStats(statsFile)
        assert.equal(stats.mesh.workers.length, 3)
        assert.equal(stats.mesh.seedWindow, 'auto', 'seeded with the default window')
        assert.match(mesh.stderr, /seeding least-loaded \(window auto\)/)
        assertExactlyOnce(stats, 15)
        // A second distributed build finds everything in the action cache.
        const again = await runCli(['build', '-C', meshDir, '--distributed', '--local-workers', '2'])
        assertBuilt(again)
        assert.match(again.stdout, /0 executed, 15 cached/)
        assert.doesNotMatch(again.stderr, /local mesh/, 'nothing to run, so no mesh was started')
      }),
    )
  })

  it("splits -j's slots among the local workers, so the mesh runs at most -j actions at once; more workers than -j is refused", async () => {
    await withProject(copyExample(), async (dir) => {
      const statsFile = join(dir, 'stats.json')
      const r = await runCli(['build', '-C', dir, '--distributed', '--local-workers', '2', '-j', '3', '--stats', statsFile])
      assertBuilt(r)
      assert.match(r.stderr, /local mesh: 2 worker processes \(2 \+ 1 slots\)/)
      assertExactlyOnce(await readStats(statsFile), 15)
      const tooMany = await runCli(['build', '-C', dir, '--distributed', '--local-workers', '3', '-j', '2'])
      assert.equal(tooMany.code, 2)
      assert.equal(tooMany.stderr.trim(), 'bldr: invalid --local-workers: must be at most -j (2), each worker needs a slot (got 3)')
    })
  })

  it('the local workers keep their stores under .bldr/mesh: after one source changes, the next build fetches only that file', async () => {
    await withProject(copyExample(), async (dir) => {
      const fetched = (s: MeshStats): number => sum(s.mesh.workers, (w) => w.fetched?.blobs ?? 0)
      const first = join(dir, 'first.json')
      assertBuilt(await runCli(['build', '-C', dir, '--distributed', '--local-workers', '1', '--stats', first]))
      const cold = await readStats(first)
      assert.ok(fetched(cold) >= 11, 'a new worker fetches every source it compiles')
      assert.equal(cold.mesh.meshStart, 'build start', 'nothing was cached: the mesh started with the build, not at its first action')
      // A change that alters the object, so the archive, the link and the self-test run again too.
      await appendFile(join(dir, 'src/lib/vars.c'), '\nint calc_extra_symbol(void);\nint calc_extra_symbol(void) { return 1; }\n')
      const second = join(dir, 'second.json')
      assertBuilt(await runCli(['build', '-C', dir, '--distributed', '--local-workers', '1', '--stats', second]))
      const stats = await readStats(second)
      assert.equal(stats.executed, 4, 'the compile, the archive, the link and the self-test')
      assert.equal(fetched(stats), 1, 'only the changed source was fetched: the worker still held the other objects and headers')
      assert.equal(stats.mesh.meshStart, 'first action', 'with a cache, the mesh waits until an action must run')
    })
  })

  it('--sandbox docker: the local workers run every action in containers, outputs identical to local, no container left', async () => {
    await withProject(copyExample(), async (meshDir) =>
      withProject(copyExample(), async (localDir) => {
        const statsFile = join(meshDir, 'stats.json')
        const mesh = await runCli(['build', '-C', meshDir, '--distributed', '--local-workers', '2', '--sandbox', 'docker', '--stats', statsFile])
        assertBuilt(mesh)
        assert.match(mesh.stderr, /sandbox docker: each action in a container/)
        assertBuilt(await runCli(['build', '-C', localDir]))
        const [a, b] = await Promise.all([snapshotFiles(meshDir, 'bldr-out'), snapshotFiles(localDir, 'bldr-out')])
        assert.deepEqual([...a.keys()].sort(), [...b.keys()].sort())
        for (const [path, bytes] of a) assert.ok(bytes.equals(b.get(path)!), `${path} differs from the local build`)
        const stats = await readStats(statsFile)
        assert.equal((stats as unknown as { sandbox: string }).sandbox, 'docker')
        assertExactlyOnce(stats, 15)
        // The workers removed their containers when they left: no container of a bldr process that is gone
        // (other test files' containers, of live processes, may exist meanwhile).
        const owners = execFileSync('docker', ['ps', '-a', '--filter', 'label=dev.bldr.sandbox', '--format', '{{.Label "dev.bldr.owner"}}'], { encoding: 'utf8' })
        const orphans = owners.split('\n').filter(Boolean).filter((o) => !isAlive(Number(o.split(':')[1])))
        assert.deepEqual(orphans, [], 'containers left behind by workers that are gone')
      }),
    )
  })

  it('--seed-policy single: the other workers steal, and each action runs exactly once', async () => {
    const n = 30
    await withProject(makeProject(sleepProject(n, 0.15)), async (dir) => {
      const statsFile = join(dir, 'stats.json')
      assertBuilt(await runCli(['build', '-C', dir, '--distributed', '--local-workers', '3', '-j', '3', '--seed-policy', 'single', '--seed-window', 'none', '--stats', statsFile]))
      assert.equal(await readFile(join(dir, 'all.txt'), 'utf8'), expectedJoin(n))
      const stats = await readStats(statsFile)
      assert.equal(stats.mesh.seedPolicy, 'single')
      assert.equal(stats.mesh.seedWindow, null, 'single seeds without a window')
      assertExactlyOnce(stats, n + 1)
      const ran = stats.mesh.workers.map((w) => w.actionsRun)
      assert.ok(ran.filter((r) => r > 0).length >= 2, `work spread by stealing: ${JSON.stringify(ran)}`)
      assert.ok(sum(stats.mesh.workers, (w) => w.steals?.actionsStolen ?? 0) > 0, 'actions were stolen')
      // Every worker that ran something waited for the coordinator's clearance first, and says how long.
      for (const w of stats.mesh.workers.filter((x) => x.actionsRun > 0)) {
        const rt = w.startRoundTripMs
        assert.ok(rt && rt.n >= 1 && rt.n <= w.actionsRun && rt.p50 !== null && rt.p50 > 0 && rt.p99! >= rt.p50, `start round trips of ${w.id}: ${JSON.stringify(rt)}`)
      }
    })
  })

  for (const strategy of ['random', 'least-loaded', 'most-loaded', 'power-of-two', 'adaptive']) {
    it(`strategy ${strategy}: a build seeded on one worker completes, with steals`, async () => {
      const n = 16
      await withProject(makeProject(sleepProject(n, 0.1)), async (dir) => {
        const statsFile = join(dir, 'stats.json')
        const r = await runCli(['build', '-C', dir, '--distributed', '--local-workers', '3', '-j', '3', '--seed-policy', 'single', '--strategy', strategy, '--stats', statsFile])
        assertBuilt(r)
        assert.match(r.stderr, new RegExp(`strategy ${strategy}`))
        assert.equal(await readFile(join(dir, 'all.txt'), 'utf8'), expectedJoin(n))
        const stats = await readStats(statsFile)
        assertExactlyOnce(stats, n + 1)
        assert.ok(sum(stats.mesh.workers, (w) => w.steals?.granted ?? 0) > 0, `${strategy} stole nothing: ${JSON.stringify(stats.mesh.workers)}`)
      })
    })
  }

})

// Two suites, each bounded: together their 16 multi-process builds took 170–175 s on a 2-core machine, at one 180 s bound.
describe('bldr build --distributed under faults, and its flags (worker processes, real libp2p)', { timeout: 180_000 }, () => {
  it('with every load announcement dropped, a build still completes (gossip is only a hint)', async () => {
    const n = 12
    await withProject(makeProject(sleepProject(n, 0.05)), async (dir) => {
      const statsFile = join(dir, 'stats.json')
      const r = await runCli(['build', '-C', dir, '--distributed', '--local-workers', '3', '-j', '3', '--seed-policy', 'single', '--stats', statsFile], {
        env: { BLDR_FAULT_DROP_GOSSIP: '1' },
      })
      assertBuilt(r)
      assert.equal(await readFile(join(dir, 'all.txt'), 'utf8'), expectedJoin(n))
      const stats = await readStats(statsFile)
      assertExactlyOnce(stats, n + 1)
      // Nobody heard of a loaded peer, so nobody stole: the seeded worker did it all.
      assert.equal(sum(stats.mesh.workers, (w) => w.steals?.attempted ?? 0), 0)
      assert.deepEqual(
        stats.mesh.workers.map((w) => w.actionsRun).sort((a, b) => b - a),
        [n + 1, 0, 0],
      )
    })
  })

  it('half the announcements dropped: stealing still spreads the work', async () => {
    const n = 24
    await withProject(makeProject(sleepProject(n, 0.15)), async (dir) => {
      const statsFile = join(dir, 'stats.json')
      assertBuilt(await runCli(['build', '-C', dir, '--distributed', '--local-workers', '3', '-j', '3', '--seed-policy', 'single', '--stats', statsFile], { env: { BLDR_FAULT_DROP_GOSSIP: '0.5' } }))
      const stats = await readStats(statsFile)
      assertExactlyOnce(stats, n + 1)
      assert.ok(sum(stats.mesh.workers, (w) => w.steals?.actionsStolen ?? 0) > 0)
    })
  })

  it('an action whose worker could not run it (an infrastructure failure) is tried again, and the build succeeds', async () => {
    const n = 12
    await withProject(makeProject(sleepProject(n, 0.05)), async (dir) => {
      const statsFile = join(dir, 'stats.json')
      // Every third action a worker is given fails as if its sandbox did not start (first attempts only).
      const r = await runCli(['build', '-C', dir, '--distributed', '--local-workers', '2', '--stats', statsFile], { env: { BLDR_FAULT_FAIL_EVERY: '3' } })
      assertBuilt(r)
      assert.equal(await readFile(join(dir, 'all.txt'), 'utf8'), expectedJoin(n))
      const retries = r.stderr.split('\n').filter((l) => /^bldr: \S+: worker \S+ could not run \S+: injected fault .*; trying again \(attempt 2 of 3\)$/.test(l))
      assert.ok(retries.length >= 2, `retries reported: ${retries.length}\n${r.stderr}`)
      const stats = await readStats(statsFile)
      assert.equal(stats.executed, n + 1)
      assert.equal(sum(stats.mesh.workers, (w) => w.actionsRun), n + 1, 'one result used per action')
    })
  })

  it('a local worker frozen (SIGSTOP) mid-build is declared lost after the heartbeat timeout; the others finish the build', async () => {
    const n = 20
    await withProject(makeProject(sleepProject(n, 0.3)), async (dir) => {
      const statsFile = join(dir, 'stats.json')
      const build = await startBldr(['build', '-C', dir, '--distributed', '--local-workers', '3', '-j', '3', '--stats', statsFile, '--log-level', 'warn'], /^\[1\//)
      const workers = await childPids(build.proc.pid!)
      assert.equal(workers.length, 3)
      process.kill(workers[0]!, 'SIGSTOP')
      const t0 = performance.now()
      try {
        // The build finishes while the worker is still frozen: its actions were taken from it.
        await waitForLine(build, /^bldr: built \d+ actions/, 60_000)
        const detectedMs = performance.now() - t0
        assert.match(build.output(), /"msg":"worker lost; its actions are seeded elsewhere"/)
        assert.ok(detectedMs < 40_000, `took ${detectedMs} ms`)
      } finally {
        // Stopping the mesh kills a worker that is still stopped (it cannot leave): it may be gone already.
        try {
          process.kill(workers[0]!, 'SIGCONT')
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err
        }
      }
      assert.equal(await build.exited, 0, build.output())
      assert.ok(!isAlive(workers[0]!), 'the frozen worker does not outlive the build')
      assert.equal(await readFile(join(dir, 'all.txt'), 'utf8'), expectedJoin(n))
      const stats = await readStats(statsFile)
      assert.equal(stats.executed, n + 1)
      assert.equal(sum(stats.mesh.workers, (w) => w.actionsRun), n + 1, 'one result used per action')
    })
  })

  it('a local worker killed (SIGKILL) mid-build: the others finish the build, each action recorded once, no process left behind', async () => {
    const n = 20
    await withProject(makeProject(sleepProject(n, 0.3)), async (dir) => {
      const statsFile = join(dir, 'stats.json')
      // Once the first action is done, kill one of the three workers.
      const build = await startBldr(['build', '-C', dir, '--distributed', '--local-workers', '3', '-j', '3', '--stats', statsFile], /^\[1\//)
      const pid = build.proc.pid!
      const workers = await childPids(pid)
      assert.equal(workers.length, 3, `the build's worker processes: ${workers.join(', ')}`)
      process.kill(workers[0]!, 'SIGKILL')
      assert.equal(await build.exited, 0, build.output())
      assert.match(build.output(), new RegExp(`bldr: local worker \\d \\(pid ${workers[0]}\\) exited with SIGKILL during the build; its actions go to the 2 other workers`))
      assert.equal(await readFile(join(dir, 'all.txt'), 'utf8'), expectedJoin(n))
      const stats = await readStats(statsFile)
      assert.equal(stats.executed, n + 1)
      // The lost worker sent no stats; the others ran everything else, each action once.
      assert.equal(sum(stats.mesh.workers, (w) => w.actionsRun), n + 1, 'one result per action')
      assert.deepEqual(await childPids(pid), [])
      for (const w of workers.slice(1)) assert.throws(() => process.kill(w, 0), /ESRCH/, 'the other workers were stopped')
    })
  })

  it('SIGINT to bldr build stops the local mesh cleanly: exit 130, no worker process and no container left', async () => {
    await withProject(makeProject(sleepProject(12, 0.5)), async (dir) => {
      const build = await startBldr(['build', '-C', dir, '--distributed', '--local-workers', '2', '--sandbox', 'docker'], /^\[2\//, 60_000)
      const workers = await childPids(build.proc.pid!)
      assert.equal(workers.length, 2)
      // Only bldr gets the signal (a terminal's Ctrl-C would reach the workers too).
      build.proc.kill('SIGINT')
      assert.equal(await build.exited, 130, build.output())
      for (const w of workers) assert.ok(!isAlive(w), `worker ${w} is still running`)
      const owners = execFileSync('docker', ['ps', '-a', '--filter', 'label=dev.bldr.sandbox', '--format', '{{.Label "dev.bldr.owner"}}'], { encoding: 'utf8' })
      const left = owners.split('\n').filter(Boolean).filter((o) => workers.includes(Number(o.split(':')[1])))
      assert.deepEqual(left, [], 'containers of the stopped workers')
    })
  })

  it('rejects mesh flags without --distributed, --local-workers with --coordinator, and says when the coordinator is unreachable', async () => {
    await withProject(copyExample(), async (dir) => {
      const a = await runCli(['build', '-C', dir, '--seed-policy', 'single'])
      assert.equal(a.code, 2)
      assert.match(a.stderr, /--seed-policy needs --distributed or --coordinator/)
      const b = await runCli(['build', '-C', dir, '--coordinator', '/ip4/127.0.0.1/tcp/1', '--local-workers', '2'])
      assert.equal(b.code, 2)
      assert.match(b.stderr, /--local-workers applies to the local mesh/)
      const down = await runCli(['build', '-C', dir, '--coordinator', '/ip4/127.0.0.1/tcp/1'])
      assert.equal(down.code, 1)
      assert.match(down.stderr, /^bldr: cannot reach the coordinator at \/ip4\/127\.0\.0\.1\/tcp\/1: .*ECONNREFUSED/m)
      assert.doesNotMatch(down.stdout, /FAILED/, 'one error for the build, not one per action')
      const hb = await runCli(['build', '-C', dir, '--worker-timeout', '3000'])
      assert.equal(hb.code, 2)
      assert.match(hb.stderr, /--worker-timeout needs --distributed/)
      const hbc = await runCli(['build', '-C', dir, '--coordinator', '/ip4/127.0.0.1/tcp/1', '--heartbeat-interval', '500'])
      assert.equal(hbc.code, 2)
      assert.match(hbc.stderr, /--heartbeat-interval applies to the local mesh; it cannot be used with --coordinator/)
      const bad = await runCli(['build', '-C', dir, '--distributed', '--worker-timeout', '5s'])
      assert.equal(bad.code, 2)
      assert.match(bad.stderr, /invalid --worker-timeout: must be an integer >= 100 \(got "5s"\)/)
      const w = await runCli(['build', '-C', dir, '--seed-window', '0'])
      assert.equal(w.code, 2)
      assert.match(w.stderr, /--seed-window needs --distributed or --coordinator/)
      const wn = await runCli(['build', '-C', dir, '--distributed', '--seed-window=-1'])
      assert.equal(wn.code, 2)
      assert.match(wn.stderr, /invalid --seed-window: must be an integer >= 0, auto or none \(got "-1"\)/)
      const wx = await runCli(['build', '-C', dir, '--distributed', '--seed-window', 'nope'])
      assert.equal(wx.code, 2)
      assert.match(wx.stderr, /invalid --seed-window: must be an integer >= 0, auto or none \(got "nope"\)/)
      const ws = await runCli(['build', '-C', dir, '--distributed', '--seed-policy', 'single', '--seed-window', '1'])
      assert.equal(ws.code, 2)
      assert.match(ws.stderr, /--seed-window: a seed window cannot be combined with seed policy single/)
      const c = await runCli(['build', '-C', dir, '--distributed', '--seed-policy', 'singel'])
      assert.equal(c.code, 2)
      assert.match(c.stderr, /invalid --seed-policy: must be one of round-robin, least-loaded, single \(got "singel"\) \(did you mean "single"\?\)/)
    })
  })
})

describe('bldr coordinator, bldr worker, bldr build --coordinator (separate processes)', { timeout: 120_000 }, () => {
  it('builds on a standing mesh; a worker leaving mid-build hands its queue back and nothing is lost', async () => {
    const data = await mkdtemp(join(tmpdir(), 'bldr-standing-mesh-'))
    const procs: ChildProcess[] = []
    try {
      const coord = await startBldr(['coordinator', '--listen', '/ip4/127.0.0.1/tcp/0', '--data-dir', join(data, 'coordinator'), '--log-level', 'warn'], /^(\/ip4\/127\.0\.0\.1\/tcp\/\d+\/p2p\/\S+)$/)
      procs.push(coord.proc)
      const addr = coord.match[1]!
      const workers: ChildProcess[] = []
      for (let w = 0; w < 3; w++) {
        const worker = await startBldr(
          ['worker', '--coordinator', addr, '--listen', '/ip4/127.0.0.1/tcp/0', '--data-dir', join(data, `worker-${w}`), '--parallelism', '1', '--seed', String(w + 1), '--sandbox', 'local', '--log-level', 'info'],
          /"msg":"worker ready"/,
        )
        procs.push(worker.proc)
        workers.push(worker.proc)
      }

      // The example, on the standing mesh: identical to a local build.
      await withProject(copyExample(), async (meshDir) =>
        withProject(copyExample(), async (localDir) => {
          const r = await runCli(['build', '-C', meshDir, '--coordinator', addr])
          assertBuilt(r)
          assert.match(r.stderr, /mesh at .*: 3 workers/)
          assertBuilt(await runCli(['build', '-C', localDir]))
          const [a, b] = await Promise.all([snapshotFiles(meshDir, 'bldr-out'), snapshotFiles(localDir, 'bldr-out')])
          assert.deepEqual([...a.keys()].sort(), [...b.keys()].sort())
          for (const [path, bytes] of a) assert.ok(bytes.equals(b.get(path)!), `${path} differs from the local build`)
        }),
      )

      // Heterogeneous workers: a build that needs bwrap is refused at once while no worker offers it…
      await withProject(makeProject(sleepProject(4, 0)), async (dir) => {
        const t0 = performance.now()
        const refused = await runCli(['build', '-C', dir, '--coordinator', addr, '--sandbox', 'bwrap'])
        assert.equal(refused.code, 1)
        assert.match(refused.stderr, /^bldr: the coordinator at .* refused the build: no worker in this mesh offers sandbox bwrap on [a-z0-9_]+-[a-z0-9_]+ \(the mesh has local on [a-z0-9_]+-[a-z0-9_]+ \(3 workers\)\)$/m)
        assert.ok(performance.now() - t0 < 15_000, 'it failed fast')
        // …and once a worker with bwrap joins, every action goes to it and to nobody else (no seeding, no stealing elsewhere).
        // Without --sandbox it offers every backend that works here (.ci/run installs bubblewrap and starts dockerd).
        const bw = await startBldr(
          ['worker', '--coordinator', addr, '--listen', '/ip4/127.0.0.1/tcp/0', '--data-dir', join(data, 'worker-bwrap'), '--parallelism', '1', '--log-level', 'info'],
          /"msg":"offering sandboxes ([a-z, ]+)"/,
        )
        procs.push(bw.proc) // before any assertion, so a failure still ends it
        assert.equal(bw.match[1], 'docker, bwrap, local')
        const statsFile = join(dir, 'stats.json')
        const ok = await runCli(['build', '-C', dir, '--coordinator', addr, '--sandbox', 'bwrap', '--stats', statsFile])
        assertBuilt(ok)
        const stats = await readStats(statsFile)
        const ran = stats.mesh.workers.filter((w) => w.actionsRun > 0)
        assert.equal(ran.length, 1, JSON.stringify(stats.mesh.workers))
        assert.equal(ran[0]!.actionsRun, 5)
      })
      // The only worker that can run a build is killed mid-build: the build stops with one clear line, it does not wait for ever.
      await withProject(makeProject(sleepProject(12, 0.3)), async (dir) => {
        const build = await startBldr(['build', '-C', dir, '--coordinator', addr, '--sandbox', 'bwrap'], /^\[1\//)
        const bwProc = procs[procs.length - 1]!
        bwProc.kill('SIGKILL')
        const t0 = performance.now()
        assert.equal(await build.exited, 1, build.output())
        assert.ok(performance.now() - t0 < 20_000, 'it stopped soon after the loss')
        assert.match(build.output(), /^bldr: the mesh can no longer run this build: worker \S+ was lost and no worker in this mesh offers sandbox bwrap on \S+ \(the mesh has local on \S+ \(3 workers\)\)$/m)
      })

      // A worker leaves while a build runs.
      const n = 24
      await withProject(makeProject(sleepProject(n, 0.2)), async (dir) => {
        const statsFile = join(dir, 'stats.json')
        // After the third action finishes, stop worker 0.
        const build = await startBldr(['build', '-C', dir, '--coordinator', addr, '--stats', statsFile], /^\[3\//)
        assert.equal(await terminate(workers[0]!), 0, 'the worker left cleanly')
        assert.equal(await build.exited, 0, build.output())
        assert.equal(await readFile(join(dir, 'all.txt'), 'utf8'), expectedJoin(n))
        const stats = await readStats(statsFile)
        assert.equal(stats.executed, n + 1)
        assert.equal(sum(stats.mesh.workers, (w) => w.actionsRun), n + 1, 'one result per action')
        assert.equal(stats.mesh.workers.filter((w) => w.executed === undefined).length, 1, 'the worker that left sent no stats at the end')
      })
    } finally {
      await Promise.all(procs.map(terminate))
      await rm(data, { recursive: true, force: true })
    }
  })

  it('bldr worker without --coordinator is a usage error; --help lists the options', async () => {
    const r = await runCli(['worker'])
    assert.equal(r.code, 2)
    assert.match(r.stderr, /bldr worker: --coordinator is required/)
    const help = await runCli(['worker', '--help'])
    assert.equal(help.code, 0)
    for (const flag of ['--coordinator', '--parallelism', '--strategy', '--data-dir', '--max-store', '--listen']) assert.match(help.stdout, new RegExp(flag))
    const size = await runCli(['worker', '--coordinator', '/ip4/127.0.0.1/tcp/1', '--max-store', 'lots'])
    assert.equal(size.code, 2)
    assert.match(size.stderr, /--max-store: not a size: "lots"/)
    const c = await runCli(['coordinator', '--help'])
    assert.equal(c.code, 0)
    for (const flag of ['--listen', '--data-dir']) assert.match(c.stdout, new RegExp(flag))
  })
})
