import type { Command } from 'commander';
import { systemClock } from '../clock.js';
import { loadWebhookConfig } from '../config/index.js';
import { BehalfError } from '../errors.js';
import { createLogger } from '../logging.js';
import { Webhooks, webhookStoreFor, type WebhookEndpoint } from '../webhooks/index.js';
import { configInput, withVault } from './open.js';
import { runAction } from './run.js';

/**
 * `behalf webhooks add|list|remove`: manage webhook endpoints. Needs only the database and the
 * encryption keys (to seal a new endpoint's secret), not Google's client secret; the same
 * BEHALF_DATABASE_URL, BEHALF_ENCRYPTION_KEYS (or --local's key file) and
 * BEHALF_WEBHOOK_ALLOW_PRIVATE as `serve`.
 */
export function registerWebhooksCommand(program: Command): void {
  const webhooks = program
    .command('webhooks')
    .description('Signed webhooks to your backend: add, list and remove endpoints');
  const common = (command: Command) =>
    command
      .option('--database-url <url>', 'sqlite:PATH or postgres://… (BEHALF_DATABASE_URL)')
      .option('--local', 'use local mode settings (the generated key file)');

  common(
    webhooks
      .command('add')
      .description('Add an endpoint; its signing secret is printed once, on the last line')
      .argument('<url>', 'https URL on a public host')
      .option('--events <types>', 'comma-separated event types (default: every type)'),
  ).action((url: string, options: Record<string, unknown>) =>
    runAction(() =>
      withWebhooks(options, async (hooks) => {
        const events =
          typeof options.events === 'string'
            ? options.events
                .split(',')
                .map((e) => e.trim())
                .filter((e) => e.length > 0)
            : null;
        const { endpoint, secret } = await hooks.addEndpoint({ url, events });
        process.stdout.write(
          `Created webhook ${endpoint.id} for ${endpoint.url} (events: ${eventsText(endpoint)}). Its signing secret is shown once; store it as a secret.\n${secret}\n`,
        );
      }),
    ),
  );

  common(webhooks.command('list').description('List endpoints (never their secrets)')).action(
    (options: Record<string, unknown>) =>
      runAction(() =>
        withWebhooks(options, async (hooks) => {
          const endpoints = await hooks.listEndpoints();
          const lines = endpoints.map((e) => {
            const { pending, delivered, failed } = e.deliveries;
            const disabled = e.disabledReason === null ? '' : ` (${e.disabledReason})`;
            return `${e.id}  ${e.status}${disabled}  ${e.url}  events: ${eventsText(e)}  deliveries: ${pending} pending, ${delivered} delivered, ${failed} failed`;
          });
          process.stdout.write(endpoints.length === 0 ? 'No webhook endpoints.\n' : `${lines.join('\n')}\n`);
        }),
      ),
  );

  common(
    webhooks
      .command('remove')
      .description('Remove an endpoint and its deliveries')
      .argument('<id>', 'the endpoint id (wh_…)'),
  ).action((id: string, options: Record<string, unknown>) =>
    runAction(() =>
      withWebhooks(options, async (hooks) => {
        if (!(await hooks.removeEndpoint(id))) {
          throw new BehalfError(
            'WEBHOOK_NOT_FOUND',
            `No webhook endpoint ${/^[\w-]{1,64}$/.test(id) ? id : 'with that id'}.`,
          );
        }
        process.stdout.write(`Removed webhook ${id}.\n`);
      }),
    ),
  );
}

function eventsText(endpoint: Pick<WebhookEndpoint, 'events'>): string {
  return endpoint.events === null ? 'all' : endpoint.events.join(',');
}

/** The database and keys alone, checked as `serve` checks them (see ./open.ts), for the time of `body`. */
async function withWebhooks(
  options: Record<string, unknown>,
  body: (webhooks: Webhooks) => Promise<void>,
): Promise<void> {
  const { allowPrivate } = loadWebhookConfig(configInput(options));
  await withVault(options, async ({ database, keyring }) => {
    const webhooks = new Webhooks({
      store: webhookStoreFor(database),
      keyring,
      clock: systemClock,
      logger: createLogger('silent'),
      allowPrivate,
    });
    try {
      await body(webhooks);
    } finally {
      await webhooks.stop();
    }
  });
}
