/**
 * Logging: pino, JSON lines to stderr. A child logger per component carries
 * `{ component }` (and `workerId` where there is one); errors go under `err`.
 */
import { pino, type Logger, type Level } from 'pino'

export type { Logger }

export const LOG_LEVELS: readonly Level[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace']

export function createLogger(level: Level | 'silent' = 'warn'): Logger {
  return pino({ level, base: { pid: process.pid } }, pino.destination({ fd: 2, sync: true }))
}
