/**
 * Ninja's `$` language: a string with variable references, and the scopes
 * they are looked up in. Parsed once (`parseEvalString`), evaluated where it is
 * used (a rule's `command` is evaluated once per build statement).
 *
 * Escapes (ninja's manual, "Lexical syntax"): `$$` a dollar, `$ ` a space,
 * `$:` a colon, `${name}` and `$name` a variable (`$name`: letters, digits,
 * `_` and `-`; `${name}` also allows `.`), `$` at the end of a line continues
 * it (handled by the line reader before this).
 */

export type EvalPart = { lit: string } | { var: string }
export type EvalString = readonly EvalPart[]

/** Why a `$` sequence is invalid; the caller adds file and line. */
export class EvalSyntaxError extends Error {
  override readonly name = 'EvalSyntaxError'
}

const SIMPLE_VAR = /[A-Za-z0-9_-]/
const BRACED_VAR = /^[A-Za-z0-9_.-]+$/

/**
 * Parse `text` from `start` up to the end, or (when `stopAt` is given) up to
 * the first unescaped character in it. Returns the parts and where it stopped.
 */
export function parseEvalString(text: string, start = 0, stopAt?: string): { value: EvalString; end: number } {
  const parts: EvalPart[] = []
  let lit = ''
  const flush = (): void => {
    if (lit) parts.push({ lit })
    lit = ''
  }
  let i = start
  while (i < text.length) {
    const c = text[i] as string
    if (stopAt !== undefined && stopAt.includes(c)) break
    if (c !== '$') {
      lit += c
      i++
      continue
    }
    const n = text[i + 1]
    if (n === '$' || n === ' ' || n === ':') {
      lit += n
      i += 2
    } else if (n === '{') {
      const close = text.indexOf('}', i + 2)
      const name = close < 0 ? '' : text.slice(i + 2, close)
      if (close < 0 || !BRACED_VAR.test(name)) throw new EvalSyntaxError(`bad $-escape: \${ without a valid variable name and closing }`)
      flush()
      parts.push({ var: name })
      i = close + 1
    } else if (n !== undefined && SIMPLE_VAR.test(n)) {
      let j = i + 1
      while (j < text.length && SIMPLE_VAR.test(text[j] as string)) j++
      flush()
      parts.push({ var: text.slice(i + 1, j) })
      i = j
    } else {
      throw new EvalSyntaxError(`bad $-escape (literal $ must be written as $$)`)
    }
  }
  flush()
  return { value: parts, end: i }
}

/** A variable scope: a file's top level, a subninja's, or a build statement's own bindings. */
export class Scope {
  private readonly vars = new Map<string, string>()
  private readonly rules = new Map<string, Rule>()

  constructor(readonly parent?: Scope) {}

  set(name: string, value: string): void {
    this.vars.set(name, value)
  }

  /** The variable's value here or in an enclosing scope; unknown variables are empty, as in ninja. */
  lookup(name: string): string {
    for (let s: Scope | undefined = this; s; s = s.parent) {
      const v = s.vars.get(name)
      if (v !== undefined) return v
    }
    return ''
  }

  /** Only this scope's own binding (a build statement's), for the edge lookup order. */
  own(name: string): string | undefined {
    return this.vars.get(name)
  }

  addRule(rule: Rule): boolean {
    if (this.rules.has(rule.name)) return false
    this.rules.set(rule.name, rule)
    return true
  }

  findRule(name: string): Rule | undefined {
    for (let s: Scope | undefined = this; s; s = s.parent) {
      const r = s.rules.get(name)
      if (r) return r
    }
    return undefined
  }
}

export interface Rule {
  name: string
  /** Unevaluated: a rule's variables are evaluated per build statement. */
  bindings: Map<string, EvalString>
  /** Where it was declared: `file:line`. */
  file: string
  line: number
}

export function evaluate(value: EvalString, lookup: (name: string) => string): string {
  let s = ''
  for (const p of value) s += 'lit' in p ? p.lit : lookup(p.var)
  return s
}

/** Ninja's shell quoting of one path in `$in` / `$out`: as is when every character is safe, else in single quotes. */
export function shellEscape(path: string): string {
  if (/^[A-Za-z0-9_+,\-./]+$/.test(path)) return path
  return `'${path.replace(/'/g, `'\\''`)}'`
}
