/**
 * A parsed YAML file that remembers where every value was written, so an error
 * found later (a missing input, a duplicate output) can name the line.
 */
import { LineCounter, parseDocument, isMap, isSeq, isScalar, type Document, type Node, type Pair } from 'yaml'
import { BuildFileError, BuildFileErrors, type SourceLocation } from '../errors.js'

export type KeyPath = ReadonlyArray<string | number>

/** `targets.app.srcs[1]`; keys that are not plain identifiers are quoted: `actions["gen.h"]`. */
export function formatKeyPath(path: KeyPath): string {
  let s = ''
  for (const seg of path) {
    if (typeof seg === 'number') s += `[${seg}]`
    else if (/^[A-Za-z_][A-Za-z0-9_-]*$/.test(seg)) s += s ? `.${seg}` : seg
    else s += `[${JSON.stringify(seg)}]`
  }
  return s
}

export class YamlSource {
  private constructor(
    readonly file: string,
    private readonly doc: Document,
    private readonly lines: LineCounter,
    /** The document as plain data. */
    readonly data: unknown,
  ) {}

  /** Parse YAML text; syntax errors (and duplicate keys) are thrown with their lines. */
  static parse(text: string, file: string): YamlSource {
    const lines = new LineCounter()
    const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true })
    if (doc.errors.length > 0) {
      throw new BuildFileErrors(
        doc.errors.map((e) => {
          const pos = lines.linePos(e.pos[0])
          const firstLine = e.message.split('\n')[0] ?? e.message
          return new BuildFileError({ file, line: pos.line, column: pos.col }, `invalid YAML: ${firstLine}`)
        }),
      )
    }
    return new YamlSource(file, doc, lines, doc.toJS({ maxAliasCount: 100 }))
  }

  /**
   * Where the value at `path` was written. With `key`, the location of the key
   * itself (for "unknown key" errors). A path that runs out points at the
   * deepest part that exists.
   */
  locate(path: KeyPath, opts: { key?: boolean } = {}): SourceLocation {
    let node: Node | null | undefined = this.doc.contents as Node | null
    let found: Node | null | undefined = node
    for (let i = 0; i < path.length && node; i++) {
      const seg = path[i]
      const last = i === path.length - 1
      if (isMap(node)) {
        const pair: Pair<unknown, unknown> | undefined = node.items.find((p) => isScalar(p.key) && String(p.key.value) === String(seg))
        if (!pair) break
        node = last && opts.key ? (pair.key as Node) : (pair.value as Node | null) ?? (pair.key as Node)
      } else if (isSeq(node) && typeof seg === 'number') {
        node = node.items[seg] as Node | undefined
      } else {
        break
      }
      if (node) found = node
    }
    const loc: SourceLocation = { file: this.file, keyPath: formatKeyPath(path) }
    if (found?.range) {
      const pos = this.lines.linePos(found.range[0])
      loc.line = pos.line
      loc.column = pos.col
    }
    return loc
  }

  error(path: KeyPath, rule: string, opts: { key?: boolean } = {}): BuildFileError {
    return new BuildFileError(this.locate(path, opts), rule)
  }
}
