/**
 * The chaos suite: a generated project of 269 actions built on a mesh of
 * separate worker processes while something goes wrong: a worker killed with
 * SIGKILL, frozen with SIGSTOP past the heartbeat timeout and woken again, cut
 * off the network (its own network namespace, joined by a veth pair whose host
 * end is taken down), half the load gossip dropped, bytes flipped in a worker's
 * stored blobs or on the wire, the client killed and the build run again.
 *
 * Every case checks the same three things: the build succeeds; every output is
 * byte-identical to a clean local build; and the coordinator's ledger recorded
 * every submitted attempt exactly once, with nothing left open, no conflicting
 * results, and one result used per action by the client.
 *
 * BLDR_CHAOS_ROUNDS=N runs each case N times (`npm run test:chaos -- --rounds N`),
 * each round at a different point of the build and on another worker;
 * BLDR_CHAOS_REPORT=FILE appends one JSON line per round (the figures the
 * runner prints).
 */
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { appendFileSync } from 'node:fs'
import { mkdtemp, open, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'
import { before, describe, it } from 'node:test'
import { chaosProject } from '../../bench/gen-chaos-project.js'
import { isAlive } from '../../src/cas/fs-util.js'
import { storedBlobs } from '../../src/cas/store.js'
import { childPids, makeProject, runCli, snapshotFiles, startBldr, terminate, waitForLine, withProject, type Started } from '../helpers.js'

const ROUNDS = Math.max(1, Number(process.env['BLDR_CHAOS_ROUNDS'] ?? 1))
const REPORT = process.env['BLDR_CHAOS_REPORT']
const PROJECT = chaosProject()
const TOTAL = PROJECT.actions
/** Heartbeats every 500 ms, a peer silent for 2 s is cut off: faults are found in seconds. */
const FAST = ['--heartbeat-interval', '500', '--worker-timeout', '2000']
const MESH = ['--distributed', '--local-workers', '3', '-j', '6', ...FAST]
const LOST = /"msg":"worker lost; its actions are seeded elsewhere"/

interface Stats {
  ok: boolean
  total: number
  executed: number
  cached: number
  actions: { id: string; status: string }[]
  mesh: {
    workers: { id: string; actionsRun: number; steals?: { actionsStolen: number }; corruption?: { storedRemoved: number; receivedRejected: number } }[]
    faults: {
      workersLost: { worker: string; at: number; handedBack: number }[] | null
      workersBack: string[] | null
      workersQuarantined: { worker: string; failures: number; why: string; forMs: number; handedBack: number }[] | null
      lateResults: number | null
      duplicatesIgnored: number | null
      conflicts: number | null
      retries: { action: string; reason: string; attempt: number }[]
      client: { corruptBlobsRemoved: number; blobsRejected: number }
      ledger: { submitted: number; recorded: number; open: number } | null
    }
  }
}

/** The outputs of a clean local build, by path. */
let reference: Map<string, Buffer>

before(async () => {
  await withProject(makeProject(PROJECT.files), async (dir) => {
    const r = await runCli(['build', '-C', dir, '-j', '4'])
    assert.equal(r.code, 0, r.stdout + r.stderr)
    reference = await snapshotFiles(dir, 'out')
  })
  assert.equal(reference.size, TOTAL)
})

/** Where round `r` strikes: after this many actions are done (spread over the leaves). */
function triggerAt(r: number): number {
  return 20 + ((r * 47) % 120)
}

async function readStats(file: string): Promise<Stats> {
  return JSON.parse(await readFile(file, 'utf8')) as Stats
}

/**
 * The three checks of every case: built, outputs identical to the local
 * build, and the ledger's account: every attempt recorded once, none open,
 * no conflicting results, one result used per action.
 */
async function assertSound(dir: string, code: number | null, output: string, stats: Stats, expectExecuted = TOTAL): Promise<void> {
  assert.equal(code, 0, `the build failed:\n${output}`)
  const got = await snapshotFiles(dir, 'out')
  assert.deepEqual([...got.keys()].sort(), [...reference.keys()].sort(), 'the same output files as the local build')
  for (const [path, bytes] of got) assert.ok(bytes.equals(reference.get(path)!), `${path} differs from the local build`)
  assert.equal(stats.executed, expectExecuted)
  const ledger = stats.mesh.faults.ledger
  assert.ok(ledger, 'the coordinator gave its account')
  assert.equal(ledger.open, 0, 'no action left open: none lost')
  assert.equal(ledger.recorded, ledger.submitted, 'every submitted attempt has exactly one recorded result')
  assert.equal(stats.mesh.faults.conflicts, 0, 'no two different results for one attempt')
  assert.equal(
    stats.mesh.workers.reduce((n, w) => n + w.actionsRun, 0),
    expectExecuted,
    'the client used one result per action',
  )
}

/** The one worker declared lost in a build, and the figures of its loss: fault → declared, declared → build ended. */
function oneLoss(stats: Stats, faultAt: number, endedAt: number): { worker: string; detectMs: number; finishAfterMs: number } {
  const lost = stats.mesh.faults.workersLost ?? []
  assert.equal(lost.length, 1, `one worker declared lost: ${JSON.stringify(lost)}`)
  const { worker, at } = lost[0]!
  return { worker, detectMs: at - faultAt, finishAfterMs: endedAt - at }
}

function report(kind: string, round: number, stats: Stats, extra: Record<string, number | null> = {}): void {
  if (!REPORT) return
  const l = stats.mesh.faults.ledger!
  const line = {
    kind,
    round,
    ok: stats.ok,
    actions: stats.total,
    lost: l.open,
    duplicatesRecorded: Math.max(0, l.recorded - l.submitted),
    duplicatesIgnored: stats.mesh.faults.duplicatesIgnored,
    lateResults: stats.mesh.faults.lateResults,
    retries: stats.mesh.faults.retries.length,
    ...extra,
  }
  appendFileSync(REPORT, `${JSON.stringify(line)}\n`)
}

/** Start a distributed build of the chaos project and wait until `k` actions are done. */
function startMeshBuild(dir: string, statsFile: string, k: number, extra: string[] = [], env: Record<string, string> = {}): Promise<Started> {
  return startBldr(['build', '-C', dir, ...MESH, '--stats', statsFile, '--log-level', 'warn', ...extra], new RegExp(`^\\[${k}/${TOTAL}\\]`), 60_000, { env })
}

/**
 * The steps a round takes while its build runs; if one fails, the build (with
 * its local workers) is stopped before the failure is passed on, so it is not
 * left running in a folder about to be removed (it would outlive the suite).
 */
async function whileBuilding<T>(b: Started, steps: () => Promise<T>): Promise<T> {
  try {
    return await steps()
  } catch (err) {
    await terminate(b.proc)
    throw err
  }
}

/** The `--data-dir` a worker process was started with. */
async function dataDirOf(pid: number): Promise<string> {
  const argv = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0')
  const dir = argv[argv.indexOf('--data-dir') + 1]
  assert.ok(dir, `worker ${pid} has no --data-dir`)
  return dir
}

/** Flip the first byte of every non-empty blob in a store, in place (the inode stays; hard links to it see the change). */
async function flipStoredBlobs(casRoot: string): Promise<number> {
  let flipped = 0
  for (const { path } of storedBlobs(casRoot)) {
    const fh = await open(path, 'r+').catch(() => undefined)
    if (!fh) continue
    try {
      const b = Buffer.alloc(1)
      if ((await fh.read(b, 0, 1, 0)).bytesRead === 1) {
        b[0] = b[0]! ^ 0xff
        await fh.write(b, 0, 1, 0)
        flipped++
      }
    } finally {
      await fh.close()
    }
  }
  return flipped
}

async function waitUntilGone(pids: number[], deadlineMs: number): Promise<void> {
  const end = performance.now() + deadlineMs
  while (pids.some(isAlive)) {
    if (performance.now() > end) assert.fail(`processes still running after ${deadlineMs} ms: ${pids.filter(isAlive).join(', ')}`)
    await delay(100)
  }
}

const rounds = Array.from({ length: ROUNDS }, (_, r) => r)

describe('chaos: a 269-action build on a mesh of worker processes, with faults', { timeout: 600_000 }, () => {
  for (const r of rounds) {
    it(`round ${r + 1}: a worker killed with SIGKILL mid-build`, async () => {
      await withProject(makeProject(PROJECT.files), async (dir) => {
        const statsFile = join(dir, 'stats.json')
        const b = await startMeshBuild(dir, statsFile, triggerAt(r))
        const { victim, killedAt } = await whileBuilding(b, async () => {
          const workers = await childPids(b.proc.pid!)
          assert.equal(workers.length, 3)
          const victim = workers[r % 3]!
          const killedAt = Date.now()
          process.kill(victim, 'SIGKILL')
          return { victim, killedAt }
        })
        const code = await b.exited
        const endedAt = Date.now()
        const stats = await readStats(statsFile)
        await assertSound(dir, code, b.output(), stats)
        const { detectMs, finishAfterMs } = oneLoss(stats, killedAt, endedAt)
        assert.match(b.output(), new RegExp(`local worker \\d \\(pid ${victim}\\) exited with SIGKILL during the build`))
        report('kill -9', r, stats, { detectMs, finishAfterMs })
      })
    })

    it(`round ${r + 1}: a worker frozen (SIGSTOP) past the heartbeat timeout, then woken (SIGCONT)`, async () => {
      await withProject(makeProject(PROJECT.files), async (dir) => {
        const statsFile = join(dir, 'stats.json')
        const b = await startMeshBuild(dir, statsFile, triggerAt(r))
        const { victim, frozenAt } = await whileBuilding(b, async () => {
          const workers = await childPids(b.proc.pid!)
          const victim = workers[(r + 1) % 3]!
          const frozenAt = Date.now()
          process.kill(victim, 'SIGSTOP')
          try {
            await waitForLine(b, LOST, 30_000)
          } finally {
            process.kill(victim, 'SIGCONT')
          }
          return { victim, frozenAt }
        })
        const code = await b.exited
        const endedAt = Date.now()
        const stats = await readStats(statsFile)
        await assertSound(dir, code, b.output(), stats)
        const { detectMs, finishAfterMs } = oneLoss(stats, frozenAt, endedAt)
        assert.ok(!isAlive(victim), 'the woken worker was stopped with the mesh')
        report('SIGSTOP', r, stats, { detectMs, finishAfterMs })
      })
    })

    it(`round ${r + 1}: a worker cut off the network (its namespace's link taken down), then back`, async () => {
      await withNetns(r, async (net) => {
        const data = await mkdtemp(join(tmpdir(), 'bldr-chaos-netns-'))
        const procs: Started[] = []
        try {
          const coord = await startBldr(['coordinator', '--listen', '/ip4/0.0.0.0/tcp/0', '--data-dir', join(data, 'coordinator'), '--log-level', 'warn', ...FAST], /^\/ip4\/127\.0\.0\.1\/tcp\/(\d+)\/p2p\/(\S+)$/)
          procs.push(coord)
          const [, port, id] = coord.match
          const local = `/ip4/127.0.0.1/tcp/${port}/p2p/${id}`
          const worker = (n: number, prefix: string[], coordinator: string, listen: string): Promise<Started> =>
            startBldr(['worker', '--coordinator', coordinator, '--listen', listen, '--data-dir', join(data, `worker-${n}`), '--parallelism', '2', '--sandbox', 'local', '--seed', String(n), '--log-level', 'info', ...FAST], /"msg":"worker ready".*"peerId":"(\w+)"|"peerId":"(\w+)".*"msg":"worker ready"/, 30_000, { prefix })
          for (const n of [1, 2]) procs.push(await worker(n, [], local, '/ip4/0.0.0.0/tcp/0'))
          const cut = await worker(3, ['ip', 'netns', 'exec', net.ns], `/ip4/${net.hostIp}/tcp/${port}/p2p/${id}`, `/ip4/${net.nsIp}/tcp/0`)
          procs.push(cut)
          const cutId = cut.match[1] ?? cut.match[2]!
          await withProject(makeProject(PROJECT.files), async (dir) => {
            const statsFile = join(dir, 'stats.json')
            const b = await startBldr(['build', '-C', dir, '--coordinator', local, '--stats', statsFile], new RegExp(`^\\[${triggerAt(r)}/${TOTAL}\\]`), 60_000)
            const cutAt = await whileBuilding(b, async () => {
              assert.match(b.output(), /mesh at .*: 3 workers/)
              const cutAt = Date.now()
              execFileSync('ip', ['link', 'set', net.hostIf, 'down'])
              return cutAt
            })
            const code = await b.exited
            const endedAt = Date.now()
            const stats = await readStats(statsFile)
            await assertSound(dir, code, b.output(), stats)
            const { worker, detectMs, finishAfterMs } = oneLoss(stats, cutAt, endedAt)
            assert.equal(worker, cutId, 'the cut-off worker was declared lost')
            report('netns cut', r, stats, { detectMs, finishAfterMs })
          })
          // Reconnected, the worker registers again and is told it is back.
          execFileSync('ip', ['link', 'set', net.hostIf, 'up'])
          await waitForLine(coord, /"msg":"a lost worker is back; it takes work again"/, 30_000)
          assert.match(coord.output(), new RegExp(`"worker":"${cutId}"[^\\n]*"msg":"a lost worker is back`))
        } finally {
          await Promise.all(procs.map((p) => terminate(p.proc)))
          await rm(data, { recursive: true, force: true })
        }
      })
    })

    it(`round ${r + 1}: half the load gossip dropped, all work seeded on one worker`, async () => {
      await withProject(makeProject(PROJECT.files), async (dir) => {
        const statsFile = join(dir, 'stats.json')
        const b = await startBldr(['build', '-C', dir, ...MESH, '--seed-policy', 'single', '--stats', statsFile], /^bldr: local mesh/, 30_000, {
          env: { BLDR_FAULT_DROP_GOSSIP: '0.5' },
        })
        const code = await b.exited
        const stats = await readStats(statsFile)
        await assertSound(dir, code, b.output(), stats)
        assert.ok(
          stats.mesh.workers.reduce((n, w) => n + (w.steals?.actionsStolen ?? 0), 0) > 0,
          'stealing still spread the work',
        )
        report('gossip 50% dropped', r, stats)
      })
    })

    it(`round ${r + 1}: a worker whose sandbox is broken (it fails every action without running it) is avoided and quarantined`, async () => {
      const data = await mkdtemp(join(tmpdir(), 'bldr-chaos-broken-'))
      const procs: Started[] = []
      try {
        const coord = await startBldr(['coordinator', '--listen', '/ip4/127.0.0.1/tcp/0', '--data-dir', join(data, 'coordinator'), '--log-level', 'warn', ...FAST], /^\/ip4\/127\.0\.0\.1\/tcp\/(\d+)\/p2p\/(\S+)$/)
        procs.push(coord)
        const addr = coord.match[0]
        const ids: string[] = []
        for (const n of [1, 2, 3]) {
          const w = await startBldr(
            ['worker', '--coordinator', addr, '--listen', '/ip4/127.0.0.1/tcp/0', '--data-dir', join(data, `worker-${n}`), '--parallelism', '2', '--sandbox', 'local', '--seed', String(n + r), '--log-level', 'info', ...FAST],
            /"msg":"worker ready".*"peerId":"(\w+)"|"peerId":"(\w+)".*"msg":"worker ready"/,
            30_000,
            { env: n === 1 + (r % 3) ? { BLDR_FAULT_BROKEN: '1' } : {} },
          )
          procs.push(w)
          ids.push(w.match[1] ?? w.match[2]!)
        }
        const broken = ids[r % 3]!
        await withProject(makeProject(PROJECT.files), async (dir) => {
          const statsFile = join(dir, 'stats.json')
          const b = await startBldr(['build', '-C', dir, '--coordinator', addr, '--stats', statsFile], /^bldr: mesh at/, 60_000)
          const code = await b.exited
          const stats = await readStats(statsFile)
          await assertSound(dir, code, b.output(), stats)
          assert.equal(stats.mesh.workers.find((w) => w.id === broken)?.actionsRun ?? 0, 0, 'the broken worker ran nothing')
          const retries = stats.mesh.faults.retries
          assert.ok(retries.length > 0, 'the broken worker failed some actions')
          assert.ok(retries.every((t) => t.attempt === 2), `every retry went to a working worker the first time: ${JSON.stringify(retries.filter((t) => t.attempt > 2))}`)
          const q = stats.mesh.faults.workersQuarantined ?? []
          assert.deepEqual(q.map((x) => x.worker), [broken], 'the broken worker was quarantined, once')
          assert.match(q[0]!.why, /BLDR_FAULT_BROKEN/)
          assert.match(b.output(), /was quarantined for 30 s: it could not run 3 actions in a row/)
          report('broken sandbox', r, stats, { retries: retries.length })
        })
        // While it is quarantined, a build seeded all on one worker goes to the first worker that is not.
        await withProject(makeProject(PROJECT.files), async (dir) => {
          const statsFile = join(dir, 'stats.json')
          const b = await startBldr(['build', '-C', dir, '--coordinator', addr, '--seed-policy', 'single', '--stats', statsFile], /^bldr: mesh at/, 60_000)
          const code = await b.exited
          const stats = await readStats(statsFile)
          await assertSound(dir, code, b.output(), stats)
          assert.equal(stats.mesh.workers.find((w) => w.id === broken)?.actionsRun ?? 0, 0, 'the quarantined worker ran nothing')
        })
      } finally {
        await Promise.all(procs.map((p) => terminate(p.proc)))
        await rm(data, { recursive: true, force: true })
      }
    })

    it(`round ${r + 1}: a byte flipped in every blob a worker has stored`, async () => {
      await withProject(makeProject(PROJECT.files), async (dir) => {
        const statsFile = join(dir, 'stats.json')
        const b = await startMeshBuild(dir, statsFile, 40 + triggerAt(r))
        const flipped = await whileBuilding(b, async () => {
          const workers = await childPids(b.proc.pid!)
          const flipped = await flipStoredBlobs(join(await dataDirOf(workers[(r + 2) % 3]!), 'cas'))
          assert.ok(flipped > 0, 'blobs were flipped')
          return flipped
        })
        const code = await b.exited
        const stats = await readStats(statsFile)
        await assertSound(dir, code, b.output(), stats)
        const removed = stats.mesh.workers.reduce((n, w) => n + (w.corruption?.storedRemoved ?? 0), 0)
        assert.ok(removed > 0, 'corrupt blobs were found and removed, not used')
        report('stored blob flipped', r, stats, { blobsFlipped: flipped, corruptFound: removed })
      })
    })

    it(`round ${r + 1}: bytes flipped on the wire (every 4th blob a worker sends)`, async () => {
      await withProject(makeProject(PROJECT.files), async (dir) => {
        const statsFile = join(dir, 'stats.json')
        const b = await startBldr(['build', '-C', dir, ...MESH, '--stats', statsFile], /^bldr: local mesh/, 30_000, { env: { BLDR_FAULT_CORRUPT_SENT: String(4 + (r % 3)) } })
        const code = await b.exited
        const stats = await readStats(statsFile)
        await assertSound(dir, code, b.output(), stats)
        const rejected = stats.mesh.faults.client.blobsRejected + stats.mesh.workers.reduce((n, w) => n + (w.corruption?.receivedRejected ?? 0), 0)
        assert.ok(rejected > 0, 'corrupt blobs were rejected on arrival')
        assert.match(b.output(), /blobs? (was|were) received with bytes that did not match the digest and rejected/)
        report('wire corruption', r, stats, { blobsRejected: rejected })
      })
    })

    it(`round ${r + 1}: the client killed mid-build; run again, it resumes from the action cache`, async () => {
      await withProject(makeProject(PROJECT.files), async (dir) => {
        const statsFile = join(dir, 'stats.json')
        const b = await startMeshBuild(dir, statsFile, triggerAt(r))
        const workers = await whileBuilding(b, () => childPids(b.proc.pid!))
        b.proc.kill('SIGKILL')
        await b.exited
        // Done before the kill: every action whose completion was printed.
        const done = new Set([...b.output().matchAll(/^\[\d+\/\d+\] (\S+) \(/gm)].map((m) => m[1]!))
        assert.ok(done.size >= triggerAt(r))
        // Its workers notice (their stdin closes) and leave.
        await waitUntilGone(workers, 30_000)
        const again = await runCli(['build', '-C', dir, ...MESH, '--stats', statsFile])
        const stats = await readStats(statsFile)
        const status = new Map(stats.actions.map((a) => [a.id, a.status]))
        const rerun = [...done].filter((id) => status.get(id) !== 'cached')
        assert.deepEqual(rerun, [], 'no action that finished before the kill ran again')
        assert.equal(stats.executed + stats.cached, TOTAL)
        await assertSound(dir, again.code, again.stdout + again.stderr, stats, stats.executed)
        report('client killed, rerun', r, stats, { doneBeforeKill: done.size, cachedOnRerun: stats.cached })
      })
    })

    it(`round ${r + 1}: the coordinator of a standing mesh killed mid-build and restarted; the build run again resumes`, async () => {
      const data = await mkdtemp(join(tmpdir(), 'bldr-chaos-coordinator-'))
      const procs: Started[] = []
      const coordinator = (listen: string): Promise<Started> =>
        startBldr(['coordinator', '--listen', listen, '--data-dir', join(data, 'coordinator'), '--log-level', 'info', ...FAST], /^(\/ip4\/127\.0\.0\.1\/tcp\/(\d+)\/p2p\/\S+)$/)
      try {
        const first = await coordinator('/ip4/127.0.0.1/tcp/0')
        procs.push(first)
        const [, addr, port] = first.match
        for (const n of [1, 2, 3]) {
          procs.push(
            await startBldr(['worker', '--coordinator', addr!, '--listen', '/ip4/127.0.0.1/tcp/0', '--data-dir', join(data, `worker-${n}`), '--parallelism', '2', '--sandbox', 'local', '--seed', String(n), '--log-level', 'info', ...FAST], /"msg":"worker ready"/),
          )
        }
        await withProject(makeProject(PROJECT.files), async (dir) => {
          const statsFile = join(dir, 'stats.json')
          const b = await startBldr(['build', '-C', dir, '--coordinator', addr!, '--stats', statsFile], new RegExp(`^\\[${triggerAt(r)}/${TOTAL}\\]`), 60_000)
          first.proc.kill('SIGKILL')
          // The client finds its coordinator gone and stops with one clear line, not a hang.
          assert.equal(await b.exited, 1, b.output())
          assert.match(b.output(), /^bldr: the mesh can no longer run this build: (lost the coordinator at \S+|the coordinator at \S+ no longer knows this build)/m)
          const done = new Set([...b.output().matchAll(/^\[\d+\/\d+\] (\S+) \(/gm)].map((m) => m[1]!))
          // Restarted with its key and port, it has the same address; the workers register again by themselves.
          const second = await coordinator(`/ip4/127.0.0.1/tcp/${port}`)
          procs.push(second)
          assert.equal(second.match[1], addr)
          for (let n = 0; n < 3; n++) await waitForLine(second, new RegExp(`"workers":${n + 1}[^\\n]*"msg":"worker registered"|"msg":"worker registered"[^\\n]*"workers":${n + 1}`), 30_000)
          const again = await runCli(['build', '-C', dir, '--coordinator', addr!, '--stats', statsFile])
          const stats = await readStats(statsFile)
          const status = new Map(stats.actions.map((a) => [a.id, a.status]))
          assert.deepEqual([...done].filter((id) => status.get(id) !== 'cached'), [], 'no action that finished before ran again')
          await assertSound(dir, again.code, again.stdout + again.stderr, stats, stats.executed)
          assert.equal(stats.executed + stats.cached, TOTAL)
          report('coordinator killed, restarted, rerun', r, stats, { doneBeforeKill: done.size, cachedOnRerun: stats.cached })
        })
      } finally {
        await Promise.all(procs.map((p) => terminate(p.proc)))
        await rm(data, { recursive: true, force: true })
      }
    })
  }
})

interface Netns {
  ns: string
  hostIf: string
  hostIp: string
  nsIp: string
}

/** A network namespace joined to this one by a veth pair (host end `hostIf`), made for `fn` and removed after it. */
async function withNetns<T>(round: number, fn: (net: Netns) => Promise<T>): Promise<T> {
  const tag = `${process.pid % 100_000}${round % 10}`
  const octet = (process.pid + round) % 250
  const net: Netns = { ns: `bldrchaos${tag}`, hostIf: `bch${tag}`, hostIp: `10.231.${octet}.1`, nsIp: `10.231.${octet}.2` }
  const nsIf = `bcn${tag}`
  const ip = (...args: string[]): void => void execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] })
  try {
    ip('netns', 'add', net.ns)
    ip('link', 'add', net.hostIf, 'type', 'veth', 'peer', 'name', nsIf)
    ip('link', 'set', nsIf, 'netns', net.ns)
    ip('addr', 'add', `${net.hostIp}/30`, 'dev', net.hostIf)
    ip('link', 'set', net.hostIf, 'up')
    ip('netns', 'exec', net.ns, 'ip', 'addr', 'add', `${net.nsIp}/30`, 'dev', nsIf)
    ip('netns', 'exec', net.ns, 'ip', 'link', 'set', nsIf, 'up')
    ip('netns', 'exec', net.ns, 'ip', 'link', 'set', 'lo', 'up')
    return await fn(net)
  } finally {
    try {
      ip('link', 'del', net.hostIf)
    } catch {
      // Not made, or gone with the namespace.
    }
    try {
      ip('netns', 'del', net.ns)
    } catch {
      // Not made.
    }
  }
}
