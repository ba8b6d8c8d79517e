import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // run on emulated CPUs by scripts/test-emulated.sh (vitest.emulated.config.mts)
    exclude: ['test/emulated/**', 'node_modules/**'],
    // the package test packs and installs the package: minutes, not seconds, on a cold cache
    testTimeout: 60_000,
    hookTimeout: 600_000,
    // .ci/run reads the counts from here for its closing `tests: N passed, M failed` line
    reporters: ['default', ['json', { outputFile: '.vitest-results.json' }]],
  },
});
