import type { Command } from 'commander';
import { loadDatabaseUrl } from '../config/index.js';
import { migrateStore } from '../vault/index.js';
import { configInput } from './open.js';
import { printResult } from './output.js';
import { runAction } from './run.js';

/**
 * `behalf migrate`: bring the database named by BEHALF_DATABASE_URL (or --database-url, as for
 * `serve`) to the schema this behalf knows, and say what was applied. Postgres needs it before
 * `serve` (a server never migrates Postgres by itself); SQLite migrates on open anyway, so there
 * it only reports. Safe to run again, and from several machines at once (an advisory lock).
 */
export function registerMigrateCommand(program: Command): void {
  program
    .command('migrate')
    .description(
      'Apply the database schema migrations this behalf knows (Postgres: before `serve`; safe to repeat)',
    )
    .option('--database-url <url>', 'sqlite:PATH or postgres://… (BEHALF_DATABASE_URL)')
    .option('--json', 'print what was applied as JSON')
    .action((options: Record<string, unknown>) =>
      runAction(async () => {
        // Only the database setting is read: migrating needs no encryption keys.
        const report = await migrateStore(loadDatabaseUrl(configInput(options)));
        const lines = report.applied.map((m) => `Applied migration ${m.version}: ${m.name}`);
        lines.push(
          report.applied.length === 0
            ? `${report.target} is at schema version ${report.to}, the newest this behalf knows: nothing to apply.`
            : `${report.target} is now at schema version ${report.to} (was ${report.from}).`,
        );
        printResult(
          options,
          {
            database: report.target,
            kind: report.kind,
            from: report.from,
            to: report.to,
            applied: report.applied,
          },
          lines.join('\n'),
        );
      }),
    );
}
