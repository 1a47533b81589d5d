/**
 * Signed webhooks: behalf tells the app's backend when a user's grant dies, comes back, or the
 * user is deleted, following the Standard Webhooks specification so receivers verify with its
 * libraries (docs/webhooks.md).
 *
 * - ./outbox.ts: the events, recorded by the vault and the security log inside the transaction
 *   that makes the change (one delivery row per subscribed endpoint).
 * - ./dispatcher.ts: sends them, signed, retried on a schedule of about a day.
 * - ./url-policy.ts: where they may go (https, public hosts; checked again at every delivery).
 * - ./secrets.ts: `whsec_` secrets, encrypted at rest with the vault's keyring; the signature.
 * - {@link Webhooks}: the one object the CLI, the service API and the admin console manage them with.
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { Clock } from '../clock.js';
import type { Database } from '../database/index.js';
import { BehalfError } from '../errors.js';
import { envelopeKeyId, type Keyring } from '../vault/index.js';
import { WebhookDispatcher, type DispatcherOptions } from './dispatcher.js';
import { WEBHOOK_EVENT_TYPES, type WebhookEventType } from './outbox.js';
import { PostgresWebhookStore } from './postgres-store.js';
import { generateSecret, openSecret, sealSecret } from './secrets.js';
import { SqliteWebhookStore } from './sqlite-store.js';
import type {
  DeliveryCounts,
  DeliveryFilter,
  DeliveryRecord,
  EndpointStatus,
  WebhookStore,
} from './store.js';
import { checkWebhookUrl, type ResolveHost } from './url-policy.js';

export { MAX_ATTEMPTS, RETRY_JITTER, RETRY_SCHEDULE_MS } from './dispatcher.js';
export { WEBHOOK_EVENT_TYPES, type WebhookEventType } from './outbox.js';
export type { ResolveHost } from './url-policy.js';
export type {
  DeliveryCounts,
  DeliveryFilter,
  DeliveryRecord,
  EndpointStatus,
  WebhookStore,
} from './store.js';

/** The most endpoints one deployment may have: every event is written once per endpoint. */
export const MAX_ENDPOINTS = 50;
const ENDPOINT_ID = /^wh_[0-9a-f]{24}$/;

/** An endpoint as it may be shown: never its secret. */
export interface WebhookEndpoint {
  id: string;
  url: string;
  /** The event types it receives; null: every type, also types added in later versions. */
  events: WebhookEventType[] | null;
  status: EndpointStatus;
  /** Why it was disabled (it answered 410 Gone), or null. */
  disabledReason: string | null;
  createdAt: number;
  updatedAt: number;
  /** Its deliveries kept (pending, and finished ones for 30 days), by status. */
  deliveries: DeliveryCounts;
}

export interface WebhooksOptions {
  store: WebhookStore;
  keyring: Keyring;
  clock: Clock;
  logger: Logger;
  /** BEHALF_WEBHOOK_ALLOW_PRIVATE: http and loopback/private hosts allowed (local development only). */
  allowPrivate: boolean;
  /** DNS for the URL checks (default: the system's); injected by tests. */
  resolveHost?: ResolveHost;
  /** Delivery settings (timeout, poll interval, concurrency, randomness for the jitter). */
  delivery?: Pick<DispatcherOptions, 'timeoutMs' | 'pollIntervalMs' | 'concurrency' | 'random'>;
}

/** What re-encrypting the signing secrets under the primary key did (`behalf keys rotate`). */
export interface SecretRotationReport {
  endpoints: number;
  reencrypted: number;
  alreadyCurrent: number;
}

/**
 * Webhook endpoints and their deliveries: add, list and remove endpoints; look at recent
 * deliveries; and the dispatcher that sends them ({@link start} in a server, {@link deliverDue}
 * to send what is due now).
 */
export class Webhooks {
  readonly #options: WebhooksOptions;
  readonly #dispatcher: WebhookDispatcher;

  constructor(options: WebhooksOptions) {
    this.#options = options;
    this.#dispatcher = new WebhookDispatcher({
      store: options.store,
      keyring: options.keyring,
      clock: options.clock,
      logger: options.logger,
      policy: this.#policy(),
      ...options.delivery,
    });
  }

  /**
   * Add an endpoint. `events` defaults to every type (null). The URL must be https on a public
   * host (see ./url-policy.ts). The signing secret is in the answer and nowhere else ever again:
   * it is stored only encrypted.
   */
  async addEndpoint(input: {
    url: string;
    events?: readonly string[] | null | undefined;
  }): Promise<{ endpoint: WebhookEndpoint; secret: string }> {
    const events = checkEvents(input.events ?? null);
    const url = await checkWebhookUrl(input.url, this.#policy());
    const { store, keyring, clock } = this.#options;
    if ((await store.listEndpoints()).length >= MAX_ENDPOINTS) {
      throw new BehalfError(
        'INVALID_REQUEST',
        `There are ${MAX_ENDPOINTS} webhook endpoints already: remove one first.`,
        { reason: 'too_many_webhooks' },
      );
    }
    const id = `wh_${randomBytes(12).toString('hex')}`;
    const secret = generateSecret();
    const now = clock.now();
    const record = {
      id,
      url,
      events,
      secretCiphertext: sealSecret(keyring, { id, url }, secret),
      status: 'enabled' as const,
      disabledReason: null,
      createdAt: now,
      updatedAt: now,
    };
    await store.insertEndpoint(record);
    const { secretCiphertext: _sealed, ...shown } = record;
    return { endpoint: { ...shown, deliveries: { pending: 0, delivered: 0, failed: 0 } }, secret };
  }

  /** Every endpoint, oldest first, without secrets. */
  async listEndpoints(): Promise<WebhookEndpoint[]> {
    return (await this.#options.store.listEndpoints()).map(
      ({ secretCiphertext: _sealed, ...shown }) => shown,
    );
  }

  /** Remove an endpoint and its deliveries (pending ones are not sent); false when there is no such endpoint. */
  async removeEndpoint(id: string): Promise<boolean> {
    return ENDPOINT_ID.test(id) && this.#options.store.removeEndpoint(id);
  }

  /** Recent deliveries, newest first (default 50), optionally of one endpoint, status or user. */
  listDeliveries(filter: Partial<DeliveryFilter> = {}): Promise<DeliveryRecord[]> {
    return this.#options.store.listDeliveries({ ...filter, limit: filter.limit ?? 50 });
  }

  /** Send due deliveries every second until {@link stop} (`behalf serve` starts this). */
  start(): void {
    this.#dispatcher.start();
  }

  stop(): Promise<void> {
    return this.#dispatcher.stop();
  }

  /** Send every delivery due now, once each; the number of attempts made. */
  deliverDue(): Promise<number> {
    return this.#dispatcher.deliverDue();
  }

  /**
   * Re-encrypt every signing secret under the keyring's primary key (with `behalf keys rotate`).
   * A secret under a key that is not configured stops it with that error; run it again once the
   * key is back.
   */
  async rotateSecrets(): Promise<SecretRotationReport> {
    const { store, keyring, clock } = this.#options;
    const report: SecretRotationReport = { endpoints: 0, reencrypted: 0, alreadyCurrent: 0 };
    for (const endpoint of await store.listSecrets()) {
      report.endpoints++;
      if (envelopeKeyId(endpoint.secretCiphertext) === keyring.primaryId) {
        report.alreadyCurrent++;
        continue;
      }
      const resealed = sealSecret(
        keyring,
        endpoint,
        openSecret(keyring, endpoint, endpoint.secretCiphertext),
      );
      // A compare-and-set: an endpoint removed meanwhile is left alone.
      if (await store.replaceSecret(endpoint.id, endpoint.secretCiphertext, resealed, clock.now()))
        report.reencrypted++;
    }
    return report;
  }

  #policy() {
    return {
      allowPrivate: this.#options.allowPrivate,
      ...(this.#options.resolveHost === undefined ? {} : { resolveHost: this.#options.resolveHost }),
    };
  }
}

/** The webhook repository for a database. */
export function webhookStoreFor(database: Database): WebhookStore {
  return database.kind === 'sqlite' ? new SqliteWebhookStore(database) : new PostgresWebhookStore(database);
}

function checkEvents(events: readonly string[] | null): WebhookEventType[] | null {
  if (events === null) return null;
  if (!Array.isArray(events) || events.length === 0) {
    throw new BehalfError(
      'INVALID_REQUEST',
      'events is a non-empty list of event types (omit it for every type).',
      { reason: 'bad_events' },
    );
  }
  for (const type of events) {
    if (!(WEBHOOK_EVENT_TYPES as readonly string[]).includes(type)) {
      throw new BehalfError(
        'INVALID_REQUEST',
        `Unknown event type; the types are ${WEBHOOK_EVENT_TYPES.join(', ')}.`,
        { reason: 'unknown_event_type' },
      );
    }
  }
  return [...new Set(events)] as WebhookEventType[];
}
