/** Backend selection and the environment variables, each in a fresh process (they act at load). */
import { spawnSync } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { backendInfo } from '../lib/index.js';
import { detectedIsa, native, runnableIsas } from './helpers.js';
import { ISAS } from '../lib/backend/types.js';

const root = join(__dirname, '..');
// children run the compiled dist/ (built by `npm test` before vitest): these settings act at load
function child(env: Record<string, string>, code: string): { out: string; err: string; status: number | null } {
  const r = spawnSync(process.execPath, ['-e', code], {
    cwd: root, env: { ...process.env, ...env, NODE_OPTIONS: '' }, encoding: 'utf8', timeout: 30_000,
  });
  return { out: r.stdout, err: r.stderr, status: r.status };
}
const INFO = `const s = require('./dist/cjs/index.js'); console.log(JSON.stringify(s.backendInfo()))`;

describe('backend selection', () => {
  it('uses the native backend here, with the best ISA and every core', () => {
    const info = backendInfo();
    expect(info.name).toBe('native');
    expect(info.isa).toBe(detectedIsa);
    expect(info.threads).toBeGreaterThanOrEqual(1);
    expect(info.loadError).toBeUndefined();
  });

  it('knows the same ISAs as the native build (STABLEGRAD_ISA and the fallback\'s setIsa check against them)', () => {
    expect(ISAS).toEqual(native.info().isas);
  });

  it('STABLEGRAD_BACKEND=ts forces the fallback without a warning', () => {
    const r = child({ STABLEGRAD_BACKEND: 'ts' }, INFO);
    expect(JSON.parse(r.out)).toEqual({ name: 'ts', isa: 'none', threads: availableParallelism() });
    expect(r.err).toBe('');
  });

  it('STABLEGRAD_THREADS sets the fallback\'s thread count too', () => {
    const r = child({ STABLEGRAD_BACKEND: 'ts', STABLEGRAD_THREADS: '3' }, INFO);
    expect(JSON.parse(r.out)).toEqual({ name: 'ts', isa: 'none', threads: 3 });
  });

  it.each(runnableIsas)('STABLEGRAD_ISA=%s caps the native kernels', (isa) => {
    const r = child({ STABLEGRAD_ISA: isa, STABLEGRAD_THREADS: '1' }, INFO);
    expect(JSON.parse(r.out)).toEqual({ name: 'native', isa, threads: 1 });
  });

  it('a native addon that cannot load falls back with one warning that carries the reason', () => {
    const code = `${INFO}; require('./dist/cjs/index.js').backendInfo();`;
    const r = child({ STABLEGRAD_ADDON: '/nonexistent/stablegrad.node' }, code);
    const info = JSON.parse(r.out);
    expect(info).toMatchObject({ name: 'ts', isa: 'none', threads: availableParallelism() });
    expect(info.loadError).toMatch(/Cannot find module '\/nonexistent\/stablegrad.node'/);
    expect(r.err.match(/STABLEGRAD_FALLBACK/g)).toHaveLength(1);
    expect(r.err).toMatch(/native backend unavailable, using the TypeScript fallback: Cannot find module/);
  });

  it('STABLEGRAD_BACKEND=native throws with the reason when the addon cannot load', () => {
    const r = child({ STABLEGRAD_BACKEND: 'native', STABLEGRAD_ADDON: '/nonexistent/stablegrad.node' }, INFO);
    expect(r.status).not.toBe(0);
    expect(r.err).toMatch(/STABLEGRAD_BACKEND=native but the native backend cannot load: Cannot find module/);
  });

  it.each([
    [{ STABLEGRAD_BACKEND: 'gpu' }, "STABLEGRAD_BACKEND must be 'native' or 'ts' but received 'gpu'"],
    [{ STABLEGRAD_ISA: 'avx9' }, `STABLEGRAD_ISA must be one of ${ISAS.join(', ')} but received 'avx9'`],
    [{ STABLEGRAD_THREADS: 'two' }, "STABLEGRAD_THREADS must be an integer from 1 to 256 but received 'two'"],
  ])('rejects %o with a RangeError', (env, message) => {
    const r = child(env as Record<string, string>, INFO);
    expect(r.status).not.toBe(0);
    expect(r.err).toContain(`RangeError: ${message}`);
  });
});
