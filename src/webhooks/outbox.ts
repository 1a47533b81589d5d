/**
 * What behalf announces, and the outbox it is written to. An event is recorded by the code that
 * makes the change it announces, inside that change's own transaction (the vault's writes of a
 * grant's status, a user's deletion, the security event log): one `webhook_deliveries` row per
 * enabled endpoint that subscribes to its type. A crash before the commit loses both the change
 * and the event; after it, the dispatcher (./dispatcher.ts) finds the rows and delivers them.
 *
 * The vault and the security log call in here from inside their transactions, so this module
 * imports nothing from them at run time (only types), and no state is kept here.
 */
import type Database from 'better-sqlite3';
import type { Queryable, SqliteDatabase } from '../database/index.js';
import type { GrantStatus } from '../vault/types.js';

/** Every event type, in the order the documentation lists them. */
export const WEBHOOK_EVENT_TYPES = [
  'grant.needs_consent',
  'grant.revoked',
  'grant.restored',
  'user.deleted',
  'security_event.received',
] as const;

export type WebhookEventType = (typeof WEBHOOK_EVENT_TYPES)[number];

/** Why a grant's status changed (the event's `data.reason`). */
export type GrantChangeReason =
  | 'signed_in'
  | 'signed_out'
  | 'refresh_refused'
  | 'security_event'
  /** The refresh token's expiry Google gave passed (Testing-mode or time-based access). */
  | 'grant_expired';

/** Why a user was deleted (`user.deleted`'s `data.reason`). */
export type UserDeletionReason = 'deleted' | 'account_purged';

/** One event: `data` is `{sub, ...fields}`. Fields are identifiers and states, never a token. */
export interface WebhookEvent {
  type: WebhookEventType;
  sub: string;
  fields: Record<string, string>;
}

/**
 * The event announcing a change of a grant's status, or undefined when there is none to announce:
 * a new grant (the sign-in answer tells the app), or no change. The type follows the new status:
 * `needs_consent` and `revoked` name themselves, and `active` after either is `grant.restored`.
 */
export function grantStatusEvent(
  sub: string,
  before: GrantStatus | null,
  after: GrantStatus,
  reason: GrantChangeReason | undefined,
): WebhookEvent | undefined {
  if (before === null || before === after) return undefined;
  const type: WebhookEventType =
    after === 'active' ? 'grant.restored' : after === 'revoked' ? 'grant.revoked' : 'grant.needs_consent';
  return { type, sub, fields: { previous_status: before, ...(reason === undefined ? {} : { reason }) } };
}

export function userDeletedEvent(sub: string, reason: UserDeletionReason): WebhookEvent {
  return { type: 'user.deleted', sub, fields: { reason } };
}

/**
 * The body every delivery of the event carries, signed as it is: the Standard Webhooks payload
 * shape `{type, timestamp, data}` (https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md#payload-structure).
 */
function eventPayload(event: WebhookEvent, now: number): string {
  return JSON.stringify({
    type: event.type,
    timestamp: new Date(now).toISOString(),
    data: { sub: event.sub, ...event.fields },
  });
}

// One row per subscribed, enabled endpoint. The id is the message id (webhook-id) every attempt
// of this delivery carries: 16 random bytes, unique per event and endpoint.
const SQLITE_RECORD = `INSERT INTO webhook_deliveries (id, endpoint_id, event_type, sub, payload, status, attempts, next_attempt_at, created_at)
  SELECT 'msg_' || lower(hex(randomblob(16))), id, @type, @sub, @payload, 'pending', 0, @now, @now
  FROM webhook_endpoints
  WHERE status = 'enabled' AND (events IS NULL OR instr(' ' || events || ' ', ' ' || @type || ' ') > 0)`;

const POSTGRES_RECORD = `INSERT INTO webhook_deliveries (id, endpoint_id, event_type, sub, payload, status, attempts, next_attempt_at, created_at)
  SELECT 'msg_' || replace(gen_random_uuid()::text, '-', ''), id, $1, $2, $3, 'pending', 0, $4, $4
  FROM webhook_endpoints
  WHERE status = 'enabled' AND (events IS NULL OR $1 = ANY (events))`;

const sqliteStatements = new WeakMap<Database.Database, Database.Statement>();

/**
 * Record events for delivery, inside the transaction the SQLite connection is in (synchronous, as
 * better-sqlite3's transactions are). Returns the number of deliveries written.
 */
export function recordSqliteEvents(
  database: SqliteDatabase,
  events: ReadonlyArray<WebhookEvent | undefined>,
  now: number,
): number {
  let statement = sqliteStatements.get(database.connection);
  if (statement === undefined) {
    statement = database.connection.prepare(SQLITE_RECORD);
    sqliteStatements.set(database.connection, statement);
  }
  let written = 0;
  for (const event of events) {
    if (event !== undefined)
      written += statement.run({
        type: event.type,
        sub: event.sub,
        payload: eventPayload(event, now),
        now,
      }).changes;
  }
  return written;
}

/** Record events for delivery, inside the transaction `db` is in. Returns the number of deliveries written. */
export async function recordPostgresEvents(
  db: Queryable,
  events: ReadonlyArray<WebhookEvent | undefined>,
  now: number,
): Promise<number> {
  let written = 0;
  for (const event of events) {
    if (event !== undefined)
      written +=
        (await db.query(POSTGRES_RECORD, [event.type, event.sub, eventPayload(event, now), now])).rowCount ??
        0;
  }
  return written;
}
