import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // The machines have 2 cores; integration tests start real servers on random ports.
    pool: 'forks',
    // --expose-gc: memory tests measure what is retained, not garbage waiting for collection.
    poolOptions: { forks: { maxForks: 2, minForks: 1, execArgv: ['--expose-gc'] } },
  },
});
