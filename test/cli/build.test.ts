import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdir, mkdtemp, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { BLDR_BIN, BLDR_NODE_ENTRY, makeProject, runCli, waitForFile, withProject } from '../helpers.js'
import { LOCAL_ISOLATION_NOTE, LOCAL_ROOT_CAPABLE_NOTE, LOCAL_ROOT_NOTE } from '../../sandbox/local.js'
import { splitSlots } from '../../src/cli/build-command.js'

/** A preload that says on stderr when bldr's stdout backs up (see the fixture). */
const STDOUT_PRELOAD = new URL('./fixtures/stdout-backed-up.js', import.meta.url).href
const STDOUT_BACKED_UP = 'bldr-test: stdout backed up'

describe('bldr build (as a process)', { timeout: 60_000 }, () => {
  it('refuses a bad BUILD file with one line per problem and exit 2', async () => {
    await withProject(makeProject({
      'BUILD.yaml': 'actions:\n  gen:\n    command: ["true"]\n    inputs: [missing.txt]\n  other:\n    command: ["true"]\n    outputs: [../x]\n',
    }), async (dir) => {
      const r = await runCli(['build'], { cwd: dir })
      assert.equal(r.code, 2)
      assert.deepEqual(r.stderr.trim().split('\n'), [
        'bldr: BUILD.yaml:7:15 (actions.other.outputs[0]): output path "../x" contains ".."; paths must stay inside the project root',
        'bldr: BUILD.yaml:4:14 (actions.gen.inputs[0]): input file "missing.txt" does not exist and no action produces it',
      ])
      assert.equal(r.stdout, '')

      await writeFile(join(dir, 'BUILD.yaml'), 'actions:\n  gen:\n    command: ["true"]\n    ouputs: [x.txt]\n')
      const typo = await runCli(['build'], { cwd: dir })
      assert.equal(typo.code, 2)
      assert.equal(
        typo.stderr.trim(),
        'bldr: BUILD.yaml:4:5 (actions.gen.ouputs): unknown key "ouputs" (did you mean "outputs"?); allowed keys: command, inputs, outputs, description, env, timeout, capabilities, flaky',
      )
    })
  })

  it("says what the local sandbox's actions can do as root: no capabilities with setpriv, every one where setpriv is missing", async () => {
    await withProject(makeProject({ 'BUILD.yaml': 'actions:\n  one:\n    command: [sh, -c, "echo 1 > one.txt"]\n    outputs: [one.txt]\n' }), async (dir) => {
      const note = (stderr: string): string | undefined => stderr.split('\n').find((l) => l.startsWith('bldr: sandbox local:'))
      const root = process.getuid?.() === 0
      const withSetpriv = await runCli(['build', '-C', dir])
      assert.equal(withSetpriv.code, 0, withSetpriv.stderr)
      assert.equal(note(withSetpriv.stderr), `bldr: ${LOCAL_ISOLATION_NOTE}${root ? `; ${LOCAL_ROOT_NOTE}` : ''}`)
      // A PATH with sh (and node, which bin/bldr runs) and no setpriv: root's actions keep their capabilities, and the note says so.
      const bin = join(dir, 'bin-without-setpriv')
      await mkdir(bin)
      await symlink('/bin/sh', join(bin, 'sh'))
      await symlink(process.execPath, join(bin, 'node'))
      await rm(join(dir, 'one.txt'))
      const without = await runCli(['build', '-C', dir], { env: { PATH: bin } })
      assert.equal(without.code, 0, without.stderr)
      assert.equal(note(without.stderr), `bldr: ${LOCAL_ISOLATION_NOTE}${root ? `; ${LOCAL_ROOT_CAPABLE_NOTE}` : ''}`)
    })
  })

  it('reports a failed action with its command, exit code and output tail; exit 1', async () => {
    await withProject(makeProject({
      'BUILD.yaml': 'actions:\n  broken:\n    command: [sh, -c, "echo the compiler said no >&2; exit 4"]\n    outputs: [x]\n',
    }), async (dir) => {
      const r = await runCli(['build', '-C', dir])
      assert.equal(r.code, 1)
      assert.match(r.stdout, /^FAILED: broken: exit 4\n {2}\$ sh -c 'echo the compiler said no >&2; exit 4'\n {2}the compiler said no\n/m)
      assert.match(r.stdout, /^bldr: build FAILED after [\d.]+ s: 0 executed, 0 cached, 1 failed/m)

      const kept = await runCli(['build', '-C', dir, '--keep-failed'])
      assert.equal(kept.code, 1)
      const folder = /its folder is kept at (\S+)/.exec(kept.stdout)?.[1]
      assert.ok(folder, `no kept folder in:\n${kept.stdout}`)
      assert.ok(folder.startsWith(join(dir, '.bldr', 'scratch')))
      assert.ok((await stat(folder)).isDirectory())
    })
  })

  it('prints plain progress lines off a terminal, a summary, and --stats JSON', async () => {
    await withProject(makeProject({
      'BUILD.yaml': `
actions:
  one:
    command: [sh, -c, "echo 1 > one.txt"]
    outputs: [one.txt]
  two:
    description: make two from one
    command: [sh, -c, "cat one.txt one.txt > two.txt"]
    inputs: [one.txt]
    outputs: [two.txt]
`,
    }), async (dir) => {
      const r = await runCli(['build', '-C', dir, '--stats', join(dir, 'stats.json')])
      assert.equal(r.code, 0, r.stderr)
      assert.match(r.stdout, /^\[1\/2\] one \([\d.]+ s\)\n\[2\/2\] make two from one \([\d.]+ s\)\n/)
      assert.match(r.stdout, /bldr: built 2 actions in [\d.]+ s: 2 executed, 0 cached, 0 failed; critical path [\d.]+ s over 2 actions \(one → two\)/)
      const stats = JSON.parse(await readFile(join(dir, 'stats.json'), 'utf8'))
      assert.equal(stats.ok, true)
      assert.equal(stats.executed, 2)
      assert.equal(stats.cached, 0)
      assert.equal(stats.failed, 0)
      assert.ok(stats.wallTimeMs > 0)
      assert.deepEqual(stats.criticalPath.actions, ['one', 'two'])
      assert.equal(stats.actions.length, 2)

      const again = await runCli(['build', '-C', dir, '--stats', join(dir, 'stats.json')])
      assert.equal(again.code, 0)
      const stats2 = JSON.parse(await readFile(join(dir, 'stats.json'), 'utf8'))
      assert.equal(stats2.executed, 0)
      assert.equal(stats2.cached, 2)
    })
  })

  it('a program the command starts is part of its key: changing it outside the project reruns the action, restoring nothing stale', async () => {
    const tools = await mkdtemp(join(tmpdir(), 'bldr-tool-'))
    const tool = join(tools, 'stamp')
    const writeTool = (text: string) => writeFile(tool, `#!/bin/sh\necho ${text} > "$1"\n`, { mode: 0o755 })
    try {
      await writeTool('compiler-1')
      await withProject(makeProject({ 'BUILD.yaml': `actions:\n  stamp:\n    command: [${tool}, out.txt]\n    outputs: [out.txt]\n` }), async (dir) => {
        const stats = async (): Promise<{ executed: number; cached: number }> => JSON.parse(await readFile(join(dir, 'stats.json'), 'utf8'))
        const build = async () => {
          const r = await runCli(['build', '-C', dir, '--stats', join(dir, 'stats.json')])
          assert.equal(r.code, 0, r.stderr)
          const { executed, cached } = await stats()
          return { executed, cached, out: await readFile(join(dir, 'out.txt'), 'utf8') }
        }
        assert.deepEqual(await build(), { executed: 1, cached: 0, out: 'compiler-1\n' })
        assert.deepEqual(await build(), { executed: 0, cached: 1, out: 'compiler-1\n' }, 'unchanged: cached')
        await writeTool('compiler-2')
        assert.deepEqual(await build(), { executed: 1, cached: 0, out: 'compiler-2\n' }, 'the tool changed: run again')
      })
    } finally {
      await rm(tools, { recursive: true, force: true })
    }
  })

  it('an action marked flaky that exits non-zero runs again (up to 3 runs); one not marked fails at once', async () => {
    // Each run bumps a counter outside the project (the local sandbox does not isolate); the command succeeds from run `ok` on.
    const counter = join(tmpdir(), `bldr-flaky-${process.pid}-${Date.now()}`)
    const action = (name: string, ok: number, flaky: boolean): string =>
      `  ${name}:\n    command: [sh, -c, "n=$(cat ${counter}.${name} 2>/dev/null || echo 0); n=$((n+1)); echo $n > ${counter}.${name}; [ $n -ge ${ok} ] || { echo run $n failed >&2; exit 3; }; echo ok > ${name}.txt"]\n    outputs: [${name}.txt]\n${flaky ? '    flaky: true\n' : ''}`
    const runs = async (name: string): Promise<number> => Number(await readFile(`${counter}.${name}`, 'utf8'))
    try {
      await withProject(makeProject({ 'BUILD.yaml': `actions:\n${action('second', 2, true)}${action('never', 9, true)}${action('plain', 2, false)}` }), async (dir) => {
        const ok = await runCli(['build', '-C', dir, 'second'])
        assert.equal(ok.code, 0, ok.stdout + ok.stderr)
        assert.match(ok.stdout, /^second: exit 3; it is marked flaky, so it runs again \(run 2 of 3\)$/m)
        assert.equal(await runs('second'), 2)
        const never = await runCli(['build', '-C', dir, 'never'])
        assert.equal(never.code, 1)
        assert.equal(await runs('never'), 3, 'three runs, then the failure counts')
        assert.match(never.stdout, /^FAILED: never: exit 3\n.*\n {2}run 3 failed$/m)
        const plain = await runCli(['build', '-C', dir, 'plain'])
        assert.equal(plain.code, 1)
        assert.equal(await runs('plain'), 1, 'an action not marked flaky is not run again')
        assert.doesNotMatch(plain.stdout, /runs again/)
      })
    } finally {
      for (const n of ['second', 'never', 'plain']) await rm(`${counter}.${n}`, { force: true })
    }
  })

  it('builds only the named target and rejects an unknown one with a suggestion', async () => {
    await withProject(makeProject({
      'BUILD.yaml': 'actions:\n  alpha:\n    command: [sh, -c, "echo a > a"]\n    outputs: [a]\n  beta:\n    command: [sh, -c, "echo b > b"]\n    outputs: [b]\n',
    }), async (dir) => {
      const r = await runCli(['build', 'alpha'], { cwd: dir })
      assert.equal(r.code, 0)
      assert.match(r.stdout, /built 1 actions/)
      const bad = await runCli(['build', 'alpah'], { cwd: dir })
      assert.equal(bad.code, 2)
      assert.equal(bad.stderr.trim().split('\n').pop(), 'bldr: unknown target "alpah" (did you mean "alpha"?); targets: alpha, beta')
    })
  })

  it('writes all of a long listing to a pipe whose reader starts late', async () => {
    const actions = Array.from({ length: 1000 }, (_, i) => `  step_${i}:\n    command: [sh, -c, "echo ${i} > out/s${i}.txt"]\n    outputs: [out/s${i}.txt]\n`).join('')
    await withProject(makeProject({ 'BUILD.yaml': `actions:\n${actions}` }), async (dir) => {
      const child = spawn(process.execPath, ['--import', STDOUT_PRELOAD, BLDR_NODE_ENTRY, 'graph', '--format', 'json'], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, BLDR_TEST_BACKED_UP: STDOUT_BACKED_UP } })
      const closed = new Promise<number | null>((resolve) => child.once('close', resolve))
      // Nothing is read until bldr has handed over more than the pipe takes (the preload says
      // so on stderr), or until it exits: from then on it must wait for the pipe, not drop what
      // the pipe could not take and exit.
      child.stdout.pause()
      let stderr = ''
      await new Promise<void>((resolve, reject) => {
        const deadline = setTimeout(() => reject(new Error(`bldr never backed up its stdout:\n${stderr}`)), 30_000)
        const done = (): void => {
          clearTimeout(deadline)
          resolve()
        }
        child.stderr.on('data', (b: Buffer) => {
          stderr += b.toString()
          if (stderr.includes(STDOUT_BACKED_UP)) done()
        })
        child.once('exit', done)
      })
      const chunks: Buffer[] = []
      child.stdout.on('data', (c: Buffer) => chunks.push(c))
      child.stdout.resume()
      assert.equal(await closed, 0)
      const text = Buffer.concat(chunks).toString('utf8')
      assert.ok(text.length > 128 * 1024, `the listing is longer than two pipe buffers (${text.length} bytes)`)
      assert.equal((JSON.parse(text) as unknown[]).length, 1000)
    })
  })

  it('Ctrl-C stops the build, kills running actions, exits 130', async () => {
    const marker = join(tmpdir(), `bldr-test-marker-${process.pid}-${Date.now()}`)
    const { dir, cleanup } = await makeProject({
      'BUILD.yaml': `
actions:
  slow:
    command: [sh, -c, 'echo $$ > "$MARKER.tmp" && mv "$MARKER.tmp" "$MARKER" && exec sleep 60']
    outputs: [never]
    env: { MARKER: "${marker}" }
`,
    })
    try {
      const child = spawn(BLDR_BIN, ['build', '-C', dir], { stdio: ['ignore', 'pipe', 'pipe'] })
      let stdout = ''
      child.stdout.on('data', (b: Buffer) => (stdout += b.toString()))
      const exited = new Promise<number | null>((resolve) => child.on('close', resolve))
      const pid = Number((await waitForFile(marker, 20_000)).trim())
      assert.doesNotThrow(() => process.kill(pid, 0), 'the action runs')
      child.kill('SIGINT')
      assert.equal(await exited, 130)
      assert.match(stdout, /^bldr: interrupted after [\d.]+ s: 0 executed, 0 cached, 0 failed, 1 interrupted/m)
      assert.throws(() => process.kill(pid, 0), /ESRCH/, 'the action was killed')
    } finally {
      await rm(marker, { force: true })
      await cleanup()
    }
  })

  const usageCases: [string, string[], RegExp][] = [
    ['an unknown flag', ['build', '--keep-goign'], /^bldr: build: unknown option --keep-goign \(did you mean "--keep-going"\?\); see bldr build --help$/],
    ['a bad --jobs', ['build', '-j', '0'], /^bldr: invalid --jobs: must be an integer >= 1 \(got "0"\)$/],
    ['a bad --sandbox', ['build', '--sandbox', 'lokal'], /^bldr: invalid --sandbox: must be one of docker, bwrap, local \(got "lokal"\) \(did you mean "local"\?\)$/],
    ['an unknown command', ['biuld'], /^bldr: unknown command "biuld" \(did you mean "build"\?\); see bldr --help$/],
    ['no BUILD file', ['build', '-C', '/'], /^bldr: no build file at \/BUILD\.yaml \(run in a folder with BUILD\.yaml, or pass -C DIR or -f FILE\)$/],
  ]
  for (const [what, args, re] of usageCases) {
    it(`exits 2 on ${what}`, async () => {
      const r = await runCli(args)
      assert.equal(r.code, 2)
      assert.match(r.stderr.trim(), re)
    })
  }

  it('--help lists every build option', async () => {
    const r = await runCli(['build', '--help'])
    assert.equal(r.code, 0)
    for (const flag of ['--directory', '--file', '--jobs', '--keep-going', '--sandbox', '--stats', '--keep-failed', '--log-level', '--distributed', '--coordinator', '--listen', '--local-workers', '--seed-policy', '--seed-window', '--strategy', '--heartbeat-interval', '--worker-timeout']) {
      assert.ok(r.stdout.includes(flag), `--help does not mention ${flag}`)
    }
    // Every option's description is apart from the option (a long one starts on the next line).
    for (const command of ['build', 'worker', 'coordinator']) {
      const help = command === 'build' ? r.stdout : (await runCli([command, '--help'])).stdout
      assert.doesNotMatch(help, /--[\w-]+ [A-Z]+[a-z]/, `bldr ${command} --help runs an option into its description`)
    }
    const top = await runCli(['--help'])
    assert.equal(top.code, 0)
    assert.match(top.stdout, /^Usage: bldr <command>/)
    assert.match((await runCli(['--version'])).stdout, /^bldr \d+\.\d+\.\d+\n$/)
  })
})

describe('splitting -j among local workers', () => {
  it('splits as evenly as it goes, never more workers than slots', () => {
    const cases: [jobs: number, workers: number, slots: number[]][] = [
      [2, 2, [1, 1]],
      [3, 2, [2, 1]],
      [8, 3, [3, 3, 2]],
      [4, 1, [4]],
      [1, 2, [1]],
      [2, 5, [1, 1]],
    ]
    for (const [jobs, workers, slots] of cases) assert.deepEqual(splitSlots(jobs, workers), slots, `-j${jobs} on ${workers} workers`)
  })
})
