// The tests run on an emulated CPU by scripts/test-emulated.sh: the kernel parity tests, the
// zero-size and edge-size tests, and the seed model against the host. Worker threads, not child
// processes: qemu-user runs only the process it started.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/parity.test.ts', 'test/parity-gemm.test.ts', 'test/zero-size.test.ts', 'test/edge.test.ts',
      'test/emulated/*.test.ts'],
    pool: 'threads',
    testTimeout: 600_000,
    reporters: ['default', ['json', { outputFile: process.env.STABLEGRAD_TEST_REPORT ?? '.vitest-results-emulated.json' }]],
  },
});
