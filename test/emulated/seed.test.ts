/**
 * Run by scripts/test-emulated.sh on an emulated CPU (qemu-aarch64, or qemu-x86_64 as an older
 * x86-64): the seed model's first 200 steps there give the losses the host gives, within
 * SEED_TOLERANCE. The host's run is a child process of the host's own Node (STABLEGRAD_HOST_NODE):
 * qemu-user passes an exec of a native binary to the kernel, which runs it natively.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

// |loss difference| at any step: the order of a GEMM's or a BatchNorm's sums differs between ISAs
// (AVX-512 against NEON measured 2.4e-7 over 200 steps; against the SSE2 path, 1.3e-5)
const SEED_TOLERANCE = 1e-4;
const STEPS = 200;
const hostNode = process.env.STABLEGRAD_HOST_NODE;
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { seedLosses } = require('./seed-steps.js') as { seedLosses(steps: number): { isa: string; losses: number[] } };

describe.skipIf(!hostNode)('the seed model on this CPU against the host', () => {
  it(`${STEPS} steps of the seed model give the host's losses within ${SEED_TOLERANCE}`, () => {
    const here = seedLosses(STEPS);
    const env = { ...process.env, STABLEGRAD_ADDON: '', STABLEGRAD_ISA: '', NODE_OPTIONS: '' };
    const r = spawnSync(hostNode!, [join(__dirname, 'seed-steps.js'), String(STEPS)], { encoding: 'utf8', env });
    expect(r.status, r.stderr).toBe(0);
    const host = JSON.parse(r.stdout) as { isa: string; losses: number[] };
    expect(here.isa).toBe(process.env.STABLEGRAD_TEST_ISA);
    expect(here.losses).toHaveLength(STEPS);
    expect(host.losses).toHaveLength(STEPS);
    const worst = Math.max(...here.losses.map((l, i) => Math.abs(l - host.losses[i])));
    console.log(`seed model, ${STEPS} steps: ${here.isa} (emulated) against ${host.isa} (host): largest loss difference ${worst.toExponential(2)}`);
    expect(worst).toBeLessThan(SEED_TOLERANCE);
    expect(here.losses[STEPS - 1]).toBeLessThan(here.losses[0] / 2); // and it trained
  });
});
