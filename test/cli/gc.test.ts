import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { storedBlobs } from '../../src/cas/store.js'
import { makeProject, runCli, withProject } from '../helpers.js'

/** Three actions, each writing `size` bytes made from its input. */
const PROJECT = {
  'BUILD.yaml': ['a', 'b', 'c'].map((n) => `  ${n}:\n    command: [sh, -c, "for i in $(seq 64); do cat ${n}.in; done > ${n}.out"]\n    inputs: [${n}.in]\n    outputs: [${n}.out]\n`).join('').replace(/^/, 'actions:\n'),
  'a.in': 'a'.repeat(1000),
  'b.in': 'b'.repeat(1000),
  'c.in': 'c'.repeat(1000),
}

const blobs = (dir: string): number => storedBlobs(join(dir, '.bldr', 'cas')).length

async function build(dir: string): Promise<{ executed: number; cached: number }> {
  const r = await runCli(['build', '-C', dir, '--stats', join(dir, 'stats.json')])
  assert.equal(r.code, 0, r.stderr)
  const s = JSON.parse(await readFile(join(dir, 'stats.json'), 'utf8')) as { executed: number; cached: number }
  return { executed: s.executed, cached: s.cached }
}

describe('bldr gc', () => {
  it('removes what no cached action names, keeps every current result, and the next build restores them all', async () => {
    await withProject(makeProject(PROJECT), async (dir) => {
      assert.deepEqual(await build(dir), { executed: 3, cached: 0 })
      writeFileSync(join(dir, 'a.in'), 'A'.repeat(1000)) // a's old result is stale now
      assert.deepEqual(await build(dir), { executed: 1, cached: 2 })
      const before = blobs(dir)
      const dry = await runCli(['gc', '-C', dir, '--dry-run'])
      assert.equal(dry.code, 0, dry.stderr)
      assert.match(dry.stdout, /^bldr gc: kept 4 cached actions \(\d+ blobs, [\d.]+ KiB\); would remove 0 cached actions, \d+ blobs/)
      assert.equal(blobs(dir), before, 'a dry run removes nothing')
      const r = await runCli(['gc', '-C', dir])
      assert.equal(r.code, 0, r.stderr)
      assert.ok(blobs(dir) < before, `blobs removed (${before} → ${blobs(dir)})`)
      assert.deepEqual(await build(dir), { executed: 0, cached: 3 }, 'every current result is still cached')
    })
  })

  it('with --max-size keeps the newest results that fit; the oldest are rebuilt when needed', async () => {
    await withProject(makeProject(PROJECT), async (dir) => {
      assert.deepEqual(await build(dir), { executed: 3, cached: 0 })
      writeFileSync(join(dir, 'c.in'), 'C'.repeat(1000))
      assert.deepEqual(await build(dir), { executed: 1, cached: 2 }, 'c is the newest result')
      // Each output is 64 KB: room for one result.
      const r = await runCli(['gc', '-C', dir, '--max-size', '100k'])
      assert.equal(r.code, 0, r.stderr)
      assert.match(r.stdout, /kept 1 cached action /)
      assert.deepEqual(await build(dir), { executed: 2, cached: 1 }, 'a and b rebuilt, c restored')
      assert.equal(await readFile(join(dir, 'c.out'), 'utf8'), 'C'.repeat(64_000))
    })
  })

  it('is refused while a build runs in the folder, and a build while it runs; a dead process\'s mark is ignored', async () => {
    await withProject(makeProject(PROJECT), async (dir) => {
      assert.deepEqual(await build(dir), { executed: 3, cached: 0 })
      const other = spawn('sleep', ['30'])
      try {
        const running = join(dir, '.bldr', 'running')
        mkdirSync(running, { recursive: true })
        writeFileSync(join(running, String(other.pid)), '')
        const gc = await runCli(['gc', '-C', dir])
        assert.equal(gc.code, 1)
        assert.match(gc.stderr, new RegExp(`a build is running in .*\\.bldr \\(pid ${other.pid}\\); collect when it ends`))
        writeFileSync(join(running, `gc-${other.pid}`), '')
        const b = await runCli(['build', '-C', dir])
        assert.equal(b.code, 1)
        assert.match(b.stderr, new RegExp(`bldr gc is collecting in .*\\.bldr \\(pid ${other.pid}\\); build when it ends`))
      } finally {
        other.kill()
        await new Promise((resolve) => other.once('exit', resolve))
      }
      assert.equal((await runCli(['gc', '-C', dir])).code, 0, 'the dead process\'s marks are ignored')
      assert.deepEqual(await build(dir), { executed: 0, cached: 3 })
    })
  })

  it('says what is wrong with its flags or folder (exit 2), and --help is right', async () => {
    await withProject(makeProject(PROJECT), async (dir) => {
      const none = await runCli(['gc', '-C', dir])
      assert.equal(none.code, 2)
      assert.match(none.stderr, /nothing to collect: no \.bldr in /)
      const bad = await runCli(['gc', '-C', dir, '--max-size', 'lots'])
      assert.equal(bad.code, 2)
      assert.match(bad.stderr, /--max-size: not a size: "lots"/)
      const help = await runCli(['gc', '--help'])
      assert.equal(help.code, 0)
      for (const flag of ['--directory', '--max-size', '--dry-run', '--help']) assert.ok(help.stdout.includes(flag), flag)
    })
  })
})
