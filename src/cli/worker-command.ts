/** `bldr worker`: a worker daemon that joins a mesh and runs actions until stopped. */
import { randomInt } from 'node:crypto'
import { mkdirSync, rmSync } from 'node:fs'
import { availableParallelism } from 'node:os'
import { join, resolve } from 'node:path'
import { createBlake3Hasher } from '../cas/hasher.js'
import { openCasStore } from '../cas/store.js'
import { SourceDigests } from '../build/source-digests.js'
import { ExitCode, UsageError } from '../errors.js'
import { createLogger, LOG_LEVELS } from '../log.js'
import { startWorkerDaemon } from '../net/worker-daemon.js'
import { LastListing } from '../worker/last-listing.js'
import { StoreBudget } from '../worker/store-budget.js'
import { createActionRunner, withInjectedFailures } from '../worker/action-runner.js'
import { availableSandboxes, checkSandbox, createSandbox, SANDBOX_NAMES, type AvailableSandbox } from '../../sandbox/create.js'
import { DEFAULT_STRATEGY, STRATEGIES, type StrategyName } from '../../strategies/index.js'
import { defaultDataDir, livenessHelp, LIVENESS_OPTIONS, parseChoiceFlag, parseCommandArgs, parseLivenessFlags, parseIntFlag, parseSizeFlag, requireFlag } from './args.js'

const DEFAULT_DATA_DIR = defaultDataDir('worker')
/** A worker's store by default: ccache's default is 5 GB; a mesh worker holds several projects' inputs. */
const DEFAULT_MAX_STORE = '10GiB'

export const WORKER_HELP = `Usage: bldr worker --coordinator MULTIADDR [options]

Join a build mesh: take actions seeded by the coordinator, steal queued actions
from busier workers when this one runs dry, and run each action in a sandbox.
Inputs are fetched from peers by BLAKE3 digest and kept in this worker's store.
Runs until SIGINT or SIGTERM; then it stops taking and stealing work, hands its
queued actions back to the coordinator, lets running ones finish and report
(up to 10 s), and exits. If the connection to the coordinator closes (it
restarted, or this worker was cut off), the worker registers again once it can.

Options:
      --coordinator ADDR   the coordinator's multiaddr (printed by bldr coordinator)
      --parallelism N      actions run at once (default: ${availableParallelism()}, the number of cores)
      --strategy NAME      how to pick a victim to steal from: ${Object.keys(STRATEGIES).join(', ')} (default: ${DEFAULT_STRATEGY})
      --data-dir DIR       the worker's store and node key, one worker per folder (default: ${DEFAULT_DATA_DIR})
      --max-store SIZE     keep the store under SIZE, e.g. 20GiB, 500M: past it the least
                           recently used blobs go (every one can be fetched again), never
                           the inputs of a running action (default: ${DEFAULT_MAX_STORE})
      --listen ADDR        multiaddr to listen on for peers (default: /ip4/0.0.0.0/tcp/0)
      --sandbox LIST       the sandboxes this worker offers, comma-separated, from
                           ${SANDBOX_NAMES.join(', ')} (default: every one that works here: docker
                           when a Docker daemon answers, bwrap when it is installed,
                           and local); a build runs only on workers offering its sandbox
      --seed N             seed of the worker's random choices (default: a new one each start)
      --log-level LEVEL    ${LOG_LEVELS.join(', ')}, silent (default: info); JSON to stderr
${livenessHelp(27)}
      --stop-when-stdin-closes
                           leave the mesh when standard input closes (bldr build --distributed uses this)
  -h, --help               show this help

Memory: NODE_OPTIONS="--max-semi-space-size=1 --v8-pool-size=1" lowers an idle
worker's resident memory by ~12 MB (bldr build --distributed starts its local
workers this way).

Fault injection (tests and benchmarks): BLDR_FAULT_DROP_GOSSIP=F drops the share
F (0 to 1) of incoming load announcements on purpose; BLDR_FAULT_FAIL_EVERY=N
reports every N-th action (first attempts only) as an infrastructure failure
without running it; BLDR_FAULT_BROKEN=1 so reports every action, retries too;
BLDR_FAULT_CORRUPT_SENT=N flips a byte in every N-th blob
this worker sends to a peer (the receiver must reject it).`

export async function workerCommand(argv: string[]): Promise<number> {
  const { values } = parseCommandArgs('worker', argv, {
    coordinator: { type: 'string' },
    parallelism: { type: 'string' },
    strategy: { type: 'string' },
    'data-dir': { type: 'string' },
    'max-store': { type: 'string' },
    listen: { type: 'string' },
    sandbox: { type: 'string' },
    seed: { type: 'string' },
    'log-level': { type: 'string' },
    ...LIVENESS_OPTIONS,
    'stop-when-stdin-closes': { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
  })
  if (values.help) {
    process.stdout.write(`${WORKER_HELP}\n`)
    return ExitCode.ok
  }
  const coordinator = requireFlag('worker', '--coordinator', values.coordinator)
  const slots = parseIntFlag('--parallelism', values.parallelism, 1, availableParallelism())
  const strategy = parseChoiceFlag('--strategy', values.strategy, Object.keys(STRATEGIES) as StrategyName[], DEFAULT_STRATEGY)
  // Named ones are checked now (a clear error, not one per action); the defaults were found by checking.
  // The checks (bwrap's probe, docker's ping) run while the store opens.
  const checking = values.sandbox === undefined ? availableSandboxes() : checkedSandboxes(parseSandboxList(values.sandbox))
  checking.catch(() => {}) // awaited below
  // Random unless asked: workers that all started from one seed would pick their victims in one order (and herd),
  // and a restarted worker would reuse its last life's steal ids.
  const seed = parseIntFlag('--seed', values.seed, 0, randomInt(0, 2 ** 31))
  const level = parseChoiceFlag('--log-level', values['log-level'], [...LOG_LEVELS, 'silent'] as const, 'info')
  const liveness = parseLivenessFlags(values)
  const log = createLogger(level)
  const dataDir = resolve(values['data-dir'] ?? DEFAULT_DATA_DIR)

  const maxStore = parseSizeFlag('--max-store', values['max-store'] ?? DEFAULT_MAX_STORE, 1)
  // As root, the store is sealed: its blobs are given to a user no sandboxed action runs as (store.ts).
  const cas = await openCasStore(join(dataDir, 'cas'), await createBlake3Hasher(), { sealed: process.getuid?.() === 0 })
  const sandboxNames = await checking
  const budget = new StoreBudget(cas, maxStore, log)
  const lastListing = new LastListing(join(dataDir, 'last-listing'), log)
  // Scratch folders per process: two workers may share a data folder (and its store).
  const scratchRoot = join(dataDir, 'scratch', String(process.pid))
  mkdirSync(scratchRoot, { recursive: true })
  const sandboxes = sandboxNames.map((name) => createSandbox(name, { cas, scratchRoot: join(scratchRoot, name), slots, log }))
  const daemon = await startWorkerDaemon({
    coordinator,
    slots,
    strategy,
    seed,
    listen: [values.listen ?? '/ip4/0.0.0.0/tcp/0'],
    keyFile: join(dataDir, 'peer-key'),
    cas,
    runner: (blobs) =>
      withInjectedFailures(createActionRunner({ cas, sandboxes, blobs, budget, toolDigests: SourceDigests.load(join(dataDir, 'tool-digests.json')), lastListing, log }), parseCount('BLDR_FAULT_FAIL_EVERY', process.env['BLDR_FAULT_FAIL_EVERY']), parseCount('BLDR_FAULT_BROKEN', process.env['BLDR_FAULT_BROKEN']) > 0),
    config: { sandboxes: sandboxNames },
    liveness,
    dropGossip: parseShare('BLDR_FAULT_DROP_GOSSIP', process.env['BLDR_FAULT_DROP_GOSSIP']),
    corruptSentEvery: parseCount('BLDR_FAULT_CORRUPT_SENT', process.env['BLDR_FAULT_CORRUPT_SENT']),
    log,
  })
  log.info({ peerId: daemon.id, addrs: daemon.node.getMultiaddrs().map((a) => a.toString()), slots, strategy, dataDir }, 'worker ready')
  log.info({ sandboxes: sandboxNames }, `offering sandbox${sandboxNames.length > 1 ? 'es' : ''} ${sandboxNames.join(', ')}`)
  // While no work has come: the blobs the next build's first action likely stages, checked before it needs them.
  const leaving = new AbortController()
  void lastListing.verify(cas, { signal: leaving.signal }).then(
    (blobs) => log.debug({ blobs }, 'checked the blobs of the last input listing'),
    (err: unknown) => log.warn({ err }, 'could not check the blobs of the last input listing'),
  )

  await new Promise<void>((done) => {
    process.once('SIGINT', done)
    process.once('SIGTERM', done)
    if (values['stop-when-stdin-closes']) {
      process.stdin.on('end', done).on('close', done).resume()
    }
  })
  log.info('leaving the mesh')
  leaving.abort()
  await daemon.stop()
  log.debug('left the mesh; closing the sandbox')
  await Promise.all(sandboxes.map((s) => s.close()))
  rmSync(scratchRoot, { recursive: true, force: true })
  return ExitCode.ok
}

async function checkedSandboxes(names: AvailableSandbox[]): Promise<AvailableSandbox[]> {
  for (const name of names) await checkSandbox(name)
  return names
}

/** `docker,bwrap` → the names, each checked, no repeats. */
function parseSandboxList(value: string): AvailableSandbox[] {
  const names = value.split(',').map((n) => n.trim())
  if (names.some((n) => n === '')) throw new UsageError(`invalid --sandbox: an empty name in ${JSON.stringify(value)} (give names separated by commas)`)
  const checked = names.map((n) => parseChoiceFlag('--sandbox', n, SANDBOX_NAMES, 'local'))
  return [...new Set(checked)]
}

function parseCount(name: string, value: string | undefined): number {
  if (value === undefined || value === '') return 0
  const n = Number(value)
  if (!Number.isInteger(n) || n < 0) throw new UsageError(`invalid ${name}: must be a whole number >= 0 (got ${JSON.stringify(value)})`)
  return n
}

function parseShare(name: string, value: string | undefined): number {
  if (value === undefined || value === '') return 0
  const n = Number(value)
  if (!(n >= 0 && n <= 1)) throw new UsageError(`invalid ${name}: must be a number from 0 to 1 (got ${JSON.stringify(value)})`)
  return n
}
