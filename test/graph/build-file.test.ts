import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { BuildFileErrors } from '../../src/errors.js'
import { parseBuildFile } from '../../src/graph/build-file.js'
import { loadBuildGraph } from '../../src/graph/load.js'
import { memoryTree } from '../helpers.js'

const SOURCES = ['VERSION', 'src/a.c', 'src/b.c', 'src/main.c', 'include/a.h', 'data.txt']

async function load(yaml: string, files = SOURCES) {
  return loadBuildGraph(parseBuildFile(yaml, 'BUILD.yaml'), memoryTree(files))
}

/** The messages of a BUILD file that must be refused. */
async function errorsOf(yaml: string, files = SOURCES): Promise<string[]> {
  try {
    await load(yaml, files)
  } catch (err) {
    assert.ok(err instanceof BuildFileErrors, `expected BuildFileErrors, got ${String(err)}`)
    assert.equal(err.exitCode, 2)
    return err.errors.map((e) => e.message)
  }
  assert.fail('the BUILD file was accepted')
}

describe('BUILD file validation', () => {
  const cases: { name: string; yaml: string; expect: RegExp[] }[] = [
    {
      name: 'unknown top-level key, with a suggestion',
      yaml: 'action:\n  x:\n    command: ["true"]\n',
      expect: [/^BUILD\.yaml:1:1 \(action\): unknown key "action" \(did you mean "actions"\?\)/],
    },
    {
      name: 'unknown key in an action, with a suggestion',
      yaml: 'actions:\n  gen:\n    command: ["true"]\n    ouputs: [x.txt]\n',
      expect: [/^BUILD\.yaml:4:5 \(actions\.gen\.ouputs\): unknown key "ouputs" \(did you mean "outputs"\?\); allowed keys: /],
    },
    {
      name: 'unknown key in a rule, with a suggestion',
      yaml: 'targets:\n  lib:\n    kind: cc_library\n    srcs: [src/a.c]\n    hdr: [include/a.h]\n',
      expect: [/^BUILD\.yaml:5:5 \(targets\.lib\.hdr\): unknown key "hdr" \(did you mean "hdrs"\?\)/],
    },
    {
      name: 'unknown key in capabilities',
      yaml: 'actions:\n  gen:\n    command: ["true"]\n    capabilities:\n      netwrk: true\n',
      expect: [/^BUILD\.yaml:5:7 \(actions\.gen\.capabilities\.netwrk\): unknown key "netwrk" \(did you mean "network"\?\)/],
    },
    {
      name: 'wrong type: command as a string',
      yaml: 'actions:\n  gen:\n    command: "echo hi"\n',
      expect: [/^BUILD\.yaml:3:14 \(actions\.gen\.command\): wrong type: expected a list, got "echo hi"/],
    },
    {
      name: 'wrong type: number where a list of strings is due',
      yaml: 'actions:\n  gen:\n    command: ["true"]\n    outputs: [1]\n',
      expect: [/^BUILD\.yaml:4:15 \(actions\.gen\.outputs\[0\]\): wrong type: expected a string, got number 1/],
    },
    {
      name: 'missing required key',
      yaml: 'actions:\n  gen:\n    outputs: [x]\n',
      expect: [/^BUILD\.yaml:2:3 \(actions\.gen\): missing required key "command"/],
    },
    {
      name: 'unknown rule kind, with a suggestion',
      yaml: 'targets:\n  lib:\n    kind: cc_libary\n    srcs: [src/a.c]\n',
      expect: [/^BUILD\.yaml:3:11 \(targets\.lib\.kind\): unknown kind "cc_libary": must be one of cc_library, cc_binary \(did you mean "cc_library"\?\)/],
    },
    {
      name: 'missing input file',
      yaml: 'actions:\n  gen:\n    command: [cat, nothere.txt]\n    inputs: [data.txt, nothere.txt]\n    outputs: [out.txt]\n',
      expect: [/^BUILD\.yaml:4:24 \(actions\.gen\.inputs\[1\]\): input file "nothere.txt" does not exist and no action produces it/],
    },
    {
      name: 'missing source of a rule',
      yaml: 'targets:\n  app:\n    kind: cc_binary\n    srcs: [src/main.c, src/gone.c]\n',
      expect: [/^BUILD\.yaml:4:24 \(targets\.app\.srcs\[1\]\): input file "src\/gone\.c" does not exist/],
    },
    {
      name: 'glob that matches nothing',
      yaml: 'targets:\n  app:\n    kind: cc_binary\n    srcs: [src/*.cpp]\n',
      expect: [/\(targets\.app\.srcs\[0\]\): glob "src\/\*\.cpp" matches no files/],
    },
    {
      name: 'two actions producing one output',
      yaml: 'actions:\n  one:\n    command: ["true"]\n    outputs: [out.txt]\n  two:\n    command: ["true"]\n    outputs: [out.txt]\n',
      expect: [/^BUILD\.yaml:7:15 \(actions\.two\.outputs\[0\]\): output "out\.txt" is produced by two actions: "one" \(BUILD\.yaml:2:3 \(actions\.one\)\) and "two"/],
    },
    {
      name: 'output with ..',
      yaml: 'actions:\n  gen:\n    command: ["true"]\n    outputs: [../escape.txt]\n',
      expect: [/^BUILD\.yaml:4:15 \(actions\.gen\.outputs\[0\]\): output path "\.\.\/escape\.txt" contains "\.\."; paths must stay inside the project root/],
    },
    {
      name: 'output outside the build dir (absolute)',
      yaml: 'actions:\n  gen:\n    command: ["true"]\n    outputs: [/tmp/out.txt]\n',
      expect: [/\(actions\.gen\.outputs\[0\]\): output path "\/tmp\/out\.txt" is absolute; paths must be relative to the project root/],
    },
    {
      name: 'output inside bldr state',
      yaml: 'actions:\n  gen:\n    command: ["true"]\n    outputs: [.bldr/x]\n',
      expect: [/output path "\.bldr\/x" is inside bldr's state folder/],
    },
    {
      name: 'input with .. in a nested path',
      yaml: 'actions:\n  gen:\n    command: ["true"]\n    inputs: [src/../../etc/passwd]\n    outputs: [x]\n',
      expect: [/\(actions\.gen\.inputs\[0\]\): input path "src\/\.\.\/\.\.\/etc\/passwd" contains "\.\."/],
    },
    {
      name: 'dependency cycle between actions, printed',
      yaml:
        'actions:\n  a:\n    command: ["true"]\n    inputs: [c.out]\n    outputs: [a.out]\n' +
        '  b:\n    command: ["true"]\n    inputs: [a.out]\n    outputs: [b.out]\n' +
        '  c:\n    command: ["true"]\n    inputs: [b.out]\n    outputs: [c.out]\n',
      expect: [/^BUILD\.yaml:\d+:3 \(actions\.[abc]\): dependency cycle: (a → c → b → a|b → a → c → b|c → b → a → c)$/],
    },
    {
      name: 'dependency cycle between rules, printed',
      yaml:
        'targets:\n  x:\n    kind: cc_library\n    srcs: [src/a.c]\n    deps: [y]\n' +
        '  y:\n    kind: cc_library\n    srcs: [src/b.c]\n    deps: [x]\n',
      expect: [/dependency cycle between targets: x → y → x/],
    },
    {
      name: 'unknown dep, with a suggestion',
      yaml: 'targets:\n  core:\n    kind: cc_library\n    srcs: [src/a.c]\n  app:\n    kind: cc_binary\n    srcs: [src/main.c]\n    deps: [cor]\n',
      expect: [/^BUILD\.yaml:8:12 \(targets\.app\.deps\[0\]\): unknown target "cor" \(did you mean "core"\?\)/],
    },
    {
      name: 'dep on a binary',
      yaml: 'targets:\n  tool:\n    kind: cc_binary\n    srcs: [src/a.c]\n  app:\n    kind: cc_binary\n    srcs: [src/main.c]\n    deps: [tool]\n',
      expect: [/"tool" is a cc_binary; deps must name cc_library targets/],
    },
    {
      name: 'invalid YAML',
      yaml: 'actions:\n  gen:\n    command: [true\n',
      expect: [/^BUILD\.yaml:\d+:\d+: invalid YAML: /],
    },
    {
      name: 'a YAML boolean where a string is due, with a hint to quote it',
      yaml: 'actions:\n  gen:\n    command: [true]\n',
      expect: [/\(actions\.gen\.command\[0\]\): wrong type: expected a string, got boolean true \(quote it: "true"\)/],
    },
    {
      name: 'duplicate key in YAML',
      yaml: 'actions:\n  gen:\n    command: ["true"]\n  gen:\n    command: ["false"]\n',
      expect: [/^BUILD\.yaml:4:3: invalid YAML: Map keys must be unique/],
    },
    {
      name: 'bad duration',
      yaml: 'actions:\n  gen:\n    command: ["true"]\n    timeout: soon\n',
      expect: [/\(actions\.gen\.timeout\): must be a positive number of seconds or a duration like "500ms"/],
    },
    {
      name: 'bad size (wrong type inside a union)',
      yaml: 'actions:\n  gen:\n    command: ["true"]\n    capabilities:\n      maxMemory: true\n',
      expect: [/\(actions\.gen\.capabilities\.maxMemory\): must be a positive number of bytes or a size like "512MiB"/],
    },
    {
      name: 'bad env variable name',
      yaml: 'actions:\n  gen:\n    command: ["true"]\n    env:\n      1BAD: x\n',
      expect: [/^BUILD\.yaml:5:7 \(actions\.gen\.env\["1BAD"\]\): invalid name "1BAD": must be a valid environment variable name/],
    },
    {
      name: 'bad name',
      yaml: 'actions:\n  "a/b":\n    command: ["true"]\n',
      expect: [/invalid name "a\/b": must be letters, digits/],
    },
    {
      name: 'same name for an action and a target',
      yaml: 'actions:\n  app:\n    command: ["true"]\ntargets:\n  app:\n    kind: cc_binary\n    srcs: [src/main.c]\n',
      expect: [/name "app" is used by both an action and a target/],
    },
    {
      name: 'input that is its own output',
      yaml: 'actions:\n  gen:\n    command: ["true"]\n    inputs: [x.txt]\n    outputs: [x.txt]\n',
      expect: [/input "x\.txt" is also an output of the same action "gen"/],
    },
  ]

  for (const c of cases) {
    it(c.name, async () => {
      const messages = await errorsOf(c.yaml)
      for (const re of c.expect) {
        assert.ok(
          messages.some((m) => re.test(m)),
          `no message matches ${re}; got:\n  ${messages.join('\n  ')}`,
        )
      }
    })
  }

  it('reports every problem of a file at once', async () => {
    const messages = await errorsOf('actions:\n  a:\n    command: ["true"]\n    outputs: [../x]\n  b:\n    command: ["true"]\n    inputs: [missing]\n')
    assert.equal(messages.length, 2)
  })
})

describe('BUILD file expansion', () => {
  const yaml = `
actions:
  version:
    command: [sh, -c, "cat VERSION > gen/version.h"]
    inputs: [VERSION]
    outputs: [gen/version.h]
    env: { FOO: bar }
    timeout: 30s
targets:
  core:
    kind: cc_library
    srcs: [src/a.c, src/b.c]
    hdrs: [include/*.h]
    copts: [-O2]
    linkopts: [-lm]
  app:
    kind: cc_binary
    srcs: [src/main.c]
    hdrs: [gen/version.h]
    deps: [core]
`
  it('expands rules into compile, archive and link actions with data edges', async () => {
    const g = await load(yaml)
    assert.deepEqual([...g.actions.keys()].sort(), [
      'app/compile/src/main.c',
      'app/link',
      'core/archive',
      'core/compile/src/a.c',
      'core/compile/src/b.c',
      'version',
    ])
    const compile = g.get('core/compile/src/a.c')
    assert.deepEqual(compile.argv, ['cc', '-O2', '-Iinclude', '-c', 'src/a.c', '-o', 'bldr-out/obj/core/src/a.c.o'])
    assert.deepEqual(compile.inputs, ['include/a.h', 'src/a.c'])
    const mainCompile = g.get('app/compile/src/main.c')
    assert.deepEqual(mainCompile.inputs, ['gen/version.h', 'include/a.h', 'src/main.c'])
    assert.deepEqual(g.depsOf('app/compile/src/main.c'), ['version'])
    assert.deepEqual(g.get('core/archive').argv, ['ar', 'rcsD', 'bldr-out/lib/libcore.a', 'bldr-out/obj/core/src/a.c.o', 'bldr-out/obj/core/src/b.c.o'])
    assert.deepEqual(g.get('app/link').argv, ['cc', '-o', 'bldr-out/bin/app', 'bldr-out/obj/app/src/main.c.o', 'bldr-out/lib/libcore.a', '-lm'])
    assert.deepEqual(g.depsOf('app/link'), ['app/compile/src/main.c', 'core/archive'])
    assert.deepEqual(g.targets.get('app'), ['app/link'])
    assert.equal(g.get('version').env['FOO'], 'bar')
    assert.equal(g.get('version').env['PATH'], '/usr/local/bin:/usr/bin:/bin')
    assert.equal(g.get('version').timeoutMs, 30_000)
  })

  it('applies the file\'s defaults under each entry\'s own timeout and capabilities, field by field', async () => {
    const g = await load(`
defaults:
  timeout: 2m
  capabilities: { maxMemory: 256MiB, network: true }
actions:
  plain:
    command: ["true"]
  own:
    command: ["true"]
    timeout: 5s
    capabilities: { network: false, maxCpu: 1 }
targets:
  core:
    kind: cc_library
    srcs: [src/a.c]
`)
    const plain = g.get('plain')
    assert.equal(plain.timeoutMs, 120_000)
    assert.deepEqual({ ...plain.capabilities }, { network: true, writeHome: false, writeTmp: true, readPaths: [], writePaths: [], maxMemoryBytes: 256 * 1024 * 1024 })
    const own = g.get('own')
    assert.equal(own.timeoutMs, 5_000)
    assert.deepEqual({ ...own.capabilities }, { network: false, writeHome: false, writeTmp: true, readPaths: [], writePaths: [], maxMemoryBytes: 256 * 1024 * 1024, maxCpu: 1 })
    assert.equal(g.get('core/compile/src/a.c').capabilities.maxMemoryBytes, 256 * 1024 * 1024)
    assert.equal(g.get('core/archive').timeoutMs, 120_000)
    // Without defaults, bldr's own.
    assert.equal((await load('actions:\n  a:\n    command: ["true"]\n')).get('a').timeoutMs, 600_000)
    assert.match((await errorsOf('defaults:\n  capabilities:\n    maxMemry: 1G\n'))[0]!, /\(defaults\.capabilities\.maxMemry\): unknown key "maxMemry" \(did you mean "maxMemory"\?\)/)
  })

  it('orders libraries dependants-first on the link line', async () => {
    const g = await load(`
targets:
  base: { kind: cc_library, srcs: [src/a.c] }
  mid: { kind: cc_library, srcs: [src/b.c], deps: [base] }
  app: { kind: cc_binary, srcs: [src/main.c], deps: [mid] }
`)
    const argv = g.get('app/link').argv
    assert.ok(argv.indexOf('bldr-out/lib/libmid.a') < argv.indexOf('bldr-out/lib/libbase.a'))
  })

  it('computes the closure of a target and its critical path', async () => {
    const g = await load(yaml)
    const closure = g.closure(['app/link'])
    assert.equal(closure.size, 6)
    const cp = g.criticalPath(closure, (id) => (id === 'version' ? 100 : 10))
    assert.deepEqual(cp.actions, ['version', 'app/compile/src/main.c', 'app/link'])
    assert.equal(cp.totalMs, 120)
  })
})
