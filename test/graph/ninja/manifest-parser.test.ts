import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { BuildFileError } from '../../../src/errors.js'
import { parseNinjaManifest, type NinjaEdge } from '../../../src/graph/ninja/manifest-parser.js'

/** Parse `files['build.ninja']`, reading includes from `files`. */
function parse(files: Record<string, string>) {
  return parseNinjaManifest('build.ninja', (p) => {
    const text = files[p]
    if (text === undefined) throw new Error(`ENOENT: no such file ${p}`)
    return text
  })
}

function edge(text: string, out: string, extra: Record<string, string> = {}): NinjaEdge {
  const e = parse({ 'build.ninja': text, ...extra }).edges.find((x) => x.outs[0] === out)
  assert.ok(e, `no edge for ${out}`)
  return e
}

function errorOf(files: Record<string, string>): string {
  try {
    parse(files)
  } catch (err) {
    assert.ok(err instanceof BuildFileError, `expected BuildFileError, got ${String(err)}`)
    assert.equal(err.exitCode, 2)
    return err.message
  }
  assert.fail('the ninja file was accepted')
}

describe('ninja manifest parser', () => {
  it('evaluates a rule per statement: $in and $out, the statement\'s own variables before the rule\'s before the file\'s', () => {
    const e = edge(
      `cflags = -O0
flags = file
rule cc
  command = gcc $cflags $extra -c $in -o $out
  description = CC $out
  depfile = $out.d
  deps = gcc
build a.o: cc a.c
  cflags = -O2
  extra = -DX=$flags
`,
      'a.o',
    )
    assert.equal(e.command, 'gcc -O2 -DX=file -c a.c -o a.o')
    assert.equal(e.description, 'CC a.o')
    assert.equal(e.depfile, 'a.o.d')
    assert.equal(e.deps, 'gcc')
  })

  it('top-level variables are evaluated where they are set, so a later change does not reach earlier uses', () => {
    const e = edge(
      `a = one
b = $${"{"}a}-two
a = three
rule r
  command = echo $b $a
build x: r
`,
      'x',
    )
    assert.equal(e.command, 'echo one-two three')
  })

  it('escapes: $$, $ (space), $:, ${name}, and $ at the end of a line continues it', () => {
    const e = edge(
      `rule r
  command = echo $$HOME $
      ${'${'}v}x a$:b
v = V
build out$ file: r in$ file
`,
      'out file',
    )
    assert.equal(e.command, "echo $HOME Vx a:b")
    assert.deepEqual(e.ins, ['in file'])
  })

  it('quotes paths with unsafe characters in $in and $out, as ninja does', () => {
    const e = edge("rule r\n  command = cat $in > $out\nbuild o$ 1: r a$ b c\n", 'o 1')
    assert.equal(e.command, "cat 'a b' c > 'o 1'")
  })

  it('reads implicit outputs, implicit, order-only and validation inputs, and canonicalizes paths', () => {
    const e = edge('rule r\n  command = x\nbuild ./o1 o2 | io: r ./a/../i1 i2 | imp1 || oo1 oo2 |@ v1\n', 'o1')
    assert.deepEqual([e.outs, e.implicitOuts, e.ins, e.implicitIns, e.orderOnly, e.validations], [['o1', 'o2'], ['io'], ['i1', 'i2'], ['imp1'], ['oo1', 'oo2'], ['v1']])
    assert.equal(e.line, 3)
    assert.equal(e.file, 'build.ninja')
  })

  it('phony, default, pools, restat and generator', () => {
    const m = parse({
      'build.ninja': `pool link
  depth = 2
rule ld
  command = ld $in -o $out
  pool = link
  restat = 1
rule regen
  command = cmake .
  generator = 1
build app: ld a.o
build build.ninja: regen CMakeLists.txt
build all: phony app
default all
`,
    })
    const byOut = new Map(m.edges.map((e) => [e.outs[0], e]))
    assert.equal(byOut.get('app')?.pool, 'link')
    assert.equal(byOut.get('app')?.restat, true)
    assert.equal(byOut.get('build.ninja')?.generator, true)
    assert.equal(byOut.get('all')?.rule, 'phony')
    assert.deepEqual(m.defaults.map((d) => d.target), ['all'])
    assert.equal(m.pools.get('link'), 2)
    assert.equal(m.pools.get('console'), 1)
  })

  it('include shares the scope; subninja gets its own, which sees the parent\'s rules and variables', () => {
    const m = parse({
      'build.ninja': 'v = top\nrule r\n  command = echo $v\ninclude inc.ninja\nsubninja sub/build.ninja\nbuild top: r\n',
      'inc.ninja': 'v = included\n',
      'sub/build.ninja': 'v = sub\nbuild s: r\n',
    })
    const byOut = new Map(m.edges.map((e) => [e.outs[0], e]))
    assert.equal(byOut.get('s')?.command, 'echo sub')
    assert.equal(byOut.get('s')?.file, 'sub/build.ninja')
    assert.equal(byOut.get('top')?.command, 'echo included', 'the subninja\'s variable stays in its scope')
    assert.deepEqual(m.files, ['build.ninja', 'inc.ninja', 'sub/build.ninja'])
  })

  const bad: [string, Record<string, string>, RegExp][] = [
    ['unknown rule', { 'build.ninja': 'build a: nope b\n' }, /^build\.ninja:1: unknown rule "nope"$/],
    ['bad $-escape', { 'build.ninja': 'rule r\n  command = echo $\n\nx = a$!b\n' }, /^build\.ninja:4: bad \$-escape/],
    ['rule without command', { 'build.ninja': 'rule r\n  description = d\n' }, /^build\.ninja:1: rule r has no "command ="/],
    ['duplicate rule', { 'build.ninja': 'rule r\n  command = a\nrule r\n  command = b\n' }, /^build\.ninja:3: duplicate rule "r"/],
    ['unknown rule variable', { 'build.ninja': 'rule r\n  command = a\n  colour = red\n' }, /^build\.ninja:3: unexpected variable "colour" in rule r/],
    ['indented line out of place', { 'build.ninja': '  x = 1\n' }, /^build\.ninja:1: unexpected indented line/],
    ['missing include', { 'build.ninja': 'include rules.ninja\n' }, /^build\.ninja:1: cannot read include file rules\.ninja/],
    ['error inside an include names that file', { 'build.ninja': 'include rules.ninja\n', 'rules.ninja': '\nrule\n' }, /^rules\.ninja:2: expected a rule name/],
    ['no rule after the outputs', { 'build.ninja': 'build a b\n' }, /^build\.ninja:1: expected ":" and a rule/],
    ['unknown pool', { 'build.ninja': 'rule r\n  command = a\n  pool = big\nbuild x: r\n' }, /^build\.ninja:4: unknown pool "big"/],
    ['bad pool depth', { 'build.ninja': 'pool p\n  depth = many\n' }, /^build\.ninja:2: invalid pool depth/],
    ['deps = msvc', { 'build.ninja': 'rule r\n  command = cl\n  deps = msvc\n  depfile = x\nbuild x.obj: r\n' }, /^build\.ninja:5: deps = msvc is not supported/],
    ['cycle in rule variables', { 'build.ninja': 'rule r\n  command = $description\n  description = $command\nbuild x: r\n' }, /^build\.ninja:4: cycle in rule variables/],
    ['include of itself', { 'build.ninja': 'include build.ninja\n' }, /^build\.ninja:1: include build\.ninja includes itself/],
  ]
  for (const [name, files, expected] of bad) {
    it(`refuses with file and line: ${name}`, () => {
      assert.match(errorOf(files), expected)
    })
  }
})
