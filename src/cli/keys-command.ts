import type { Command } from 'commander';
import { loadConfig } from '../config/index.js';
import { createRuntime } from '../app.js';
import { createApiKey, newKeyEntry } from '../vault/index.js';
import { runAction } from './run.js';
import { addSettingsFlags, settingsFromOptions } from './settings-flags.js';

export function registerKeysCommand(program: Command): void {
  const keys = program.command('keys').description('Service API keys and encryption keys');

  addSettingsFlags(
    keys
      .command('create-api-key')
      .description('Create a service API key for your backend (printed once, on the last line; stored hashed)')
      .option('--name <name>', 'what the key is for', 'backend')
      .option('--local', 'use local mode settings (the generated key file)'),
  ).action((options: Record<string, unknown>) =>
    runAction(async () => {
      const { runtime } = await open(options);
      try {
        const { id, key } = await createApiKey(runtime.store, String(options.name));
        process.stdout.write(`Created service API key ${id} (${String(options.name)}). It is shown once; store it as a secret.\n${key}\n`);
      } finally {
        await runtime.behalf.close();
      }
    }),
  );

  addSettingsFlags(
    keys
      .command('rotate')
      .description('Re-encrypt every stored token and webhook secret under the primary (first) key of BEHALF_ENCRYPTION_KEYS')
      .option('--local', 'use local mode settings (the generated key file)'),
  ).action((options: Record<string, unknown>) =>
    runAction(async () => {
      const { runtime } = await open(options);
      try {
        const report = await runtime.vault.rotateKeys();
        const webhookSecrets = await runtime.behalf.webhooks.rotateSecrets();
        process.stdout.write(`${JSON.stringify({ ...report, webhookSecrets })}\n`);
      } finally {
        await runtime.behalf.close();
      }
    }),
  );

  keys
    .command('generate')
    .description('Print a new random encryption key entry (ID:BASE64) to put first in BEHALF_ENCRYPTION_KEYS')
    .option('--id <id>', 'key id (default: k + date)')
    .action((options: { id?: string }) =>
      runAction(async () => {
        process.stdout.write(`${newKeyEntry(options.id)}\n`);
      }),
    );
}

async function open(options: Record<string, unknown>) {
  const config = await loadConfig({
    mode: options.local === true ? 'local' : 'production',
    env: process.env,
    flags: settingsFromOptions(options),
  });
  return { config, runtime: await createRuntime(config) };
}
