import type { Command } from 'commander';
import { createRuntime } from '../app.js';
import { loadConfig } from '../config/index.js';
import { BehalfError, isBehalfError } from '../errors.js';
import { configInput, localGoogleEnv } from './open.js';
import { isoOrNull, printResult, progressLine } from './output.js';
import { runAction } from './run.js';
import { addSettingsFlags } from './settings-flags.js';

export function registerSweepCommand(program: Command): void {
  addSettingsFlags(
    program
      .command('sweep')
      .description(
        'Token health sweep: check every grant (refreshing where due) and report who must sign in again',
      )
      .option(
        '--force',
        'refresh every grant, not only those due (finds revocations sooner; costs a token call per user)',
      )
      .option('--concurrency <n>', 'grants checked at once', '4')
      .option(
        '--local',
        "local mode's data: its database, key file and the emulator of the running `npm start`",
      )
      .option('--json', 'print the report as JSON'),
  ).action((options: Record<string, unknown>) =>
    runAction(async () => {
      const local = options.local === true;
      const config = await loadConfig(
        configInput(options, local ? await localGoogleEnv(process.env) : process.env),
      );
      const runtime = await createRuntime(config).catch((error: unknown) => {
        if (local && isBehalfError(error) && error.message.startsWith('BEHALF_GOOGLE_DISCOVERY_URL:')) {
          throw new BehalfError(
            'GOOGLE_UNAVAILABLE',
            `--local: local mode's emulator (${new URL(config.google.discoveryUrl).origin}) is not answering: is \`npm start\` running?`,
          );
        }
        throw error;
      });
      const google = new URL(config.google.discoveryUrl).origin;
      const progress = progressLine(options);
      try {
        const report = await runtime.behalf.sweep({
          force: options.force === true,
          concurrency: Math.max(1, Number(options.concurrency) || 4),
          onProgress: (r) =>
            progress.update(
              `Checking grants with Google at ${google}: ${r.checked} read, ${r.healthy} healthy, ${r.needsConsent.length} must sign in again`,
            ),
        });
        progress.done();
        const lines = [
          `Checked ${report.checked} grants with Google at ${google}: ${report.healthy} healthy (${report.refreshed} refreshed), ` +
            `${report.needsConsent.length} must sign in again, ${report.unavailable.length} could not be checked.`,
        ];
        if (report.needsConsent.length > 0)
          lines.push('Must sign in again (with consent):', ...report.needsConsent.map((sub) => `  ${sub}`));
        if (report.unavailable.length > 0)
          lines.push(
            'Could not be checked (Google unavailable; run again later):',
            ...report.unavailable.map((sub) => `  ${sub}`),
          );
        if (report.expiring.length > 0)
          lines.push(
            "Refresh token expires (Google gave an expiry: a Testing-mode OAuth client's 7 days, or time-based access; the user must sign in again by then):",
            ...report.expiring.map((e) => `  ${e.sub}  ${new Date(e.refreshTokenExpiresAt).toISOString()}`),
          );
        printResult(
          options,
          {
            google,
            checked: report.checked,
            healthy: report.healthy,
            refreshed: report.refreshed,
            needs_consent: report.needsConsent,
            unavailable: report.unavailable,
            expiring: report.expiring.map((e) => ({
              sub: e.sub,
              refresh_token_expires_at: new Date(e.refreshTokenExpiresAt).toISOString(),
            })),
            started_at: isoOrNull(report.startedAt),
            finished_at: isoOrNull(report.finishedAt),
          },
          lines.join('\n'),
        );
        if (report.unavailable.length > 0) process.exitCode = 75;
      } finally {
        progress.done();
        await runtime.behalf.close();
      }
    }),
  );
}
