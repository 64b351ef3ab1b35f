/**
 * What each backend isolates, with real processes: the same cases against
 * bubblewrap and a real Docker daemon (both installed and started by .ci/run),
 * the warm-container pool of the docker backend, and what the local backend
 * refuses.
 */
import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { pino } from 'pino'
import { execFileSync } from 'node:child_process'
import { createServer } from 'node:net'
import { hostname, tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'
import { describe, it } from 'node:test'
import { createBlake3Hasher } from '../../src/cas/hasher.js'
import { openCasStore, type CasStore } from '../../src/cas/store.js'
import { DEFAULT_CAPABILITIES, HERMETIC_ENV, type Capabilities } from '../../src/graph/action.js'
import { BWRAP_EXEC_ROOT, createBwrapSandbox } from '../../sandbox/bwrap.js'
import { createDockerSandbox, DOCKER_EXEC_ROOT } from '../../sandbox/docker.js'
import { createLocalSandbox } from '../../sandbox/local.js'
import { NATIVE_RUNNER, type RunnerKind } from '../../sandbox/process-runner.js'
import type { Sandbox, SandboxInput, SandboxSpec } from '../../sandbox/types.js'
import { copyExample, runCli, snapshotFiles, withProject } from '../helpers.js'

type MakeSandbox = (init: { cas: CasStore; scratchRoot: string; slots: number }) => Sandbox

async function withSandbox(make: MakeSandbox, fn: (s: Sandbox, cas: CasStore, dir: string) => Promise<void>, opts: { sealed?: boolean } = {}): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'bldr-isolation-'))
  const cas = await openCasStore(join(dir, 'cas'), await createBlake3Hasher(), opts)
  const sandbox = make({ cas, scratchRoot: join(dir, 'scratch'), slots: 2 })
  try {
    await fn(sandbox, cas, dir)
  } finally {
    await sandbox.close()
    await rm(dir, { recursive: true, force: true })
  }
}

function spec(argv: string[], over: Partial<SandboxSpec> & { caps?: Partial<Capabilities> } = {}): SandboxSpec {
  const { caps, ...rest } = over
  return {
    actionId: 'test',
    argv,
    env: { ...HERMETIC_ENV },
    inputs: [],
    outputs: [],
    timeoutMs: 10_000,
    capabilities: { ...DEFAULT_CAPABILITIES, readPaths: [], writePaths: [], ...caps },
    ...rest,
  }
}

const sh = (script: string): string[] => ['sh', '-c', script]


/**
 * A depfile the spec says to read (ninja's deps = gcc) comes back as text and
 * is not stored; one over the cap, or one not to be read, is an output as usual.
 */
async function readsItsDepfile(make: MakeSandbox): Promise<void> {
  await withSandbox(make, async (s, cas) => {
    const outputs = ['out/a.o', 'out/a.o.d']
    /** A spec whose command writes `depfile`'s text as its depfile (copied from an input) and an object. */
    const writing = async (depfile: string, over: Partial<SandboxSpec>): Promise<SandboxSpec> => {
      const input: SandboxInput = { path: 'dep.txt', digest: (await cas.putBytes(depfile)).digest, executable: false }
      return spec(sh('cp dep.txt out/a.o.d; echo obj > out/a.o'), { inputs: [input], outputs, depfile: 'out/a.o.d', ...over })
    }
    const text = 'out/a.o: src/a.c \\\n include/a.h\n'
    const r = await s.run(await writing(text, { readDepfile: true }))
    assert.equal(r.exitCode, 0, r.stderr.toString())
    assert.equal(r.depfileText, text)
    assert.deepEqual(r.outputs.map((o) => o.path), ['out/a.o'], 'the depfile is not an output')
    assert.deepEqual(r.missingOutputs, [])

    const large = `out/a.o: ${'include/x.h '.repeat(3_000)}\n`
    const big = await s.run(await writing(large, { readDepfile: true }))
    assert.equal(big.depfileText, undefined, 'a depfile over the cap is not read')
    assert.deepEqual(big.outputs.map((o) => o.path), outputs, 'it is stored as an output')

    const kept = await s.run(await writing(text, {}))
    assert.equal(kept.depfileText, undefined)
    assert.deepEqual(kept.outputs.map((o) => o.path), outputs, 'a depfile ninja keeps is an output')
  })
}

/**
 * An output that is a symbolic link to another output or to an input (CMake's
 * libfoo.so -> libfoo.so.1 -> libfoo.so.1.2.3) is recorded as that link, with
 * the file it leads to; one leading elsewhere is missing, and said so.
 */
async function recordsLinkOutputs(make: MakeSandbox): Promise<void> {
  await withSandbox(make, async (s, cas) => {
    const input: SandboxInput = { path: 'lib/libin.so.2.0', digest: (await cas.putBytes('an input library\n')).digest, executable: false }
    const script = 'echo library > out/libx.so.1.2; ln -s libx.so.1.2 out/libx.so.1; ln -s libx.so.1 out/libx.so; ln -s ../lib/libin.so.2.0 out/libin.so; ln -s /etc/passwd out/abs; ln -s nowhere out/dangling'
    const outputs = ['out/abs', 'out/dangling', 'out/libin.so', 'out/libx.so', 'out/libx.so.1', 'out/libx.so.1.2']
    const r = await s.run(spec(sh(script), { inputs: [input], outputs }))
    assert.equal(r.exitCode, 0, r.stderr.toString())
    const by = new Map(r.outputs.map((o) => [o.path, o]))
    const file = by.get('out/libx.so.1.2')!
    assert.equal(file.symlink, undefined)
    assert.deepEqual([by.get('out/libx.so.1')?.symlink, by.get('out/libx.so.1')?.digest], ['libx.so.1.2', file.digest])
    assert.deepEqual([by.get('out/libx.so')?.symlink, by.get('out/libx.so')?.digest], ['libx.so.1', file.digest], 'through another link')
    assert.deepEqual([by.get('out/libin.so')?.symlink, by.get('out/libin.so')?.digest], ['../lib/libin.so.2.0', input.digest], 'to an input')
    assert.deepEqual(r.missingOutputs.sort(), ['out/abs', 'out/dangling'])
    assert.match(r.stderr.toString(), /output out\/dangling is a symbolic link to nowhere, which is neither an output nor an input/)
  })
}

const ISOLATING: { name: 'bwrap' | 'docker'; make: MakeSandbox; execRoot: string }[] = [
  { name: 'bwrap', make: (init) => createBwrapSandbox(init), execRoot: BWRAP_EXEC_ROOT },
  { name: 'docker', make: (init) => createDockerSandbox(init), execRoot: DOCKER_EXEC_ROOT },
]

/** Processes named `bwrap` under this test process (a sandbox is one or two: bwrap and its init). */
function ourBwraps(): number {
  const rows = execFileSync('ps', ['-eo', 'pid=,ppid=,comm='], { encoding: 'utf8' })
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .filter((r) => r.length >= 3)
  const children = new Map<string, string[]>()
  for (const [pid, ppid] of rows) children.set(ppid!, [...(children.get(ppid!) ?? []), pid!])
  const comm = new Map(rows.map(([pid, , c]) => [pid!, c!]))
  let n = 0
  const walk = (pid: string): void => {
    for (const c of children.get(pid) ?? []) {
      if (comm.get(c) === 'bwrap') n++
      walk(c)
    }
  }
  walk(String(process.pid))
  return n
}

/** A command that allocates `mib` MiB and touches every page. */
const allocate = (mib: number): string[] => ['python3', '-c', `b = bytearray(${mib} * 1024 * 1024)\nprint(len(b))`]

for (const backend of ISOLATING) {
  describe(`sandbox ${backend.name} (real ${backend.name === 'docker' ? 'Docker daemon' : 'bubblewrap'})`, { timeout: 120_000 }, () => {
    const make = backend.make

    it('runs in a fixed exec root with only its declared inputs, as an unprivileged user, and stores its outputs', async () => {
      await withSandbox(make, async (s, cas) => {
        const src = await cas.putBytes('int answer(void) { return 42; }\n')
        const input: SandboxInput = { path: 'src/a.c', digest: src.digest, executable: false }
        const r = await s.run(spec(sh('pwd; ls -A; id -u; cc -c src/a.c -o out/a.o'), { inputs: [input], outputs: ['out/a.o'] }))
        assert.equal(r.exitCode, 0, r.stderr.toString())
        const [pwd, ls1, ls2, uid] = r.stdout.toString().split('\n')
        assert.deepEqual([pwd, ls1, ls2], [backend.execRoot, 'out', 'src'])
        assert.notEqual(uid, '0', 'the action does not run as root')
        assert.equal(r.outputs.length, 1)
        assert.ok(r.outputs[0]!.size > 0)
      })
    })

    it('reads a depfile it is told to read instead of storing it; a large one, or one kept, is an output', async () => {
      await readsItsDepfile(make)
    })

    it('records an output that is a link to another output or an input as that link; one leading elsewhere is missing', async () => {
      await recordsLinkOutputs(make)
    })

    it('starts a sandbox ahead of its action when warmed (once per profile), and the action runs in it', async () => {
      await withSandbox(make, async (s) => {
        const sandboxes = backend.name === 'docker' ? () => ourContainers().length : ourBwraps
        assert.equal(sandboxes(), 0)
        const action = spec(sh('echo warm'))
        s.warm!(action)
        s.warm!(action)
        for (let i = 0; i < 200 && sandboxes() === 0; i++) await delay(50)
        const started = sandboxes()
        assert.ok(started > 0, 'a sandbox was started before any action ran')
        const r = await s.run(action)
        assert.equal(r.exitCode, 0, r.stderr.toString())
        assert.equal(r.stdout.toString(), 'warm\n')
        assert.equal(sandboxes(), started, 'the action ran in the warmed sandbox; no other was started')
      })
    })

    it('cannot connect to a listener on the host', async () => {
      const server = createServer((c) => c.end('hello\n'))
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
      const port = (server.address() as { port: number }).port
      try {
        await withSandbox(make, async (s) => {
          const probe = `exec 3<>/dev/tcp/127.0.0.1/${port} && head -1 <&3`
          const r = await s.run(spec(['bash', '-c', probe]))
          assert.notEqual(r.exitCode, 0, `connected: ${r.stdout.toString()}`)
          assert.match(r.stderr.toString(), /Connection refused|Network is unreachable|Cannot assign/)
          // The same probe with the network capability reaches it: the test can tell the two apart.
          const open = await s.run(spec(['bash', '-c', probe], { caps: { network: true } }))
          assert.equal(open.stdout.toString(), 'hello\n', open.stderr.toString())
        })
      } finally {
        server.close()
      }
    })

    it('cannot read an undeclared file of the source tree, even by absolute path', async () => {
      await withSandbox(make, async (s, _cas, dir) => {
        const secret = join(dir, 'project', 'undeclared.h')
        await mkdir(join(dir, 'project'), { recursive: true })
        await writeFile(secret, '#define SECRET 1\n')
        const r = await s.run(spec(sh(`cat ${secret}`)))
        assert.notEqual(r.exitCode, 0)
        assert.match(r.stderr.toString(), /No such file or directory/)
        // The local backend, for contrast, does not isolate: the same read succeeds there.
        await withSandbox(createLocalSandbox, async (local) => {
          const l = await local.run(spec(sh(`cat ${secret}`)))
          assert.equal(l.stdout.toString(), '#define SECRET 1\n')
        })
      })
    })

    it('cannot write outside its folder and /tmp, nor to its inputs', async () => {
      await withSandbox(make, async (s, cas) => {
        const src = await cas.putBytes('data\n')
        const input: SandboxInput = { path: 'in.txt', digest: src.digest, executable: false }
        const r = await s.run(spec(sh('echo x > /usr/evil; echo x > /evil; echo x > in.txt; echo ok > /tmp/t && cat /tmp/t'), { inputs: [input] }))
        const err = r.stderr.toString()
        assert.match(err, /\/usr\/evil: (Read-only file system|Permission denied)/)
        assert.match(err, /\/evil: (Read-only file system|Permission denied)/)
        assert.match(err, /in\.txt: Permission denied/)
        assert.equal(r.stdout.toString(), 'ok\n', 'its private /tmp is writable')
        assert.equal((await cas.getBytes(src.digest)).toString(), 'data\n', 'the input blob is intact')
      })
    })

    it('cannot make its inputs writable in a sealed store (a worker run as root); an input it could change is caught after the run', { skip: process.getuid?.() !== 0 && 'a sealed store needs root' }, async () => {
      const tamper = sh('chmod u+w in.txt; echo x >> in.txt; echo done')
      await withSandbox(
        make,
        async (s, cas) => {
          const src = await cas.putBytes('data\n')
          const r = await s.run(spec(tamper, { inputs: [{ path: 'in.txt', digest: src.digest, executable: false }] }))
          assert.match(r.stderr.toString(), /chmod: .*in\.txt.*Operation not permitted/)
          assert.match(r.stderr.toString(), /in\.txt: Permission denied/)
          assert.equal(r.stdout.toString(), 'done\n')
          assert.equal((await cas.getBytes(src.digest)).toString(), 'data\n', 'the input blob is intact')
        },
        { sealed: true },
      )
      await withSandbox(make, async (s, cas) => {
        const src = await cas.putBytes('data\n')
        const run = s.run(spec(tamper, { inputs: [{ path: 'in.txt', digest: src.digest, executable: false }] }))
        if (backend.name === 'bwrap') {
          // Inside its user namespace the action is the owner of a blob owned by bldr's root: it can chmod and write it.
          await assert.rejects(run, /wrote to its input in\.txt/)
          await assert.rejects(cas.getBytes(src.digest), /blake3/, 'the written blob no longer passes its check and is removed')
        } else {
          // Docker runs the action as another user than the blob's owner.
          assert.match((await run).stderr.toString(), /Operation not permitted/)
          assert.equal((await cas.getBytes(src.digest)).toString(), 'data\n')
        }
      })
    })

    it('kills an action past its timeout and says so', async () => {
      await withSandbox(make, async (s) => {
        const t0 = performance.now()
        const r = await s.run(spec(sh('sleep 30'), { timeoutMs: 300 }))
        assert.equal(r.timedOut, true)
        assert.ok(performance.now() - t0 < 10_000)
      })
    })

    it('kills an action past its memory limit and reports it as such', async () => {
      await withSandbox(make, async (s) => {
        const limit = 64 * 1024 * 1024
        const over = await s.run(spec(allocate(256), { caps: { maxMemoryBytes: limit } }))
        assert.notEqual(over.exitCode, 0)
        assert.equal(over.oomKilled, true, `not reported as a memory kill: exit ${over.exitCode} signal ${over.signal} ${over.stderr.toString()}`)
        // Under the limit the same program runs: the limit, not the program, killed it.
        const under = await s.run(spec(allocate(16), { caps: { maxMemoryBytes: limit } }))
        assert.equal(under.exitCode, 0, under.stderr.toString())
        assert.equal(under.stdout.toString(), `${16 * 1024 * 1024}\n`)
        assert.ok(!under.oomKilled)
      })
    })

    it('reports the CPU time an action used, not its wall time', async () => {
      await withSandbox(make, async (s) => {
        const busy = await s.run(spec(sh('i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done')))
        assert.equal(busy.exitCode, 0, busy.stderr.toString())
        assert.ok(busy.cpuMs !== undefined && busy.cpuMs >= 100, `busy: ${busy.cpuMs} ms of CPU in ${busy.durationMs} ms`)
        assert.ok(busy.cpuMs <= busy.durationMs * 1.2 + 20, `busy: ${busy.cpuMs} ms of CPU in ${busy.durationMs} ms`)
        const idle = await s.run(spec(sh('sleep 0.3')))
        assert.ok(idle.cpuMs !== undefined && idle.cpuMs < 100 && idle.durationMs >= 300, `idle: ${idle.cpuMs} ms of CPU in ${idle.durationMs} ms`)
      })
    })

    it('refuses a capability path it cannot provide, naming it', async () => {
      await withSandbox(make, async (s) => {
        await assert.rejects(s.run(spec(sh('true'), { caps: { readPaths: ['relative/path'] } })), /capability path "relative\/path" must be absolute/)
      })
    })

    it('builds the example with outputs byte-identical to the local backend', async () => {
      await withProject(copyExample(), async (a) =>
        withProject(copyExample(), async (b) => {
          const r = await runCli(['build', '-C', a, '--sandbox', backend.name])
          assert.equal(r.code, 0, r.stderr)
          assert.match(r.stderr, new RegExp(`sandbox ${backend.name}: each action in`))
          assert.equal((await runCli(['build', '-C', b])).code, 0)
          const [x, y] = await Promise.all([snapshotFiles(a, 'bldr-out'), snapshotFiles(b, 'bldr-out')])
          assert.deepEqual([...x.keys()].sort(), [...y.keys()].sort())
          for (const [path, bytes] of x) assert.ok(bytes.equals(y.get(path)!), `${path} differs`)
          assert.ok((await readFile(join(a, 'bldr-out', 'bin', 'calc'))).length > 0)
        }),
      )
    })
  })
}

describe('local backend', () => {
  it('reads a depfile it is told to read instead of storing it; a large one, or one kept, is an output', async () => {
    await readsItsDepfile(createLocalSandbox)
  })

  it('records an output that is a link to another output or an input as that link; one leading elsewhere is missing', async () => {
    await recordsLinkOutputs(createLocalSandbox)
  })

  it('refuses a limit it cannot enforce, naming it, instead of running without it', async () => {
    await withSandbox(createLocalSandbox, async (s) => {
      await assert.rejects(s.run(spec(sh('true'), { caps: { maxCpu: 1 } })), /sandbox local cannot enforce maxCpu/)
      await assert.rejects(s.run(spec(sh('true'), { caps: { maxMemoryBytes: 1 << 26 } })), /sandbox local cannot enforce maxMemory/)
    })
  })

  it('run by root, its actions have no capabilities: a source staged for them cannot be changed; an input they own is caught after the run', { skip: process.getuid?.() !== 0 && 'needs root' }, async () => {
    await withSandbox(createLocalSandbox, async (s, cas, dir) => {
      await writeFile(join(dir, 'src.txt'), 'source\n')
      const src = await cas.putFile(join(dir, 'src.txt'), { seal: true })
      const ownBlob = await cas.putBytes('generated\n')
      const tamper = (file: string) => sh(`grep CapEff /proc/self/status; chmod u+w ${file}; echo x >> ${file}; echo done`)
      const r = await s.run(spec(tamper('src.txt'), { inputs: [{ path: 'src.txt', digest: src.digest, executable: false }] }))
      assert.match(r.stdout.toString(), /^CapEff:\s+0+\ndone\n$/)
      assert.match(r.stderr.toString(), /chmod: .*src\.txt.*Operation not permitted/)
      assert.match(r.stderr.toString(), /src\.txt: Permission denied/)
      assert.equal((await cas.getBytes(src.digest)).toString(), 'source\n', 'the source blob is intact')
      // A blob root owns (an output, as a later action's input) root may still make writable: the check after the run finds it.
      await assert.rejects(s.run(spec(tamper('gen.txt'), { inputs: [{ path: 'gen.txt', digest: ownBlob.digest, executable: false }] })), /wrote to its input gen\.txt/)
    })
  })
})

/** The ids of running containers this test process's sandboxes made. */
function ourContainers(): string[] {
  const out = execFileSync('docker', ['ps', '-q', '--no-trunc', '--filter', `label=dev.bldr.owner=${hostname()}:${process.pid}`], { encoding: 'utf8' })
  return out.split('\n').filter(Boolean)
}

/** The runners a warm sandbox can start (warm-pool.ts): bldr-spawn where it was built, and the Node one. */
const RUNNERS: RunnerKind[] = existsSync(NATIVE_RUNNER) ? ['native', 'node'] : ['node']

for (const backend of ISOLATING) {
  for (const runner of RUNNERS) {
    describe(`sandbox ${backend.name}, ${runner} runner`, { timeout: 120_000 }, () => {
      const make: MakeSandbox = (init) => (backend.name === 'bwrap' ? createBwrapSandbox({ ...init, slots: 1, runner }) : createDockerSandbox({ ...init, slots: 1, runner }))

      it('runs one action after another in the same sandbox: nothing of the last one is left in /tmp or running, its folder under /tmp is kept, and its CPU time is counted', async () => {
        await withSandbox(make, async (s, cas) => {
          const src = await cas.putBytes('kept\n')
          // The action's folder shown under /tmp (a project there, as the benchmarks have it): emptying /tmp must leave it.
          const where = { execRoot: '/tmp/bldr-proj/root', inputs: [{ path: 'in.txt', digest: src.digest, executable: false }], caps: { writeTmp: true } }
          const first = await s.run(spec(sh('echo secret > /tmp/left; mkdir -p /tmp/bldr-proj/other; (sleep 300 &); setsid sleep 301 >/dev/null 2>&1 & i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done; echo done'), where))
          assert.equal(first.exitCode, 0, first.stderr.toString())
          assert.ok(first.durationMs < 5_000, `the action was held open by what it left running (${first.durationMs} ms)`)
          assert.ok(first.cpuMs !== undefined && first.cpuMs >= 10, `its CPU time is counted: ${first.cpuMs}`)
          const second = await s.run(spec(sh('ls -A /tmp /tmp/bldr-proj; cat in.txt; cat /proc/[0-9]*/cmdline | tr "\\0" " "'), where))
          assert.equal(second.exitCode, 0, second.stderr.toString())
          const out = second.stdout.toString()
          assert.match(out, /^\/tmp:\nbldr-proj\n\n\/tmp\/bldr-proj:\nroot\nkept\n/, `only the action's folder is left in /tmp, with its input: ${out}`)
          assert.doesNotMatch(out, /sleep 30/, 'what the last action left running is gone')
        })
      })
    })
  }
}

describe('warm sandboxes: a native runner that cannot start', { timeout: 60_000 }, () => {
  it('is replaced by the Node runner, with a warning, and the action runs', async () => {
    const lines: string[] = []
    const log = pino({ level: 'warn' }, { write: (line: string) => void lines.push(line) })
    const dir = await mkdtemp(join(tmpdir(), 'bldr-runner-'))
    const foreign = join(dir, 'bldr-spawn')
    await writeFile(foreign, 'not a program\n', { mode: 0o755 })
    try {
      const make: MakeSandbox = (init) => createBwrapSandbox({ ...init, slots: 1, nativeProgram: foreign, log })
      await withSandbox(make, async (s) => {
        const r = await s.run(spec(sh('echo ran')))
        assert.equal(r.exitCode, 0, r.stderr.toString())
        assert.equal(r.stdout.toString(), 'ran\n')
        assert.ok(lines.some((l) => /the native runner could not start in a sandbox; sandboxes run the Node one/.test(l)), lines.join('\n'))
        const again = await s.run(spec(sh('echo again')))
        assert.equal(again.stdout.toString(), 'again\n')
        assert.equal(lines.filter((l) => /native runner/.test(l)).length, 1, 'warned once: the pool keeps the Node runner')
      })
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})

describe('docker warm containers (real Docker daemon)', { timeout: 120_000 }, () => {
  const docker: MakeSandbox = (init) => createDockerSandbox({ ...init, slots: 1 })

  it('runs one action after another in the same container, with nothing of the last one left', async () => {
    await withSandbox(docker, async (s) => {
      // Leaves a file in /tmp, a process in its group holding stdout, and one that left the group.
      const first = await s.run(spec(sh('echo secret > /tmp/left; (sleep 300 &); setsid sleep 301 >/dev/null 2>&1 & echo done')))
      assert.equal(first.exitCode, 0, first.stderr.toString())
      assert.equal(first.timedOut, false)
      assert.ok(first.durationMs < 5_000, `the action was held open by what it left running (${first.durationMs} ms)`)
      const [containers] = [ourContainers()]
      assert.equal(containers.length, 1)
      const second = await s.run(spec(sh('ls /proc | grep -c "^[0-9]"; cat /proc/[0-9]*/cmdline | tr "\\0" " "; echo; ls -A /tmp')))
      assert.equal(second.exitCode, 0, second.stderr.toString())
      assert.deepEqual(ourContainers(), containers, 'the same warm container ran both')
      const lines = second.stdout.toString().split('\n')
      assert.ok(!lines.includes('left'), `a file of the last action is visible: ${second.stdout.toString()}`)
      // pid 1 (init), the runner, the shell, ls and grep: the sleeps of the first action are gone.
      assert.ok(Number(lines[0]) <= 5, `leftover processes: ${second.stdout.toString()}`)
      assert.doesNotMatch(lines[1] ?? '', /sleep 30/)
    })
  })

  it('replaces a container that crashed, and the next action still succeeds', async () => {
    await withSandbox(docker, async (s) => {
      assert.equal((await s.run(spec(['true']))).exitCode, 0)
      const [before] = ourContainers()
      assert.ok(before)
      // Killed mid-action: that action fails as a sandbox failure, not as the action's.
      const running = s.run(spec(sh('echo started; sleep 30')))
      await waitFor(() => execFileSync('docker', ['top', before], { encoding: 'utf8' }).includes('sleep 30'), 10_000)
      execFileSync('docker', ['kill', before])
      await assert.rejects(running, (err: Error) => err.name === 'SandboxError' && /sandbox .* (stopped|runner exited)/.test(err.message))
      const next = await s.run(spec(sh('echo fine')))
      assert.equal(next.stdout.toString(), 'fine\n', next.stderr.toString())
      const [after] = ourContainers()
      assert.ok(after && after !== before, 'a new container ran it')
      // Killed between actions: the next action finds it dead and runs in a new one.
      execFileSync('docker', ['kill', after])
      await waitFor(() => !ourContainers().includes(after), 10_000)
      const third = await s.run(spec(sh('echo again')))
      assert.equal(third.stdout.toString(), 'again\n', third.stderr.toString())
    })
  })

  it('replaces the container after a failed action', async () => {
    await withSandbox(docker, async (s) => {
      // A container's hostname is its id.
      const failed = await s.run(spec(sh('cat /etc/hostname; exit 3')))
      assert.equal(failed.exitCode, 3)
      const ok = await s.run(spec(sh('cat /etc/hostname')))
      const again = await s.run(spec(sh('cat /etc/hostname')))
      assert.equal(ok.exitCode, 0)
      assert.notEqual(ok.stdout.toString(), failed.stdout.toString(), 'a new container after the failure')
      assert.equal(again.stdout.toString(), ok.stdout.toString(), 'but the same one after a success')
      assert.match(ok.stdout.toString(), /^[0-9a-f]{12}\n$/)
    })
  })

  it('removes every container when closed, and says clearly when no daemon answers', async () => {
    await withSandbox(docker, async (s, _cas, dir) => {
      assert.equal((await s.run(spec(['true']))).exitCode, 0)
      assert.equal(ourContainers().length, 1)
      await s.close()
      assert.deepEqual(ourContainers(), [])
      assert.deepEqual(await readdir(join(dir, 'scratch')), [], 'no folder left behind (scratch, runner files)')
    })
    await withProject(copyExample(), async (dir) => {
      const r = await runCli(['build', '-C', dir, '--sandbox', 'docker'], { env: { DOCKER_HOST: 'unix:///nonexistent/docker.sock' } })
      assert.equal(r.code, 1)
      assert.match(r.stderr, /cannot reach the Docker daemon at \/nonexistent\/docker\.sock: .*\(start dockerd, or point DOCKER_HOST at one\)/)
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr)
    })
  })
})

/** Poll `check` (a docker command: no event to wait on) every 20 ms until it holds, up to `deadlineMs`. */
async function waitFor(check: () => boolean, deadlineMs: number): Promise<void> {
  const end = performance.now() + deadlineMs
  while (!check()) {
    if (performance.now() > end) throw new Error(`condition not met within ${deadlineMs} ms`)
    await delay(20)
  }
}
