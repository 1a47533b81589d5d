// @ts-check
/**
 * Mutation testing of the security core (issue 16): Stryker plants small bugs (mutants) in the
 * code that verifies ID tokens, encrypts and stores tokens, refreshes them, signs users in, calls
 * Google for them and handles Google's security events, and runs the tests that reach each one.
 * A mutant no test notices is a bug the suite would let through.
 *
 * `npm run test:mutation` runs this, then test/mutation/check-thresholds.ts, which reads the JSON
 * report and fails below the thresholds per group of files (see that file). A mutant that cannot
 * be told apart from the original by any test (an equivalent mutant) is marked where it is, with
 * `// Stryker disable next-line <mutator>: <why>`; the check prints every such mark.
 *
 * Incremental: the results of the last full run are committed (test/mutation/stryker-incremental.json),
 * so a run re-tests only mutants whose code or covering tests changed. Scope a run while working
 * with `--mutate` and a throwaway `--incrementalFile` (see README, Development), so the committed
 * file keeps the whole set.
 *
 * @type {import('@stryker-mutator/api/core').PartialStrykerOptions}
 */
export default {
  packageManager: 'npm',
  testRunner: 'vitest',
  vitest: { configFile: 'vitest.mutation.config.ts' },
  // Mutants that do not type-check are weeded out before any test runs. The checker compiles the
  // mutated folders and what they import, not the whole project: it checks every mutant, and a
  // third of the project's files is a third of the time.
  checkers: ['typescript'],
  tsconfigFile: 'test/mutation/tsconfig.json',
  coverageAnalysis: 'perTest',
  mutate: [
    'src/idtoken/**/*.ts',
    'src/vault/**/*.ts',
    'src/tokens/**/*.ts',
    'src/signin/**/*.ts',
    'src/calls/**/*.ts',
    'src/risc/**/*.ts',
    // Re-exports and types only: nothing to mutate. (src/vault/index.ts opens stores: it stays.)
    '!src/{idtoken,tokens,signin,calls,risc}/index.ts',
    '!src/vault/types.ts',
  ],
  incremental: true,
  incrementalFile: 'test/mutation/stryker-incremental.json',
  // Static mutants (code that runs only while a module loads: constants, regexes, SQL text) need
  // every test file reloaded for each one. Measured on the 2-core machine: 528 of 3,573 mutants,
  // 77% of a full run's time (about 2 h instead of about 35 min). They are ignored, so they count
  // neither as killed nor as survived; the constants that carry a security rule (forbidden
  // headers, the API key format, allowed hosts, envelope layout) have direct unit tests instead.
  ignoreStatic: true,
  // The machines have 2 cores shared by several people: never more than 2 test processes.
  concurrency: 2,
  // Tests wait on real servers and databases: a busy machine must not turn a slow run into a kill.
  timeoutMS: 20_000,
  timeoutFactor: 2,
  reporters: ['clear-text', 'progress', 'html', 'json'],
  htmlReporter: { fileName: 'reports/mutation/mutation.html' },
  jsonReporter: { fileName: 'reports/mutation/mutation.json' },
  clearTextReporter: { allowColor: false, logTests: false },
  // The per-group thresholds live in test/mutation/check-thresholds.ts; these only colour the table.
  thresholds: { high: 90, low: 80, break: null },
  tempDirName: '.stryker-tmp',
  cleanTempDir: true,
};
