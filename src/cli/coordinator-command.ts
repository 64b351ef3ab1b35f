/** `bldr coordinator`: the mesh's coordinator, serving workers and build clients until stopped. */
import { resolve } from 'node:path'
import { ExitCode } from '../errors.js'
import { createLogger, LOG_LEVELS } from '../log.js'
import { startCoordinatorService } from '../net/coordinator-service.js'
import { defaultDataDir, livenessHelp, LIVENESS_OPTIONS, parseChoiceFlag, parseCommandArgs, parseLivenessFlags } from './args.js'

const DEFAULT_DATA_DIR = defaultDataDir('coordinator')
const DEFAULT_LISTEN = '/ip4/0.0.0.0/tcp/7411'

export const COORDINATOR_HELP = `Usage: bldr coordinator [options]

Run a build mesh's coordinator. Workers join it (bldr worker --coordinator ADDR)
and builds are sent to it (bldr build --coordinator ADDR). It seeds each
build's ready actions into the workers' queues and follows their results; the
workers balance the work among themselves by stealing.

Prints the multiaddrs to give workers and clients, one per line, then runs
until SIGINT or SIGTERM.

Options:
      --listen ADDR      multiaddr to listen on (default: ${DEFAULT_LISTEN})
      --data-dir DIR     keeps the node key, so the peer id and addresses survive restarts
                         (default: ${DEFAULT_DATA_DIR})
      --log-level LEVEL  ${LOG_LEVELS.join(', ')}, silent (default: info); JSON to stderr
${livenessHelp(25)}
  -h, --help             show this help`

export async function coordinatorCommand(argv: string[]): Promise<number> {
  const { values } = parseCommandArgs('coordinator', argv, {
    listen: { type: 'string' },
    'data-dir': { type: 'string' },
    'log-level': { type: 'string' },
    ...LIVENESS_OPTIONS,
    help: { type: 'boolean', short: 'h' },
  })
  if (values.help) {
    process.stdout.write(`${COORDINATOR_HELP}\n`)
    return ExitCode.ok
  }
  const level = parseChoiceFlag('--log-level', values['log-level'], [...LOG_LEVELS, 'silent'] as const, 'info')
  const liveness = parseLivenessFlags(values)
  const log = createLogger(level)
  const service = await startCoordinatorService({
    liveness,
    listen: [values.listen ?? DEFAULT_LISTEN],
    dataDir: resolve(values['data-dir'] ?? DEFAULT_DATA_DIR),
    log,
  })
  const id = service.node.peerId.toString()
  for (const a of service.addrs) process.stdout.write(`${a.includes('/p2p/') ? a : `${a}/p2p/${id}`}\n`)
  await new Promise<void>((done) => {
    process.once('SIGINT', done)
    process.once('SIGTERM', done)
  })
  await service.stop()
  return ExitCode.ok
}
