/**
 * What each backend isolates, with real processes: bubblewrap for real (it is
 * installed by .ci/run), and what the local backend refuses.
 */
import assert from 'node:assert/strict'
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { createBlake3Hasher } from '../../src/cas/hasher.js'
import { openCasStore, type CasStore } from '../../src/cas/store.js'
import { DEFAULT_CAPABILITIES, HERMETIC_ENV, type Capabilities } from '../../src/graph/action.js'
import { BWRAP_EXEC_ROOT, createBwrapSandbox } from '../../sandbox/bwrap.js'
import { createLocalSandbox } from '../../sandbox/local.js'
import type { Sandbox, SandboxInput, SandboxSpec } from '../../sandbox/types.js'
import { copyExample, runCli, snapshotFiles, withProject } from '../helpers.js'

async function withSandbox(make: (init: { cas: CasStore; scratchRoot: string; slots: number }) => Sandbox, fn: (s: Sandbox, cas: CasStore, dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'bldr-isolation-'))
  const cas = await openCasStore(join(dir, 'cas'), await createBlake3Hasher())
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

describe('sandbox bwrap (real bubblewrap)', { timeout: 60_000 }, () => {
  const bwrap = (init: { cas: CasStore; scratchRoot: string; slots: number }): Sandbox => createBwrapSandbox(init)

  it('runs in a fixed exec root with only its declared inputs, and stores its outputs', async () => {
    await withSandbox(bwrap, async (s, cas) => {
      const src = await cas.putBytes('int answer(void) { return 42; }\n')
      const input: SandboxInput = { path: 'src/a.c', digest: src.digest, executable: false }
      const r = await s.run(spec(sh('pwd; ls -A; cc -c src/a.c -o out/a.o'), { inputs: [input], outputs: ['out/a.o'] }))
      assert.equal(r.exitCode, 0, r.stderr.toString())
      assert.equal(r.stdout.toString(), `${BWRAP_EXEC_ROOT}\nout\nsrc\n`)
      assert.equal(r.outputs.length, 1)
      assert.ok(r.outputs[0]!.size > 0)
    })
  })

  it('cannot connect to a listener on the host', async () => {
    const server = createServer((c) => c.end('hello\n'))
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    const port = (server.address() as { port: number }).port
    try {
      await withSandbox(bwrap, async (s) => {
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
    await withSandbox(bwrap, async (s, _cas, dir) => {
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
    await withSandbox(bwrap, async (s, cas) => {
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

  it('kills an action past its timeout and says so', async () => {
    await withSandbox(bwrap, async (s) => {
      const t0 = performance.now()
      const r = await s.run(spec(sh('sleep 30'), { timeoutMs: 300 }))
      assert.equal(r.timedOut, true)
      assert.ok(performance.now() - t0 < 10_000)
    })
  })

  it('refuses a limit it cannot enforce, naming it, instead of running without it', async () => {
    await withSandbox(bwrap, async (s) => {
      await assert.rejects(s.run(spec(sh('true'), { caps: { maxMemoryBytes: 64 * 1024 * 1024 } })), /sandbox bwrap cannot enforce maxMemory .*use --sandbox docker/)
      await assert.rejects(s.run(spec(sh('true'), { caps: { readPaths: ['/no/such/path'] } })), /capability path \/no\/such\/path does not exist/)
    })
    await withSandbox(createLocalSandbox, async (s) => {
      await assert.rejects(s.run(spec(sh('true'), { caps: { maxCpu: 1 } })), /sandbox local cannot enforce maxCpu/)
    })
  })

  it('builds the example with outputs byte-identical to the local backend', async () => {
    await withProject(copyExample(), async (a) =>
      withProject(copyExample(), async (b) => {
        const r = await runCli(['build', '-C', a, '--sandbox', 'bwrap'])
        assert.equal(r.code, 0, r.stderr)
        assert.match(r.stderr, /sandbox bwrap: each action in its own namespaces/)
        assert.equal((await runCli(['build', '-C', b])).code, 0)
        const [x, y] = await Promise.all([snapshotFiles(a, 'bldr-out'), snapshotFiles(b, 'bldr-out')])
        assert.deepEqual([...x.keys()].sort(), [...y.keys()].sort())
        for (const [path, bytes] of x) assert.ok(bytes.equals(y.get(path)!), `${path} differs`)
        assert.ok((await readFile(join(a, 'bldr-out', 'bin', 'calc'))).length > 0)
      }),
    )
  })
})
