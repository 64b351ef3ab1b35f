/**
 * The local mesh kept between builds (`bldr build --distributed` with no
 * coordinator, src/net/mesh-daemon.ts): real background processes, reached
 * over their Unix socket; what starts it, what reuses it, what stops it.
 */
import assert from 'node:assert/strict'
import { appendFile, readFile, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'
import { describe, it } from 'node:test'
import { isAlive } from '../../src/cas/fs-util.js'
import { copyExample, localMeshOf, runCli, withProject, type CliResult } from '../helpers.js'

const MESH = ['--distributed', '--local-workers', '2', '-j', '2']

function assertBuilt(r: CliResult): void {
  assert.equal(r.code, 0, `bldr failed:\n${r.stdout}\n${r.stderr}`)
}

/** The pid a build's mesh note names: started by it, or already running. */
function notedPid(r: CliResult): { pid: number; started: boolean } {
  const m = /^bldr: local mesh: .*; (started in the background|already running) \(pid (\d+)/m.exec(r.stderr)
  assert.ok(m, `no local mesh note:\n${r.stderr}`)
  return { pid: Number(m[2]), started: m[1] === 'started in the background' }
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

describe('the local mesh kept between builds', { timeout: 180_000 }, () => {
  it('the first build starts it, the next reaches the same processes; bldr mesh status shows it and bldr mesh stop ends it', async () => {
    await withProject(copyExample(), async (dir) => {
      const first = await runCli(['build', '-C', dir, ...MESH])
      assertBuilt(first)
      const started = notedPid(first)
      assert.ok(started.started, first.stderr)
      assert.match(first.stderr, /kept for 10 min after the last build \(bldr mesh stop ends it\)/)
      const mesh = await localMeshOf(dir)
      assert.equal(mesh.pid, started.pid)
      assert.equal(mesh.workers.length, 2)
      for (const p of [mesh.pid, ...mesh.workers]) assert.ok(isAlive(p), `process ${p} of the mesh is kept after the build`)

      await changeSource(dir, 1)
      const second = await runCli(['build', '-C', dir, ...MESH])
      assertBuilt(second)
      assert.match(second.stdout, /[1-9]\d* executed/)
      assert.deepEqual(notedPid(second), { pid: mesh.pid, started: false })
      assert.deepEqual(await localMeshOf(dir), mesh, 'the same worker processes')

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

  it('a build with other settings replaces it; --mesh-idle 0 builds on a mesh of its own and keeps none', async () => {
    await withProject(copyExample(), async (dir) => {
      assertBuilt(await runCli(['build', '-C', dir, ...MESH]))
      const old = await localMeshOf(dir)
      await changeSource(dir, 1)
      const other = await runCli(['build', '-C', dir, '--distributed', '--local-workers', '1', '-j', '2'])
      assertBuilt(other)
      const now = notedPid(other)
      assert.ok(now.started && now.pid !== old.pid, other.stderr)
      assert.match(other.stderr, /local mesh: 1 worker process × 2 slots/)
      for (const p of [old.pid, ...old.workers]) assert.ok(!isAlive(p), `process ${p} of the replaced mesh is still running`)
      const replaced = await localMeshOf(dir)
      assert.equal(replaced.workers.length, 1)

      // A mesh of the build's own leaves the kept one alone (it is not used) and leaves nothing behind.
      await changeSource(dir, 2)
      const own = await runCli(['build', '-C', dir, ...MESH, '--mesh-idle', '0'])
      assertBuilt(own)
      assert.match(own.stderr, /^bldr: local mesh: 2 worker processes × 1 slot, strategy \S+, seeding [^;]+$/m)
      assert.deepEqual(await localMeshOf(dir), replaced)
      assert.ok(isAlive(replaced.pid))
      assertBuilt(await runCli(['mesh', 'stop', '-C', dir]))
    })
  })

  it('it stops after --mesh-idle seconds without a build, and when its folder is removed', async () => {
    await withProject(copyExample(), async (dir) => {
      const r = await runCli(['build', '-C', dir, ...MESH, '--mesh-idle', '1'])
      assertBuilt(r)
      assert.match(r.stderr, /kept for 1 s after the last build/)
      const idle = await localMeshOf(dir)
      await waitUntilGone([idle.pid, ...idle.workers], 15_000)
      await assert.rejects(readFile(join(dir, '.bldr', 'mesh', 'daemon.json')), /ENOENT/, 'it removed its account')

      await changeSource(dir, 1)
      assertBuilt(await runCli(['build', '-C', dir, ...MESH]))
      const kept = await localMeshOf(dir)
      await rm(join(dir, '.bldr'), { recursive: true, force: true })
      await waitUntilGone([kept.pid, ...kept.workers], 15_000)
    })
  })

  it('bldr gc stops it before collecting its workers\' stores', async () => {
    await withProject(copyExample(), async (dir) => {
      assertBuilt(await runCli(['build', '-C', dir, ...MESH]))
      const mesh = await localMeshOf(dir)
      const gc = await runCli(['gc', '-C', dir])
      assert.equal(gc.code, 0, gc.stderr)
      assert.match(gc.stdout, new RegExp(`^bldr gc: stopped the local mesh \\(pid ${mesh.pid}\\); the next distributed build starts another$`, 'm'))
      for (const p of [mesh.pid, ...mesh.workers]) assert.ok(!isAlive(p), `process ${p} outlived bldr gc`)
      await changeSource(dir, 1)
      const again = await runCli(['build', '-C', dir, ...MESH])
      assertBuilt(again)
      assert.ok(notedPid(again).started)
      assertBuilt(await runCli(['mesh', 'stop', '-C', dir]))
    })
  })

  it('two builds started at once in one folder share one mesh', async () => {
    await withProject(copyExample(), async (dir) => {
      const [a, b] = await Promise.all([runCli(['build', '-C', dir, ...MESH]), runCli(['build', '-C', dir, ...MESH])])
      assertBuilt(a)
      assertBuilt(b)
      // Each reached a mesh (a build whose actions the other finished first may need none).
      const noted = [a, b].filter((r) => /local mesh:/.test(r.stderr)).map(notedPid)
      assert.ok(noted.length >= 1)
      const mesh = await localMeshOf(dir)
      for (const n of noted) assert.equal(n.pid, mesh.pid, `${a.stderr}\n${b.stderr}`)
      assert.ok(noted.filter((n) => n.started).length <= 1, 'one of them started it')
      assertBuilt(await runCli(['mesh', 'stop', '-C', dir]))
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
    })
  })
})
