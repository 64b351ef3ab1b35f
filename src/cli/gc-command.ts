/** `bldr gc`: bound a project's store and action cache (see src/cas/gc.ts). */
import { existsSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { collectGarbage, StateBusyError } from '../cas/gc.js'
import { localMeshStatus, stopLocalMesh } from '../net/mesh-daemon.js'
import { ExitCode, UsageError } from '../errors.js'
import { formatBytes } from '../size.js'
import { parseCommandArgs, parseSizeFlag } from './args.js'

export const GC_HELP = `Usage: bldr gc [options]

Remove from a project's state folder (.bldr) what no cached action needs: blobs
of results no longer cached, temporary files, scratch folders, the local mesh's
worker stores (a local mesh still running is stopped first). With --max-size, the oldest cached actions go first until the
blobs of those kept fit; their outputs are rebuilt when next needed. Refused
while a build runs in the folder (and a build is refused while gc runs).

Options:
  -C, --directory DIR   the folder holding .bldr: a BUILD.yaml project, or a ninja
                        build folder (default: .)
      --max-size SIZE   keep at most this much of cached results, e.g. 2GiB, 500M
                        (default: keep every cached action)
      --dry-run         say what would be removed, remove nothing
  -h, --help            show this help

Exit status: 0 collected, 1 a build is running there, 2 bad input (flags, no .bldr).`

export async function gcCommand(argv: string[]): Promise<number> {
  const { values } = parseCommandArgs('gc', argv, {
    directory: { type: 'string', short: 'C' },
    'max-size': { type: 'string' },
    'dry-run': { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
  })
  if (values.help) {
    process.stdout.write(`${GC_HELP}\n`)
    return ExitCode.ok
  }
  const maxBytes = values['max-size'] !== undefined ? parseSizeFlag('--max-size', values['max-size']) : undefined
  const stateDir = join(resolve(values.directory ?? '.'), '.bldr')
  if (!existsSync(stateDir)) throw new UsageError(`nothing to collect: no .bldr in ${resolve(values.directory ?? '.')} (run bldr gc where bldr build ran, or pass -C)`)
  const dryRun = values['dry-run'] ?? false
  // The local mesh's workers use their stores: it is stopped first, unless a build uses it.
  const meshDir = join(stateDir, 'mesh')
  const mesh = await localMeshStatus(meshDir)
  if (mesh && mesh.builds > 0) throw new StateBusyError(`a build is running in ${stateDir} (it uses the local mesh, pid ${mesh.pid}); collect when it ends`)
  if (mesh && !dryRun) {
    await stopLocalMesh(meshDir)
    process.stdout.write(`bldr gc: stopped the local mesh (pid ${mesh.pid}); the next distributed build starts another\n`)
  }
  const r = collectGarbage(stateDir, { ...(maxBytes !== undefined ? { maxBytes } : {}), dryRun })
  const verb = dryRun ? 'would remove' : 'removed'
  process.stdout.write(
    `bldr gc: kept ${r.actionsKept} cached action${r.actionsKept === 1 ? '' : 's'} (${r.blobsKept} blobs, ${formatBytes(r.bytesKept)}); ${verb} ${r.actionsRemoved} cached action${r.actionsRemoved === 1 ? '' : 's'}, ${r.blobsRemoved} blobs (${formatBytes(r.bytesRemoved)}) and ${formatBytes(r.otherBytesRemoved)} of temporary files, scratch folders and local-mesh worker stores\n`,
  )
  return ExitCode.ok
}
