/**
 * Make-style dependency files, as `gcc -MD` (and clang) write them:
 * `target: dep dep \` with backslash-newline continuations, `\ ` for a space
 * and `\#` for a hash in a path, `$$` for a dollar; `-MP` adds `header:` rules
 * with no dependencies. What matters to bldr is the set of files the command
 * read.
 */
import { posix } from 'node:path'

/** Every dependency named in `text` (targets left out), in order, each once. */
export function parseDepfile(text: string): string[] {
  const deps: string[] = []
  const seen = new Set<string>()
  const s = text.replace(/\\\r?\n/g, ' ')
  let token = ''
  let escapedEnd = false
  const flush = (): void => {
    if (token === '') return
    const isTarget = token.endsWith(':') && !escapedEnd
    if (!isTarget && !seen.has(token)) {
      seen.add(token)
      deps.push(token)
    }
    token = ''
  }
  for (let i = 0; i < s.length; i++) {
    const c = s[i] as string
    escapedEnd = false
    if (c === '\\' && (s[i + 1] === ' ' || s[i + 1] === '#' || s[i + 1] === ':')) {
      token += s[++i]
      escapedEnd = true
    } else if (c === '$' && s[i + 1] === '$') {
      token += '$'
      i++
    } else if (c === ' ' || c === '\t' || c === '\n' || c === '\r') {
      flush()
    } else if (c === ':' && (s[i + 1] === ' ' || s[i + 1] === '\t' || s[i + 1] === '\n' || s[i + 1] === '\r' || i + 1 === s.length)) {
      token += ':'
      flush()
    } else {
      token += c
    }
  }
  flush()
  return deps
}

/**
 * The project files among a depfile's dependencies: paths relative to the
 * command's working folder `cwd` (project-relative), or absolute under the
 * folder the command saw as the project root (`execRoot`). Anything else (the
 * toolchain's headers) is not the project's and is left out. Sorted, unique.
 */
export function projectFilesOf(deps: readonly string[], where: { execRoot: string; cwd: string }): string[] {
  const out = new Set<string>()
  const prefix = `${where.execRoot}/`
  for (const d of deps) {
    let rel: string
    if (d.startsWith('/')) {
      const n = posix.normalize(d)
      if (!n.startsWith(prefix)) continue
      rel = n.slice(prefix.length)
    } else {
      rel = posix.normalize(posix.join(where.cwd, d))
      if (rel === '..' || rel.startsWith('../')) continue
    }
    if (rel !== '.' && rel !== '') out.add(rel)
  }
  return [...out].sort()
}
