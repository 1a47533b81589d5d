/**
 * Delivers the outbox (webhook_deliveries) to the endpoints, as the Standard Webhooks
 * specification describes (https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md):
 * a JSON POST with `webhook-id` (the delivery's id, the same on every attempt), `webhook-timestamp`
 * (this attempt's time, Unix seconds) and `webhook-signature` (./secrets.ts). A 2xx answer is
 * delivered; anything else, or no answer within the timeout, is retried on {@link RETRY_SCHEDULE_MS}.
 *
 * Why an outbox dispatcher and not the job queue (src/jobs: plainjob, pg-boss):
 * - The event must be written in the same transaction as the change it announces. An outbox row is
 *   a plain INSERT in that transaction on both backends (./outbox.ts); pg-boss sends jobs through
 *   its own statements on its own connections, outside the vault's transaction.
 * - Retries span a day and run on behalf's injected clock, so tests walk the whole schedule
 *   without waiting; pg-boss schedules on the database's clock and plainjob on Date.now().
 * - The row is also the delivery's record (status, attempts, last answer) that the console shows:
 *   one table on both backends, rather than a queue's rows plus a status table beside them.
 * Claims lease rows (FOR UPDATE SKIP LOCKED on Postgres, one writer on SQLite), so any number of
 * instances deliver from one database, and a crashed sender's rows are taken again once their lease
 * runs out: at least once, never lost.
 */
import type { Logger } from 'pino';
import { Agent, request } from 'undici';
import type { Clock } from '../clock.js';
import { isBehalfError } from '../errors.js';
import type { Keyring } from '../vault/index.js';
import { openSecret, signDelivery } from './secrets.js';
import type { ClaimedDelivery, WebhookStore } from './store.js';
import { guardedLookup, parseWebhookUrl, type UrlPolicy } from './url-policy.js';

const SECOND = 1_000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;

/**
 * The pause before each retry, after a failed attempt: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h
 * (the schedule the Standard Webhooks reference implementations use), each ±10 % at random so
 * that a receiver coming back is not met by every retry at once. Eight attempts in all over about
 * 27.6 hours; then the delivery has failed.
 */
export const RETRY_SCHEDULE_MS: readonly number[] = [
  5 * SECOND,
  5 * MINUTE,
  30 * MINUTE,
  2 * HOUR,
  5 * HOUR,
  10 * HOUR,
  10 * HOUR,
];
export const MAX_ATTEMPTS = RETRY_SCHEDULE_MS.length + 1;
export const RETRY_JITTER = 0.1;
/** How long finished deliveries are kept for the console before they are deleted. */
const FINISHED_RETENTION_MS = 30 * 24 * HOUR;
/** A claim's lease outlasts the attempt's timeout by this much: a live sender always records first. */
const LEASE_MARGIN_MS = MINUTE;
/** Answer bodies are read (and thrown away) up to this size; the connection is dropped after. */
const MAX_ANSWER_BYTES = 64 * 1024;

export interface DispatcherOptions {
  store: WebhookStore;
  keyring: Keyring;
  clock: Clock;
  logger: Logger;
  policy: UrlPolicy;
  /** How long one attempt may take, connecting included (default 15 s). */
  timeoutMs?: number;
  /** How often a started dispatcher looks for due deliveries (default 1 s). */
  pollIntervalMs?: number;
  /** Attempts in flight at once (default 8). */
  concurrency?: number;
  random?: () => number;
}

/** The pause after failed attempt `attempt` (from 1), or null when it was the last one. */
function retryDelay(attempt: number, random: () => number = Math.random): number | null {
  const base = RETRY_SCHEDULE_MS[attempt - 1];
  if (base === undefined) return null;
  return Math.round(base * (1 - RETRY_JITTER + 2 * RETRY_JITTER * random()));
}

type AttemptResult = { status: number } | { error: string; status?: undefined };

export class WebhookDispatcher {
  readonly #options: DispatcherOptions;
  readonly #timeoutMs: number;
  readonly #agent: Agent;
  readonly #log: Logger;
  #pass: Promise<number> = Promise.resolve(0);
  #timer: NodeJS.Timeout | undefined;
  #started = false;
  #closed = false;
  #lastPrune = Number.NEGATIVE_INFINITY;

  constructor(options: DispatcherOptions) {
    this.#options = options;
    this.#timeoutMs = options.timeoutMs ?? 15 * SECOND;
    this.#log = options.logger.child({ component: 'webhooks' });
    this.#agent = new Agent({
      // Every connection's address comes from the checked lookup (DNS rebinding, see ./url-policy.ts).
      connect: { lookup: guardedLookup(options.policy), timeout: this.#timeoutMs },
      headersTimeout: this.#timeoutMs,
      bodyTimeout: this.#timeoutMs,
    });
  }

  /** Look for due deliveries every poll interval until {@link stop}. */
  start(): void {
    if (this.#started) return;
    this.#started = true;
    const tick = () => {
      this.deliverDue()
        .catch((error: unknown) =>
          this.#log.warn(
            { code: isBehalfError(error) ? error.code : 'error' },
            'webhook deliveries could not be read; trying again',
          ),
        )
        .finally(() => {
          if (this.#started) this.#timer = setTimeout(tick, this.#options.pollIntervalMs ?? SECOND).unref();
        });
    };
    tick();
  }

  /** Stop looking; resolves once the attempts in progress have been recorded. */
  async stop(): Promise<void> {
    if (this.#closed) return;
    this.#started = false;
    this.#closed = true;
    clearTimeout(this.#timer);
    await this.#pass.catch(() => undefined);
    await this.#agent.close();
  }

  /**
   * Attempt every delivery due now (by the clock), a batch at a time, until none is due; resolves
   * with the number of attempts made. Passes in one process run one after another; after
   * {@link stop}, a pass attempts nothing.
   */
  deliverDue(): Promise<number> {
    const pass = this.#pass.catch(() => 0).then(() => this.#deliverDue());
    this.#pass = pass;
    return pass;
  }

  async #deliverDue(): Promise<number> {
    const { store, clock } = this.#options;
    const batch = this.#options.concurrency ?? 8;
    let attempted = 0;
    while (!this.#closed) {
      const now = clock.now();
      const claimed = await store.claimDue(now, now + this.#timeoutMs + LEASE_MARGIN_MS, batch);
      if (claimed.length === 0) break;
      // Every attempt of the batch ends (and is recorded) before a failure to record one ends the
      // pass; a delivery whose outcome could not be recorded is taken again when its lease runs out.
      const settled = await Promise.allSettled(claimed.map((delivery) => this.#attempt(delivery)));
      attempted += claimed.length;
      const failed = settled.find((outcome) => outcome.status === 'rejected');
      if (failed !== undefined) throw failed.reason;
    }
    const now = clock.now();
    if (now - this.#lastPrune >= HOUR) {
      this.#lastPrune = now;
      await store.pruneFinished(now - FINISHED_RETENTION_MS);
    }
    return attempted;
  }

  async #attempt(delivery: ClaimedDelivery): Promise<void> {
    const { store, clock } = this.#options;
    const result = await this.#send(delivery);
    const now = clock.now();
    const where = { webhook: delivery.endpointId, delivery: delivery.id, attempt: delivery.attempt };
    if (result.status !== undefined && result.status >= 200 && result.status < 300) {
      await store.recordOutcome(delivery.id, delivery.attempt, now, {
        kind: 'delivered',
        httpStatus: result.status,
      });
      this.#log.debug({ ...where, status: result.status }, 'webhook delivered');
      return;
    }
    const error = result.status === undefined ? result.error : describeStatus(result.status);
    const httpStatus = result.status ?? null;
    // 410 Gone: the receiver says this endpoint is no more. It is disabled (and its other pending
    // deliveries failed) rather than retried for a day; remove it and add it again to resume.
    if (result.status === 410) {
      await store.recordOutcome(delivery.id, delivery.attempt, now, {
        kind: 'failed',
        httpStatus,
        error,
        retryAt: null,
      });
      await store.disableEndpoint(delivery.endpointId, 'it answered 410 Gone', now);
      this.#log.warn(where, 'webhook endpoint answered 410 Gone: disabled');
      return;
    }
    const delay = retryDelay(delivery.attempt, this.#options.random);
    await store.recordOutcome(delivery.id, delivery.attempt, now, {
      kind: 'failed',
      httpStatus,
      error,
      retryAt: delay === null ? null : now + delay,
    });
    if (delay === null)
      this.#log.error({ ...where, error }, `webhook delivery failed ${MAX_ATTEMPTS} times: given up`);
    else this.#log.warn({ ...where, error, retryInMs: delay }, 'webhook delivery failed; will retry');
  }

  /** One POST. Never throws: what went wrong comes back as a short error without secrets. */
  async #send(delivery: ClaimedDelivery): Promise<AttemptResult> {
    const { keyring, clock, policy } = this.#options;
    let secret: string;
    let url: URL;
    try {
      secret = openSecret(keyring, { id: delivery.endpointId, url: delivery.url }, delivery.secretCiphertext);
      // The URL's form and any IP literal in it, under today's policy; a host name is checked
      // on the address it resolves to, by the agent's lookup.
      url = parseWebhookUrl(delivery.url, policy);
    } catch (error) {
      return { error: `not sent: ${isBehalfError(error) ? (error.reason ?? error.code) : 'error'}` };
    }
    const timestamp = Math.floor(clock.now() / 1000);
    try {
      const answer = await request(url, {
        method: 'POST',
        dispatcher: this.#agent,
        maxRedirections: 0,
        signal: AbortSignal.timeout(this.#timeoutMs),
        headers: {
          'content-type': 'application/json',
          'user-agent': 'behalf-webhooks',
          'webhook-id': delivery.id,
          'webhook-timestamp': String(timestamp),
          'webhook-signature': signDelivery(secret, delivery.id, timestamp, delivery.payload),
        },
        body: delivery.payload,
      });
      await answer.body.dump({ limit: MAX_ANSWER_BYTES }).catch(() => undefined);
      return { status: answer.statusCode };
    } catch (error) {
      return { error: describeFailure(error, this.#timeoutMs) };
    }
  }
}

function describeStatus(status: number): string {
  if (status >= 300 && status < 400) return `HTTP ${status}: redirects are not followed`;
  return `HTTP ${status}`;
}

/** A network failure in a few words: its class and code, never a message that may echo the request. */
function describeFailure(error: unknown, timeoutMs: number): string {
  const chain: unknown[] = [];
  for (
    let e: unknown = error;
    e !== undefined && e !== null && chain.length < 4;
    e = (e as { cause?: unknown }).cause
  )
    chain.push(e);
  if (chain.some((e) => isBehalfError(e) && e.reason === 'private_address'))
    return 'refused: the host resolves to a non-public address';
  if (
    chain.some(
      (e) =>
        (e as Error).name === 'TimeoutError' ||
        (e as { code?: unknown }).code === 'UND_ERR_CONNECT_TIMEOUT' ||
        (e as { code?: unknown }).code === 'UND_ERR_HEADERS_TIMEOUT',
    )
  ) {
    return `no answer within ${timeoutMs} ms`;
  }
  const code = chain
    .map((e) => (e as { code?: unknown }).code)
    .find((c): c is string => typeof c === 'string' && /^[A-Z0-9_]{2,40}$/.test(c));
  return `connection failed${code === undefined ? '' : ` (${code})`}`;
}
