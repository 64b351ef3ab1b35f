/**
 * Logging: pino, JSON lines to stderr. A child logger per component carries
 * `{ component }` (and `workerId` where there is one); errors go under `err`.
 *
 * pino is loaded on the first record that passes the level: it costs ~25 ms to
 * load, and a build at the default level usually logs nothing.
 */
import { createRequire } from 'node:module'
import type { Level, Logger } from 'pino'

export type { Logger }

export const LOG_LEVELS: readonly Level[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace']

const require = createRequire(import.meta.url)

/** A logger at `level`, to stderr or to `to` (a build the kept mesh runs for a thin client logs to the client's). */
export function createLogger(level: Level | 'silent' = 'warn', to?: { write(line: string): unknown }): Logger {
  let real: Logger | undefined
  return lazyLogger(level, () => {
    if (!real) {
      const { pino } = require('pino') as typeof import('pino')
      real = pino({ level, base: { pid: process.pid } }, to ?? pino.destination({ fd: 2, sync: true }))
    }
    return real
  })
}

/**
 * A logger that becomes `resolve()` on its first record that passes the level.
 * Its children are lazy too: every component makes one at start-up, and an
 * eager `child` loaded pino in every worker, coordinator and client (an idle
 * worker's resident memory: 80 → 79 MB without it).
 */
function lazyLogger(level: Level | 'silent', resolve: () => Logger): Logger {
  let mine: Logger | undefined
  const load = (): Logger => (mine ??= resolve())
  const threshold = level === 'silent' ? Infinity : LOG_LEVELS.length - LOG_LEVELS.indexOf(level)
  const enabled = (l: string): boolean => {
    const i = LOG_LEVELS.indexOf(l as Level)
    return i >= 0 && LOG_LEVELS.length - i >= threshold
  }
  const noop = (): void => {}
  const child = (bindings: Record<string, unknown>, options?: object): Logger =>
    // Options may change the level: then the real logger decides.
    options ? load().child(bindings, options) : lazyLogger(level, () => load().child(bindings))
  return new Proxy({} as Logger, {
    get(_target, prop) {
      if (prop === 'level') return level
      if (prop === 'isLevelEnabled') return enabled
      if (prop === 'child') return child
      if (typeof prop === 'string' && LOG_LEVELS.includes(prop as Level) && !enabled(prop)) return noop
      const logger = load()
      const value = (logger as unknown as Record<string | symbol, unknown>)[prop]
      return typeof value === 'function' ? value.bind(logger) : value
    },
  })
}
