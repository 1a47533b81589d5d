/**
 * The tests Stryker runs against each mutant of the security core (see stryker.config.mjs): the
 * unit and contract tests of src/idtoken and src/vault, and the end-to-end tests of sign-in,
 * tokens, calls, RISC and the service API, which drive those modules through the server. Left
 * out, because a mutant must be judged in seconds and none of them is the only test of the
 * security core: tests that start `behalf` as a child process (CLI, migrate command, coherence,
 * no-DDL role), refresh storms on a busy machine, fuzz and memory tests (test/calls/proxy-memory.test.ts), browser tests, the
 * emulator's own tests, jobs, and the secrets-leak scan (a whole flow, its scan is its point).
 *
 * Stryker runs the files one at a time. The order below is the order they run in (see the
 * sequencer): fast unit tests first, so that a mutant which must run every related file (one
 * executed while modules load or in a `beforeAll`) is usually killed within a second.
 */
import { relative } from 'node:path';
import { defineConfig } from 'vitest/config';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

/** Folders (every `*.test.ts` directly in them) and files, in the order they run. */
const ORDER = [
  'test/idtoken/',
  'test/vault/envelope.test.ts',
  'test/vault/keyring.test.ts',
  'test/vault/api-keys.test.ts',
  'test/vault/database-url.test.ts',
  'test/vault/vault.test.ts',
  'test/vault/key-check.test.ts',
  'test/vault/sqlite-store.test.ts',
  'test/tokens/',
  'test/signin/',
  'test/service/',
  'test/risc/',
  'test/calls/auth-client-refusals.test.ts',
  'test/calls/call-rules.test.ts',
  'test/calls/offline-calls.test.ts',
  'test/vault/postgres-store.test.ts',
  // The vault's other tests (new stores and features), after the rest.
  'test/vault/',
];

/** Files in the order of ORDER, then by path. */
class ListedOrderSequencer extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const rank = (spec: TestSpecification): number => {
      const path = relative(spec.project.config.root, spec.moduleId).replaceAll('\\', '/');
      const index = ORDER.findIndex(
        (entry) => path === entry || (entry.endsWith('/') && path.startsWith(entry)),
      );
      return index === -1 ? ORDER.length : index;
    };
    return [...files].sort(
      (a, b) => rank(a) - rank(b) || (a.moduleId < b.moduleId ? -1 : a.moduleId > b.moduleId ? 1 : 0),
    );
  }
}

export default defineConfig({
  test: {
    include: ORDER.map((entry) => (entry.endsWith('/') ? `${entry}*.test.ts` : entry)),
    // `behalf migrate` as a child process.
    exclude: ['test/vault/migrate-command.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    sequence: { sequencer: ListedOrderSequencer },
  },
});
