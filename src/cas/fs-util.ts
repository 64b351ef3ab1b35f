/** Small file-system helpers shared by the store, the action cache and the build engine. */
import { chmodSync, closeSync, fstatSync, mkdirSync, openSync, readSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { dirname, join, basename } from 'node:path'

let tempCounter = 0

/** A name for a temporary file next to `dest`, unique across processes (pid) and calls (counter). */
export function tempNameFor(dest: string): string {
  return join(dirname(dest), `.${basename(dest)}.tmp-${process.pid}-${++tempCounter}`)
}

/**
 * Write `data` to `dest` so that a reader sees either the old file or the whole
 * new one, never a part: write a temporary file in the same folder, then rename.
 * Synchronous: meant for small files (cache entries, stats), where a
 * thread-pool round trip per call costs more than the call.
 */
export function writeFileAtomic(dest: string, data: Uint8Array | string, mode = 0o644): void {
  const tmp = tempNameFor(dest)
  try {
    withParentDir(tmp, () => writeFileSync(tmp, data, { mode }))
    // The mode given to writeFileSync is filtered by the umask; set it exactly.
    chmodSync(tmp, mode)
    renameSync(tmp, dest)
  } catch (err) {
    rmSync(tmp, { force: true })
    throw err
  }
}

export function isErrnoException(err: unknown, code?: string): err is NodeJS.ErrnoException {
  return err instanceof Error && 'code' in err && (code === undefined || (err as NodeJS.ErrnoException).code === code)
}

/**
 * Run a file operation that creates `path`; if its folder is missing, make it
 * and try once more. Cheaper than a mkdir before every write when the folder
 * almost always exists.
 */
export function withParentDir<T>(path: string, op: () => T): T {
  try {
    return op()
  } catch (err) {
    if (!isErrnoException(err, 'ENOENT')) throw err
    mkdirSync(dirname(path), { recursive: true })
    return op()
  }
}

/** Whether the process `pid` still runs (one that left a mark: a scratch folder, a state-folder lock). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/**
 * A file's bytes if it holds at most `max`, else undefined; read through one
 * descriptor, so one that grows while it is read is undefined too.
 */
export function readAtMost(path: string, max: number): Buffer | undefined {
  const fd = openSync(path, 'r')
  try {
    const size = fstatSync(fd).size
    if (size > max) return undefined
    const buf = Buffer.allocUnsafe(size + 1)
    let n = 0
    for (let r; n <= size && (r = readSync(fd, buf, n, size + 1 - n, null)) > 0; ) n += r
    return n > size ? undefined : buf.subarray(0, n)
  } finally {
    closeSync(fd)
  }
}
