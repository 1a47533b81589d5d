import { defineConfig } from 'vitest/config';

// The Postgres pass (BEHALF_TEST_BACKEND=postgres, where every test needs Postgres) run with the
// opt-out BEHALF_TEST_SKIP_POSTGRES=1: no test runs, and each is reported as skipped (a name
// pattern nothing matches), so the summary counts them.
const skipPostgresPass =
  process.env.BEHALF_TEST_BACKEND === 'postgres' && process.env.BEHALF_TEST_SKIP_POSTGRES === '1';

export default defineConfig({
  test: {
    ...(skipPostgresPass ? { testNamePattern: /^(?!)/ } : {}),
    include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // The machines have 2 cores; integration tests start real servers on random ports.
    pool: 'forks',
    // --expose-gc: memory tests measure what is retained, not garbage waiting for collection.
    poolOptions: { forks: { maxForks: 2, minForks: 1, execArgv: ['--expose-gc'] } },
  },
});
