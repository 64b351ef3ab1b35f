/**
 * Thin archives: a static library (`ar` with the T modifier, `--thin`; Meson
 * makes every static library it does not install so) that holds its symbol
 * table and the names of its members, not their bytes. A linker reading one
 * opens each member by that name, relative to the archive's folder. So an
 * action that reads a thin archive reads its members too: they must be its
 * inputs on a worker that shares no disk with the client, and part of its
 * key, since a member can change without the archive changing (same size,
 * same symbols: a deterministic archive is then byte-identical).
 *
 * Format (GNU ar): "!<thin>\n", then 60-byte headers: name (16), date (12),
 * uid (6), gid (6), mode (8), size (10), "`\n". The symbol table ("/" or
 * "/SYM64/") and the long-name table ("//", entries "name/\n") carry their
 * bytes, padded to an even length; a member carries none. A member's name is
 * "name/" or "/<offset into the long-name table>" (the field may end in "/").
 */
import { closeSync, openSync, readSync } from 'node:fs'

export const THIN_ARCHIVE_MAGIC = '!<thin>\n'

/** Whether the file at `path` starts as a thin archive does. */
export function isThinArchiveFile(path: string): boolean {
  let fd: number
  try {
    fd = openSync(path, 'r')
  } catch {
    return false
  }
  try {
    const head = Buffer.alloc(THIN_ARCHIVE_MAGIC.length)
    return readSync(fd, head, 0, head.length, 0) === head.length && head.toString('latin1') === THIN_ARCHIVE_MAGIC
  } finally {
    closeSync(fd)
  }
}

/** The member names of a thin archive, as written (relative to its folder, or absolute); undefined if `bytes` is not one or is malformed. */
export function thinArchiveMembers(bytes: Buffer): string[] | undefined {
  if (bytes.toString('latin1', 0, THIN_ARCHIVE_MAGIC.length) !== THIN_ARCHIVE_MAGIC) return undefined
  const members: string[] = []
  let longNames = ''
  let pos = THIN_ARCHIVE_MAGIC.length
  while (pos + 60 <= bytes.length) {
    if (bytes.toString('latin1', pos + 58, pos + 60) !== '`\n') return undefined
    const name = bytes.toString('latin1', pos, pos + 16).trimEnd()
    const size = Number(bytes.toString('latin1', pos + 48, pos + 58).trim())
    if (!Number.isInteger(size) || size < 0) return undefined
    pos += 60
    if (name === '/' || name === '/SYM64/' || name === '//') {
      if (name === '//') longNames = bytes.toString('utf8', pos, pos + size)
      pos += size + (size % 2)
      continue
    }
    const long = /^\/(\d+)/.exec(name)
    if (long) {
      // "/<offset>", then blanks (binutils may end the field with "/", and a nested archive's member adds ":<offset>").
      const at = Number(long[1])
      const end = longNames.indexOf('\n', at)
      if (end < 0) return undefined
      members.push(longNames.slice(at, end).replace(/\/$/, ''))
    } else members.push(name.replace(/\/$/, ''))
  }
  return pos === bytes.length ? members : undefined
}
