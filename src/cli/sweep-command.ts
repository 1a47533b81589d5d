import type { Command } from 'commander';
import { createRuntime } from '../app.js';
import { loadConfig } from '../config/index.js';
import { runAction } from './run.js';
import { addSettingsFlags, settingsFromOptions } from './settings-flags.js';

export function registerSweepCommand(program: Command): void {
  addSettingsFlags(
    program
      .command('sweep')
      .description('Token health sweep: check every grant (refreshing where due) and report who must sign in again')
      .option('--force', 'refresh every grant, not only those due (finds revocations sooner; costs a token call per user)')
      .option('--concurrency <n>', 'grants checked at once', '4')
      .option('--local', 'use local mode settings (the generated key file)'),
  ).action((options: Record<string, unknown>) =>
    runAction(async () => {
      const config = await loadConfig({
        mode: options.local === true ? 'local' : 'production',
        env: process.env,
        flags: settingsFromOptions(options),
      });
      const runtime = await createRuntime(config);
      try {
        const report = await runtime.behalf.sweep({
          force: options.force === true,
          concurrency: Math.max(1, Number(options.concurrency) || 4),
        });
        process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
        if (report.unavailable.length > 0) process.exitCode = 75;
      } finally {
        await runtime.behalf.close();
      }
    }),
  );
}
