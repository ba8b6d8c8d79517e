/**
 * The kernel fuzzer (scripts/fuzz-kernels.js) on both backends, in child processes: a few thousand
 * random bad calls with a fixed seed, each array inside guard regions. Every call returns or throws
 * a TypeError/RangeError that names the kernel, writes nothing outside its arrays, and the process
 * survives. `npm run fuzz` runs far more calls.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const script = join(__dirname, '..', 'scripts', 'fuzz-kernels.js');

describe('kernel fuzzer', () => {
  it.each(['native', 'ts'])('%s: 4,000 random bad calls, no crash, no write outside an array, every error names its kernel', (backend) => {
    const r = spawnSync(process.execPath, [script, '--backend', backend, '--calls', '4000', '--seed', '29'], { encoding: 'utf8', timeout: 120_000 });
    expect(r.signal, `crashed: ${r.stderr}`).toBeNull();
    const summary = JSON.parse(r.stdout.trim().split('\n').pop()!);
    expect(summary, JSON.stringify(summary)).toMatchObject({ ok: true, calls: 4000 });
    expect(summary.returned).toBeGreaterThan(100); // the valid calls among them ran
    expect(r.status).toBe(0);
  });
});
