import type { Command } from 'commander';
import { systemClock } from '../clock.js';
import { createLogger } from '../logging.js';
import { createApiKey, listApiKeys, newKeyEntry, revokeApiKey } from '../vault/index.js';
import { Webhooks, webhookStoreFor } from '../webhooks/index.js';
import { withStore, withVault } from './open.js';
import { isoOrNull, printResult, progressLine, when } from './output.js';
import { runAction } from './run.js';

/** `--database-url` and `--local`, the settings every `keys` command that opens the database reads. */
function databaseOptions(command: Command): Command {
  return command
    .option('--database-url <url>', 'sqlite:PATH or postgres://… (BEHALF_DATABASE_URL)')
    .option('--local', "local mode's data (its database and generated key file)")
    .option('--json', 'print the result as JSON');
}

export function registerKeysCommand(program: Command): void {
  const keys = program.command('keys').description('Service API keys and encryption keys');

  databaseOptions(
    keys
      .command('create-api-key')
      .description(
        'Create a service API key for your backend (printed once, on the last line; stored hashed). Needs only the database',
      )
      .option('--name <name>', 'what the key is for', 'backend'),
  ).action((options: Record<string, unknown>) =>
    runAction(() =>
      withStore(options, async (store) => {
        const created = await createApiKey(store, String(options.name));
        printResult(
          options,
          { id: created.id, name: created.name, created_at: isoOrNull(created.createdAt), key: created.key },
          `Created service API key ${created.id} (${created.name}). It is shown once; store it as a secret.\n${created.key}`,
        );
      }),
    ),
  );

  databaseOptions(
    keys.command('list').description('List service API keys: id, name, created, last used (never the key)'),
  ).action((options: Record<string, unknown>) =>
    runAction(() =>
      withStore(options, async (store) => {
        const found = await listApiKeys(store);
        const rows = [
          ['ID', 'NAME', 'CREATED', 'LAST USED'],
          ...found.map((k) => [k.id, k.name, when(k.createdAt), when(k.lastUsedAt)]),
        ];
        const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)));
        printResult(
          options,
          {
            api_keys: found.map((k) => ({
              id: k.id,
              name: k.name,
              created_at: isoOrNull(k.createdAt),
              last_used_at: isoOrNull(k.lastUsedAt),
            })),
          },
          found.length === 0
            ? 'No service API keys (create one with `behalf keys create-api-key`).'
            : rows
                .map((row) =>
                  row
                    .map((cell, column) => cell.padEnd(widths[column]!))
                    .join('  ')
                    .trimEnd(),
                )
                .join('\n'),
        );
      }),
    ),
  );

  databaseOptions(
    keys
      .command('revoke')
      .description('Revoke a service API key by its id: from the next request on it authenticates nothing')
      .argument('<id>', 'the key id (`behalf keys list`)'),
  ).action((id: string, options: Record<string, unknown>) =>
    runAction(() =>
      withStore(options, async (store) => {
        await revokeApiKey(store, id);
        printResult(options, { id, revoked: true }, `Revoked service API key ${id}.`);
      }),
    ),
  );

  databaseOptions(
    keys
      .command('rotate')
      .description(
        'Re-encrypt every stored token and webhook secret under the primary (first) key of BEHALF_ENCRYPTION_KEYS',
      ),
  ).action((options: Record<string, unknown>) =>
    runAction(() =>
      withVault(options, async ({ database, keyring, vault }) => {
        const progress = progressLine(options);
        const report = await vault.rotateKeys({
          onProgress: (r) =>
            progress.update(`Re-encrypting: ${r.rows} grants read, ${r.reencrypted} re-encrypted`),
        });
        progress.done();
        const webhooks = new Webhooks({
          store: webhookStoreFor(database),
          keyring,
          clock: systemClock,
          logger: createLogger('silent'),
          allowPrivate: false,
        });
        const webhookSecrets = await webhooks.rotateSecrets();
        printResult(
          options,
          {
            primary_key: report.primaryKey,
            grants: {
              rows: report.rows,
              reencrypted: report.reencrypted,
              already_current: report.alreadyCurrent,
              retried: report.retried,
              vanished: report.vanished,
            },
            webhook_secrets: {
              endpoints: webhookSecrets.endpoints,
              reencrypted: webhookSecrets.reencrypted,
              already_current: webhookSecrets.alreadyCurrent,
            },
          },
          [
            `Every stored token is now under key '${report.primaryKey}': ${report.rows} grants, ${report.reencrypted} re-encrypted, ${report.alreadyCurrent} already under it` +
              `${report.vanished > 0 ? `, ${report.vanished} deleted meanwhile` : ''}.`,
            `Webhook secrets: ${webhookSecrets.endpoints} endpoints, ${webhookSecrets.reencrypted} re-encrypted, ${webhookSecrets.alreadyCurrent} already under it.`,
            'Older keys may now be dropped from BEHALF_ENCRYPTION_KEYS.',
          ].join('\n'),
        );
      }),
    ),
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
