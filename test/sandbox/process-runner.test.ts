/**
 * The process runners (sandbox/process-runner.ts): the native one (bldr-spawn,
 * built from spawn-helper.c) and the Node one keep the same contract, checked
 * here on real processes: exit codes and signals, captured output and its cap,
 * exactly the environment given (PATH included), the folder, commands that
 * cannot start, timeouts, the -j queue, kills of running and queued commands,
 * the whole process group ended, and the runner's own end.
 */
import assert from 'node:assert/strict'
import { existsSync, readFileSync } from 'node:fs'
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { defaultRunnerKind, NATIVE_RUNNER, ProcessRunner, type RunnerKind } from '../../sandbox/process-runner.js'
import { MAX_CAPTURE_BYTES, type ProcessRequest } from '../../sandbox/run-process.js'
import { waitForFile } from '../helpers.js'

const ENV = { PATH: '/usr/bin:/bin', LANG: 'C' }
const sh = (script: string, extra: Partial<ProcessRequest> = {}): ProcessRequest => ({ argv: ['sh', '-c', script], env: ENV, cwd: tmpdir(), timeoutMs: 30_000, ...extra })

/** Whether `pid` has ended (gone, or a zombie nobody reaped yet). */
function ended(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.startsWith('Z') ?? true
  } catch {
    return true
  }
}

async function until(cond: () => boolean, what: string, deadlineMs = 5_000): Promise<void> {
  const end = Date.now() + deadlineMs
  while (!cond()) {
    if (Date.now() > end) throw new Error(`${what}: not within ${deadlineMs} ms`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

async function withRunner(kind: RunnerKind, slots: number, fn: (r: ProcessRunner, dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'bldr-runner-'))
  const runner = new ProcessRunner(slots, kind)
  try {
    await fn(runner, dir)
  } finally {
    runner.close()
    await rm(dir, { recursive: true, force: true })
  }
}

describe('the process runners', () => {
  it('the native runner is built by npm run build and is the default', () => {
    assert.ok(existsSync(NATIVE_RUNNER), `${NATIVE_RUNNER} was not built (package.json's native script)`)
    assert.equal(defaultRunnerKind(), 'native')
  })

  it('a native runner that cannot start gives way to the Node one, which runs what was sent to it', async () => {
    // Missing (a spawn error without setpriv, setpriv's exit 127 with it), and a program that exits without a word.
    for (const program of [join(tmpdir(), 'no-such-bldr-spawn'), '/bin/true']) {
      const r = new ProcessRunner(2, 'native', { nativeProgram: program })
      try {
        const results = await Promise.all([r.run(sh('echo one')), r.run(sh('echo two'))])
        assert.deepEqual(results.map((res) => res.stdout.toString()), ['one\n', 'two\n'], program)
        assert.equal(r.kind, 'node')
      } finally {
        r.close()
      }
    }
  })

  for (const kind of ['native', 'node'] as const) {
    describe(`the ${kind} runner`, { timeout: 60_000 }, () => {
      it('reports the exit code and captures stdout and stderr apart, in the folder given, with exactly the environment given', async () => {
        await withRunner(kind, 2, async (r, dir) => {
          const res = await r.run(sh('echo out; echo err >&2; pwd; env | sort; exit 3', { cwd: dir, env: { ...ENV, ONLY: 'this' } }))
          assert.equal(res.exitCode, 3)
          assert.equal(res.signal, null)
          assert.equal(res.timedOut, false)
          const lines = res.stdout.toString().trim().split('\n')
          assert.equal(lines[0], 'out')
          assert.equal(lines[1], dir)
          // sh adds PWD (and may add SHLVL, OLDPWD, _); nothing of bldr's own environment.
          const vars = lines.slice(2).map((l) => l.split('=')[0]).filter((v) => !['PWD', 'SHLVL', 'OLDPWD', '_'].includes(v!))
          assert.deepEqual(vars, ['LANG', 'ONLY', 'PATH'])
          assert.equal(res.stderr.toString(), 'err\n')
          assert.ok(res.durationMs >= 0 && res.durationMs < 30_000)
        })
      })

      it("finds the program on the command's PATH, not bldr's, and reports one that is not there", async () => {
        await withRunner(kind, 1, async (r, dir) => {
          await writeFile(join(dir, 'my-tool'), '#!/bin/sh\necho "tool $1"\n')
          await chmod(join(dir, 'my-tool'), 0o755)
          const found = await r.run({ argv: ['my-tool', 'ran'], env: { PATH: `${dir}:/usr/bin:/bin` }, cwd: dir, timeoutMs: 10_000 })
          assert.equal(found.exitCode, 0)
          assert.equal(found.stdout.toString(), 'tool ran\n')
          const missing = await r.run({ argv: ['my-tool'], env: ENV, cwd: dir, timeoutMs: 10_000 })
          assert.equal(missing.exitCode, 127)
          assert.equal(missing.stderr.toString(), `bldr: cannot run "my-tool": not found (PATH=${ENV.PATH})\n`)
          const noFolder = await r.run({ argv: ['true'], env: ENV, cwd: join(dir, 'no-such-folder'), timeoutMs: 10_000 })
          assert.equal(noFolder.exitCode, 127)
          assert.match(noFolder.stderr.toString(), /^bldr: cannot run "true": /)
        })
      })

      it('reports a command ended by a signal', async () => {
        await withRunner(kind, 1, async (r) => {
          const res = await r.run(sh('kill -TERM $$'))
          assert.equal(res.exitCode, null)
          assert.equal(res.signal, 'SIGTERM')
        })
      })

      it('kills a command at its timeout, with its whole process group', async () => {
        await withRunner(kind, 1, async (r, dir) => {
          const pidFile = join(dir, 'child.pid')
          const res = await r.run(sh(`sleep 30 & echo $! > ${pidFile}.tmp && mv ${pidFile}.tmp ${pidFile}; wait`, { timeoutMs: 300 }))
          assert.equal(res.timedOut, true)
          assert.equal(res.signal, 'SIGKILL')
          const pid = Number(await waitForFile(pidFile, 5_000))
          await until(() => ended(pid), `the timed-out command's child ${pid} ended`)
        })
      })

      it('ends what a command left running in its group when it exits, and stops waiting for output held by a process that left the group', async () => {
        await withRunner(kind, 1, async (r) => {
          const res = await r.run(sh('sleep 30 & echo $!'))
          assert.equal(res.exitCode, 0)
          const pid = Number(res.stdout.toString().trim())
          await until(() => ended(pid), `the command's leftover child ${pid} ended`)
          // setsid: a new session, out of reach of the group kill, holding stdout open for 30 s.
          const escaped = await r.run(sh('setsid sleep 30 & echo $!; echo done'))
          const escapedPid = Number(escaped.stdout.toString().split('\n')[0])
          try {
            assert.equal(escaped.exitCode, 0)
            assert.match(escaped.stdout.toString(), /done\n$/)
            assert.ok(escaped.durationMs < 10_000, `gave up on the held pipe (${escaped.durationMs} ms)`)
          } finally {
            if (escapedPid > 0) process.kill(escapedPid, 'SIGKILL')
          }
        })
      })

      it('runs at most its slots at once, and starts the next as one ends', async () => {
        await withRunner(kind, 2, async (r, dir) => {
          // Each command logs its own start and end (appends of a few bytes are atomic): the overlap is the commands' own.
          const log = join(dir, 'times.log')
          let startedFirst = 0
          const runs = Array.from({ length: 6 }, () => {
            let started = false
            return r
              .run(sh(`echo "+ $(date +%s%N)" >> ${log}; sleep 0.2; echo "- $(date +%s%N)" >> ${log}`), { onStart: () => (started = true) })
              .then((res) => {
                if (started) startedFirst++
                return res
              })
          })
          const results = await Promise.all(runs)
          assert.ok(results.every((res) => res.exitCode === 0))
          assert.equal(startedFirst, 6, 'every onStart came before its result')
          const events = readFileSync(log, 'utf8')
            .trim()
            .split('\n')
            .map((l) => ({ delta: l.startsWith('+') ? 1 : -1, at: BigInt(l.slice(2)) }))
            .sort((a, b) => (a.at === b.at ? a.delta - b.delta : a.at < b.at ? -1 : 1))
          assert.equal(events.length, 12)
          let now = 0
          let most = 0
          for (const e of events) most = Math.max(most, (now += e.delta))
          assert.equal(most, 2, 'two ran at once, never more')
        })
      })

      it('a kill ends a running command and cancels a queued one', async () => {
        await withRunner(kind, 1, async (r) => {
          const first = new AbortController()
          const second = new AbortController()
          let started!: () => void
          const running = new Promise<void>((resolve) => (started = resolve))
          const a = r.run(sh('sleep 30'), { signal: first.signal, onStart: started })
          const b = r.run(sh('sleep 30'), { signal: second.signal })
          await running
          second.abort()
          await assert.rejects(b, /cancelled before it started/)
          first.abort()
          const res = await a
          assert.equal(res.signal, 'SIGKILL')
        })
      })

      it('keeps at most the capture limit of output, and says how much it dropped', async () => {
        await withRunner(kind, 1, async (r) => {
          const over = 1000
          const res = await r.run(sh(`head -c ${MAX_CAPTURE_BYTES + over} /dev/zero`))
          assert.equal(res.exitCode, 0)
          const note = `\n[bldr: ${over} more bytes not kept]\n`
          assert.equal(res.stdout.length, MAX_CAPTURE_BYTES + note.length)
          assert.equal(res.stdout.subarray(MAX_CAPTURE_BYTES).toString(), note)
        })
      })

      it('refuses a command with a NUL byte, and goes on serving', async () => {
        await withRunner(kind, 1, async (r) => {
          await assert.rejects(r.run(sh('echo a\0b')))
          const res = await r.run(sh('echo fine'))
          assert.equal(res.stdout.toString(), 'fine\n')
        })
      })

      it('closed, it kills what it still runs, and a new command starts a new runner', async () => {
        await withRunner(kind, 1, async (r, dir) => {
          const pidFile = join(dir, 'sleep.pid')
          const a = r.run(sh(`echo $$ > ${pidFile}.tmp && mv ${pidFile}.tmp ${pidFile}; exec sleep 30`))
          const pid = Number(await waitForFile(pidFile, 5_000))
          r.close()
          await assert.rejects(a, new RegExp(`the ${kind} process runner exited`))
          await until(() => ended(pid), `the command ${pid} ended with its runner`)
          const res = await r.run(sh('echo again'))
          assert.equal(res.stdout.toString(), 'again\n')
        })
      })
    })
  }
})
