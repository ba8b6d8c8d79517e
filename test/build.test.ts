/**
 * The build chain: binding.gyp (canonical) and CMakeLists.txt (development) compile the same
 * sources because both read sources.json, which must list every C++ file in native/; the kernel
 * wrappers are written from the schema; nothing shipped is built for the build machine's CPU;
 * kernels stay free of N-API.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = join(__dirname, '..');
const read = (p: string) => readFileSync(join(root, p), 'utf8');
const sources = JSON.parse(read('sources.json')) as { common: string[]; kernels: string[]; mpi: string[]; flags: Record<string, string[]> };

function cppFiles(dir: string): string[] {
  return readdirSync(join(root, dir), { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? cppFiles(join(dir, e.name)) : e.name.endsWith('.cpp') ? [relative(root, join(root, dir, e.name))] : []);
}

describe('one source list for both builds', () => {
  it('sources.json lists every .cpp file under native/, once', () => {
    const listed = [...sources.common, ...sources.kernels, ...sources.mpi];
    expect(new Set(listed).size).toBe(listed.length);
    expect([...listed].sort()).toEqual(cppFiles('native').sort());
  });

  it('binding.gyp takes its sources and ISA flags from sources.json and lists no file itself', () => {
    const gyp = read('binding.gyp');
    expect(gyp).toContain(`require('./sources.json').kernels`);
    expect(gyp).toContain(`require('./sources.json').common`);
    expect(gyp).toContain(`require('./sources.json').flags.avx2`);
    expect(gyp).toContain(`require('./sources.json').flags.avx512`);
    expect(gyp).not.toMatch(/native\/[\w/]+\.cpp/);
  });

  it('CMakeLists.txt takes its sources and ISA flags from sources.json and lists no file itself', () => {
    const cmake = read('CMakeLists.txt');
    expect(cmake).toMatch(/file\(READ "\$\{CMAKE_CURRENT_SOURCE_DIR\}\/sources\.json"/);
    expect(cmake).toMatch(/json_list\(COMMON_SOURCES common common\)/);
    expect(cmake).toMatch(/json_list\(KERNEL_SOURCES kernels kernels\)/);
    expect(cmake).toMatch(/json_flags\(isa_flags \$\{isa\}\)/);
    expect(cmake).not.toMatch(/native\/[\w/]+\.cpp/);
  });

  it('nothing is built for the build machine: no -march=native or -mtune=native', () => {
    const withoutComments = (text: string) => text.split('\n').filter((l) => !/^\s*#/.test(l)).join('\n');
    for (const f of ['binding.gyp', 'CMakeLists.txt', 'sources.json', 'package.json'])
      expect(withoutComments(read(f)), f).not.toMatch(/-m(arch|tune)=native/);
    expect(sources.flags.scalar).toEqual([]);
  });

  it("native/binding.gen.h is what scripts/gen-binding.js writes from the kernel schema", () => {
    // the schema is read from dist/, which `npm test` builds before vitest
    const { generate } = require(join(root, 'scripts', 'gen-binding.js')) as { generate(): string };
    expect(read('native/binding.gen.h') === generate(), 'run npm run build:ts, then rebuild the addon').toBe(true);
  });

  it('kernel families carry no N-API and each declares its shapes', () => {
    for (const f of sources.kernels) {
      const text = read(f);
      expect(text, f).not.toMatch(/napi|node_api/i);
      // a shape in a comment, e.g. `// x is (N, C, S)`, `// param ... are (n)` or `C (M, N) = ...`
      if (!f.endsWith('table.cpp')) expect(text, `${f} has a shape comment`).toMatch(/\/\/.*(\b(is|are) \(\w|\([A-Z]+(, [A-Z*]+)+\))/);
    }
  });

  // node-gyp's objects from the install (npm ci) or `npm run build:native`
  const objects = join(root, 'build', 'Release', 'obj.target');
  it.runIf(existsSync(objects))('the portable kernels and the common code contain no AVX instruction', () => {
    const baseline = [join(objects, 'stablegrad_scalar.a'),
      ...sources.common.map((f) => join(objects, 'stablegrad', f.replace(/\.cpp$/, '.o')))];
    for (const file of baseline) {
      const asm = execFileSync('objdump', ['-d', file], { encoding: 'utf8', maxBuffer: 1 << 28 });
      expect(asm.length, file).toBeGreaterThan(1000);
      expect(asm.match(/%[yz]mm\d+/g), `${file} uses ymm/zmm registers`).toBeNull();
      expect(asm.match(/\tv[a-z0-9]+\s+\S*%xmm/g), `${file} has VEX-encoded (AVX) instructions`).toBeNull();
    }
    const avx512 = execFileSync('objdump', ['-d', join(objects, 'stablegrad_avx512.a')], { encoding: 'utf8', maxBuffer: 1 << 28 });
    expect(avx512).toMatch(/%zmm\d+/);
  });

  it.runIf(existsSync(objects))('the AVX2 and AVX-512 kernels run nothing at load (no static initializers)', () => {
    // an initializer built for AVX ran when the addon loaded, before dispatch, and killed it with
    // SIGILL on a CPU without AVX (scripts/test-emulated.sh runs it as a Nehalem)
    for (const isa of ['avx2', 'avx512']) {
      const sections = execFileSync('objdump', ['-h', join(objects, `stablegrad_${isa}.a`)], { encoding: 'utf8' });
      expect(sections).toMatch(/\.text/);
      expect(sections, `stablegrad_${isa}.a`).not.toMatch(/\.(init_array|ctors)/);
    }
  });
});
