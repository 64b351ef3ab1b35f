/**
 * Generates a C project of N translation units for benchmarks: a static library
 * of N-1 modules (each with its own header, all sharing one common header) and a
 * binary that calls every module. Written with both a BUILD.yaml and an
 * equivalent Makefile (same flags, same header dependencies), so make and bldr
 * do the same work.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'

export const CFLAGS = ['-std=c11', '-O2', '-Wall', '-Iinclude']

function moduleSource(i: number, n: number): string {
  const name = `mod_${String(i).padStart(4, '0')}`
  // Enough real code per file that the compiler does measurable work, as in a real project.
  const fns: string[] = []
  for (let f = 0; f < 6; f++) {
    fns.push(`
static double ${name}_kernel_${f}(const double *xs, int len, double k) {
    double acc = ${i}.0 + ${f};
    for (int a = 0; a < len; a++) {
        double x = xs[a] * k + common_scale(${f});
        if (x > 100.0) acc -= x / (1.0 + a);
        else acc += x * x - ${f} * x;
        for (int b = 0; b < (a & 7); b++) acc = acc * 0.999 + (double)b;
    }
    return acc;
}`)
  }
  return `#include "common.h"
#include "${name}.h"
${fns.join('\n')}

double ${name}_run(int seed) {
    double xs[64];
    for (int j = 0; j < 64; j++) xs[j] = (double)((seed * 31 + j * ${(i % 13) + 1}) % 97);
    double total = 0;
${Array.from({ length: 6 }, (_, f) => `    total += ${name}_kernel_${f}(xs, 64, ${f + 1}.5);`).join('\n')}
    return total / ${n};
}
`
}

export async function generateCProject(dir: string, files: number): Promise<void> {
  const modules = files - 1
  await mkdir(join(dir, 'src', 'lib'), { recursive: true })
  await mkdir(join(dir, 'include'), { recursive: true })
  await writeFile(
    join(dir, 'include', 'common.h'),
    `#ifndef COMMON_H\n#define COMMON_H\nstatic inline double common_scale(int f) { return 0.5 * f + 1.0; }\n#endif\n`,
  )
  const names: string[] = []
  for (let i = 0; i < modules; i++) {
    const name = `mod_${String(i).padStart(4, '0')}`
    names.push(name)
    await writeFile(join(dir, 'include', `${name}.h`), `#ifndef ${name.toUpperCase()}_H\n#define ${name.toUpperCase()}_H\ndouble ${name}_run(int seed);\n#endif\n`)
    await writeFile(join(dir, 'src', 'lib', `${name}.c`), moduleSource(i, modules))
  }
  await writeFile(
    join(dir, 'src', 'main.c'),
    `#include <stdio.h>\n${names.map((n) => `#include "${n}.h"`).join('\n')}\n\nint main(void) {\n    double total = 0;\n${names
      .map((n) => `    total += ${n}_run(7);`)
      .join('\n')}\n    printf("%.3f\\n", total);\n    return 0;\n}\n`,
  )
  await writeFile(
    join(dir, 'BUILD.yaml'),
    `targets:
  gen:
    kind: cc_library
    srcs: [src/lib/*.c]
    hdrs: [include/*.h]
    includes: [include]
    copts: [${CFLAGS.filter((f) => !f.startsWith('-I')).join(', ')}]
  app:
    kind: cc_binary
    srcs: [src/main.c]
    copts: [${CFLAGS.filter((f) => !f.startsWith('-I')).join(', ')}]
    deps: [gen]
`,
  )
  // The same graph for make: every object depends on its source and every header (as in BUILD.yaml).
  await writeFile(
    join(dir, 'Makefile'),
    `CFLAGS := ${CFLAGS.join(' ')}
SRCS := $(wildcard src/lib/*.c)
OBJS := $(patsubst %.c,out/obj/%.c.o,$(SRCS))
HDRS := $(wildcard include/*.h)

out/bin/app: out/obj/src/main.c.o out/lib/libgen.a
\t@mkdir -p $(dir $@)
\tcc -o $@ $^

out/lib/libgen.a: $(OBJS)
\t@mkdir -p $(dir $@)
\tar rcsD $@ $^

out/obj/%.c.o: %.c $(HDRS)
\t@mkdir -p $(dir $@)
\tcc $(CFLAGS) -c $< -o $@

clean:
\trm -rf out
.PHONY: clean
`,
  )
}

/** The same project for CMake (the library of every module, the binary linking it), with the same flags. */
export async function writeCMakeLists(dir: string): Promise<void> {
  await writeFile(
    join(dir, 'CMakeLists.txt'),
    `cmake_minimum_required(VERSION 3.16)
project(bench_gen C)
file(GLOB LIB_SRCS \${CMAKE_CURRENT_SOURCE_DIR}/src/lib/*.c)
add_library(gen STATIC \${LIB_SRCS})
target_include_directories(gen PUBLIC include)
target_compile_options(gen PRIVATE ${CFLAGS.filter((f) => !f.startsWith('-I')).join(' ')})
add_executable(app src/main.c)
target_compile_options(app PRIVATE ${CFLAGS.filter((f) => !f.startsWith('-I')).join(' ')})
target_link_libraries(app PRIVATE gen)
`,
  )
}

/** Change one library source of a generated project (a different constant each round), as an incremental build's edit. */
export async function changeOneSource(dir: string, round: number): Promise<void> {
  const path = join(dir, 'src', 'lib', 'mod_0007.c')
  const text = await readFile(path, 'utf8')
  await writeFile(path, text.replace(/double total = \d+;/, `double total = ${round + 1};`))
}
