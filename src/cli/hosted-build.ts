/**
 * The thin client of a hosted build. `bldr build --distributed` on a local
 * mesh first asks the folder's kept mesh (mesh-daemon-serve.ts), if one runs,
 * to run the build in its own process, where bldr's code is loaded and
 * already compiled by V8 from earlier builds; this process only relays the
 * build's output and Ctrl-C. Node's start, loading the build's code and
 * running it cold were ~0.25 s of a 0.6 s incremental build (bench/ninja).
 * The mesh declines a build it would not run as it is (other settings, no
 * local mesh wanted, another hosted build running); this process then builds
 * as without it (build-command.ts), which replaces or shares the mesh.
 */
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { DEFAULT_BUILD_FILE, stateDirOf } from '../graph/paths.js'
import { codeVersion, connectDaemon, daemonFiles, stoppedWith } from '../net/mesh-daemon.js'
import { BUILD_OPTIONS } from './args.js'

/** The exit status of the build the kept local mesh ran for this process, or undefined when none ran it (this process builds). */
export async function hostedBuild(argv: string[]): Promise<number | undefined> {
  if (!argv.includes('--distributed')) return undefined
  // The native thin client asked already (it runs this process when the mesh declined, or is gone).
  if (process.env['BLDR_NOT_HOSTED'] === '1') {
    delete process.env['BLDR_NOT_HOSTED']
    return undefined
  }
  let values: { directory?: string | boolean | undefined; file?: string | boolean | undefined; coordinator?: string | boolean | undefined; help?: string | boolean | undefined }
  try {
    values = parseArgs({ args: argv, options: BUILD_OPTIONS, allowPositionals: true, strict: true }).values
  } catch {
    return undefined // this process says what is wrong
  }
  if (values.coordinator !== undefined || values.help) return undefined
  const buildFile = resolve(String(values.directory ?? '.'), String(values.file ?? DEFAULT_BUILD_FILE))
  const files = daemonFiles(join(stateDirOf(buildFile), 'mesh'))
  const channel = await connectDaemon(files.socket)
  if (!channel) return undefined
  const env: Record<string, string> = {}
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined) env[k] = v
  channel.send({ op: 'build', argv, cwd: process.cwd(), env, version: codeVersion(), columns: process.stdout.columns ?? 0, stdoutTty: process.stdout.isTTY === true })
  let interrupted = false
  // The first Ctrl-C interrupts the build (its summary still comes); a second leaves at once.
  const onSignal = (): void => {
    if (interrupted) process.exit(130)
    interrupted = true
    channel.send({ op: 'signal' })
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
  try {
    for (;;) {
      let m
      try {
        m = await channel.next()
      } catch {
        if (interrupted) return 130
        // It died (killed, a crash): what it built is cached; this process builds the rest.
        process.stderr.write(`bldr: the local mesh running this build ended before it (see ${files.log}); this process builds what is left\n`)
        return undefined
      }
      if (m.op === 'out') (m.fd === 1 ? process.stdout : process.stderr).write(m.text)
      else if (m.op === 'exit') {
        // A mesh that stops after this build (it was interrupted, or lost a worker) is gone when this process exits.
        if (m.stopping !== null) await stoppedWith(channel, m.stopping)
        return m.code
      }
      else if (m.op === 'declined') return undefined
    }
  } finally {
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
    channel.close()
  }
}
