/**
 * The webhook repository's contract: endpoints and the delivery outbox (both tables from the
 * database's migrations, version 6). One interface, implemented over SQLite and Postgres; one
 * contract test suite runs unchanged against each (test/webhooks/store-contract.ts). Secrets stay
 * ciphertext here: ./secrets.ts seals and opens them.
 */
import { BehalfError } from '../errors.js';
import type { WebhookEventType } from './outbox.js';

export type EndpointStatus = 'enabled' | 'disabled';
export type DeliveryStatus = 'pending' | 'delivered' | 'failed';

export interface EndpointRecord {
  /** `wh_` and 24 hex digits. */
  id: string;
  url: string;
  /** The event types it receives; null: every type, also types added in later versions. */
  events: WebhookEventType[] | null;
  secretCiphertext: Buffer;
  status: EndpointStatus;
  /** Why it was disabled (a 410 Gone answer), or null. */
  disabledReason: string | null;
  /** Unix milliseconds. */
  createdAt: number;
  updatedAt: number;
}

export interface DeliveryCounts {
  pending: number;
  delivered: number;
  failed: number;
}

/** A delivery as the console shows it: its state, never its payload's secret (it has none) nor the endpoint's. */
export interface DeliveryRecord {
  /** The webhook-id: the same on every attempt. */
  id: string;
  endpointId: string;
  eventType: WebhookEventType;
  sub: string;
  status: DeliveryStatus;
  /** Attempts started so far. */
  attempts: number;
  /** When a pending delivery is next due; null once finished. */
  nextAttemptAt: number | null;
  lastAttemptAt: number | null;
  /** The HTTP status of the last answer; null when there was none (a timeout, a refused connection). */
  lastStatus: number | null;
  /** What went wrong on the last attempt (no secret, no response body); null after a success. */
  lastError: string | null;
  createdAt: number;
  finishedAt: number | null;
}

/** A delivery taken for one attempt (see {@link WebhookStore.claimDue}). */
export interface ClaimedDelivery {
  id: string;
  endpointId: string;
  url: string;
  secretCiphertext: Buffer;
  payload: string;
  /** This attempt's number, from 1: what {@link WebhookStore.recordOutcome} is conditioned on. */
  attempt: number;
}

/** How one attempt ended. */
export type AttemptOutcome =
  | { kind: 'delivered'; httpStatus: number }
  /** Failed; due again at `retryAt`, or finished as failed when `retryAt` is null. */
  | { kind: 'failed'; httpStatus: number | null; error: string; retryAt: number | null };

export interface DeliveryFilter {
  endpointId?: string;
  status?: DeliveryStatus;
  sub?: string;
  /** Newest first; at most this many (1 to {@link MAX_DELIVERY_PAGE}). */
  limit: number;
}

export const MAX_DELIVERY_PAGE = 500;

export interface WebhookStore {
  insertEndpoint(record: EndpointRecord): Promise<void>;
  /** Every endpoint, oldest first, with its deliveries counted by status. */
  listEndpoints(): Promise<Array<EndpointRecord & { deliveries: DeliveryCounts }>>;
  /** Delete an endpoint and its deliveries; false when there was no such endpoint. */
  removeEndpoint(id: string): Promise<boolean>;
  listDeliveries(filter: DeliveryFilter): Promise<DeliveryRecord[]>;
  /**
   * Take up to `limit` deliveries that are due at `now` (pending, of an enabled endpoint, not
   * taken by another attempt whose lease is still running) for one attempt each: their attempt
   * count goes up and they are leased until `leaseUntil`, so no one else takes them meanwhile;
   * a sender that dies leaves them to be taken again once the lease has run out.
   */
  claimDue(now: number, leaseUntil: number, limit: number): Promise<ClaimedDelivery[]>;
  /**
   * Record how attempt `attempt` ended, only if the delivery is still pending at that attempt
   * (a late answer after the lease ran out and another attempt started is dropped). False when
   * nothing was written.
   */
  recordOutcome(id: string, attempt: number, now: number, outcome: AttemptOutcome): Promise<boolean>;
  /** Disable an endpoint (it answered 410 Gone) and fail its pending deliveries, in one transaction. */
  disableEndpoint(id: string, reason: string, now: number): Promise<void>;
  /** Delete finished deliveries that finished before `before`; the number deleted. */
  pruneFinished(before: number): Promise<number>;
  /** Every endpoint's id, URL and secret ciphertext, for key rotation. */
  listSecrets(): Promise<Array<{ id: string; url: string; secretCiphertext: Buffer }>>;
  /** Replace a secret's ciphertext if it is still `expected` (key rotation); false when it changed or is gone. */
  replaceSecret(id: string, expected: Buffer, next: Buffer, now: number): Promise<boolean>;
}

/** Rows as both backends return them: SQLite keeps `events` space-separated, Postgres as TEXT[]. */
export interface EndpointRow {
  id: string;
  url: string;
  events: string | string[] | null;
  secret: Buffer;
  status: string;
  disabled_reason: string | null;
  created_at: number;
  updated_at: number;
}

export interface DeliveryRow {
  id: string;
  endpoint_id: string;
  event_type: string;
  sub: string;
  status: string;
  attempts: number;
  next_attempt_at: number | null;
  last_attempt_at: number | null;
  last_status: number | null;
  last_error: string | null;
  created_at: number;
  finished_at: number | null;
}

export interface CountRow {
  endpoint_id: string;
  status: string;
  n: number;
}

export function toEndpoint(row: EndpointRow): EndpointRecord {
  const events = row.events === null ? null : Array.isArray(row.events) ? row.events : row.events.split(' ');
  return {
    id: row.id,
    url: row.url,
    events: events as WebhookEventType[] | null,
    secretCiphertext: row.secret,
    status: row.status as EndpointStatus,
    disabledReason: row.disabled_reason,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

/** Endpoints with their counts, from the endpoint rows and the (endpoint, status, count) rows. */
export function withCounts(
  endpoints: EndpointRow[],
  counts: CountRow[],
): Array<EndpointRecord & { deliveries: DeliveryCounts }> {
  return endpoints.map((row) => {
    const deliveries: DeliveryCounts = { pending: 0, delivered: 0, failed: 0 };
    for (const count of counts)
      if (count.endpoint_id === row.id) deliveries[count.status as DeliveryStatus] = Number(count.n);
    return { ...toEndpoint(row), deliveries };
  });
}

export function toDelivery(row: DeliveryRow): DeliveryRecord {
  return {
    id: row.id,
    endpointId: row.endpoint_id,
    eventType: row.event_type as WebhookEventType,
    sub: row.sub,
    status: row.status as DeliveryStatus,
    attempts: row.attempts,
    nextAttemptAt: row.next_attempt_at,
    lastAttemptAt: row.last_attempt_at,
    lastStatus: row.last_status,
    lastError: row.last_error,
    createdAt: row.created_at,
    finishedAt: row.finished_at,
  };
}

/** The page size, after checking a filter both backends accept. */
export function checkDeliveryFilter(filter: DeliveryFilter): number {
  if (!Number.isInteger(filter.limit) || filter.limit < 1 || filter.limit > MAX_DELIVERY_PAGE) {
    throw new BehalfError('INVALID_REQUEST', `A page of deliveries holds 1 to ${MAX_DELIVERY_PAGE}.`, {
      reason: 'bad_limit',
    });
  }
  if (filter.status !== undefined && !['pending', 'delivered', 'failed'].includes(filter.status)) {
    throw new BehalfError('INVALID_REQUEST', 'A delivery status is pending, delivered or failed.', {
      reason: 'bad_status',
    });
  }
  return filter.limit;
}
