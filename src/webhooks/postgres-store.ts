import type { PostgresDatabase } from '../database/index.js';
import {
  checkDeliveryFilter,
  toDelivery,
  withCounts,
  type AttemptOutcome,
  type ClaimedDelivery,
  type CountRow,
  type DeliveryFilter,
  type DeliveryRecord,
  type DeliveryRow,
  type EndpointRecord,
  type EndpointRow,
  type WebhookStore,
} from './store.js';

const DELIVERY_COLUMNS =
  'id, endpoint_id, event_type, sub, status, attempts, next_attempt_at, last_attempt_at, last_status, last_error, created_at, finished_at';

// The tables come from the database's migrations (src/database/migrations/postgres.ts, version 6).
const SQL = {
  insertEndpoint: `INSERT INTO webhook_endpoints (id, url, events, secret, status, disabled_reason, created_at, updated_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
  listEndpoints: 'SELECT * FROM webhook_endpoints ORDER BY created_at, id',
  countDeliveries:
    'SELECT endpoint_id, status, COUNT(*) AS n FROM webhook_deliveries GROUP BY endpoint_id, status',
  removeEndpoint: 'DELETE FROM webhook_endpoints WHERE id = $1',
  listDeliveries: `SELECT ${DELIVERY_COLUMNS} FROM webhook_deliveries
    WHERE ($1::text IS NULL OR endpoint_id = $1) AND ($2::text IS NULL OR status = $2) AND ($3::text IS NULL OR sub = $3)
    ORDER BY created_at DESC, id DESC LIMIT $4`,
  // SKIP LOCKED: instances claiming at once each take other rows, none waits on another's.
  claimDue: `WITH due AS (
      SELECT d.id FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id
      WHERE d.status = 'pending' AND d.next_attempt_at <= $1 AND (d.lease_until IS NULL OR d.lease_until <= $1) AND e.status = 'enabled'
      ORDER BY d.next_attempt_at, d.id LIMIT $3
      FOR UPDATE OF d SKIP LOCKED)
    UPDATE webhook_deliveries d SET attempts = d.attempts + 1, lease_until = $2, last_attempt_at = $1
    FROM due, webhook_endpoints e
    WHERE d.id = due.id AND e.id = d.endpoint_id
    RETURNING d.id, d.endpoint_id, e.url, e.secret, d.payload, d.attempts, d.next_attempt_at`,
  recordOutcome: `UPDATE webhook_deliveries SET status = $3, next_attempt_at = $4, lease_until = NULL, last_status = $5, last_error = $6, finished_at = $7
    WHERE id = $1 AND attempts = $2 AND status = 'pending'`,
  disableEndpoint: `UPDATE webhook_endpoints SET status = 'disabled', disabled_reason = $2, updated_at = $3 WHERE id = $1`,
  failPending: `UPDATE webhook_deliveries SET status = 'failed', next_attempt_at = NULL, lease_until = NULL, last_error = $2, finished_at = $3
    WHERE endpoint_id = $1 AND status = 'pending'`,
  prune: `DELETE FROM webhook_deliveries WHERE status <> 'pending' AND finished_at < $1`,
  listSecrets: 'SELECT id, url, secret FROM webhook_endpoints ORDER BY id',
  replaceSecret: 'UPDATE webhook_endpoints SET secret = $3, updated_at = $4 WHERE id = $1 AND secret = $2',
} as const;

/**
 * Webhook endpoints and deliveries on Postgres, over the database's one pool. Several instances
 * deliver at once: a claim leases rows with FOR UPDATE SKIP LOCKED, so each delivery attempt is
 * made by one of them.
 */
export class PostgresWebhookStore implements WebhookStore {
  readonly #database: PostgresDatabase;

  constructor(database: PostgresDatabase) {
    this.#database = database;
  }

  async insertEndpoint(record: EndpointRecord): Promise<void> {
    await this.#database.query(SQL.insertEndpoint, [
      record.id,
      record.url,
      record.events,
      record.secretCiphertext,
      record.status,
      record.disabledReason,
      record.createdAt,
      record.updatedAt,
    ]);
  }

  async listEndpoints(): ReturnType<WebhookStore['listEndpoints']> {
    const [endpoints, counts] = await Promise.all([
      this.#database.query<EndpointRow>(SQL.listEndpoints),
      this.#database.query<CountRow>(SQL.countDeliveries),
    ]);
    return withCounts(endpoints.rows, counts.rows);
  }

  async removeEndpoint(id: string): Promise<boolean> {
    return (await this.#database.query(SQL.removeEndpoint, [id])).rowCount === 1;
  }

  async listDeliveries(filter: DeliveryFilter): Promise<DeliveryRecord[]> {
    const limit = checkDeliveryFilter(filter);
    const { rows } = await this.#database.query<DeliveryRow>(SQL.listDeliveries, [
      filter.endpointId ?? null,
      filter.status ?? null,
      filter.sub ?? null,
      limit,
    ]);
    return rows.map(toDelivery);
  }

  async claimDue(now: number, leaseUntil: number, limit: number): Promise<ClaimedDelivery[]> {
    const { rows } = await this.#database.query<{
      id: string;
      endpoint_id: string;
      url: string;
      secret: Buffer;
      payload: string;
      attempts: number;
      next_attempt_at: number;
    }>(SQL.claimDue, [now, leaseUntil, limit]);
    // UPDATE … RETURNING comes back in no particular order: oldest due first, as SQLite's.
    rows.sort((a, b) => a.next_attempt_at - b.next_attempt_at || (a.id < b.id ? -1 : 1));
    return rows.map((row) => ({
      id: row.id,
      endpointId: row.endpoint_id,
      url: row.url,
      secretCiphertext: row.secret,
      payload: row.payload,
      attempt: row.attempts,
    }));
  }

  async recordOutcome(id: string, attempt: number, now: number, outcome: AttemptOutcome): Promise<boolean> {
    const finished = outcome.kind === 'delivered' || outcome.retryAt === null;
    const result = await this.#database.query(SQL.recordOutcome, [
      id,
      attempt,
      outcome.kind === 'delivered' ? 'delivered' : finished ? 'failed' : 'pending',
      finished ? null : (outcome as { retryAt: number }).retryAt,
      outcome.httpStatus,
      outcome.kind === 'delivered' ? null : outcome.error,
      finished ? now : null,
    ]);
    return result.rowCount === 1;
  }

  async disableEndpoint(id: string, reason: string, now: number): Promise<void> {
    await this.#database.transaction(async (db) => {
      await db.query(SQL.disableEndpoint, [id, reason, now]);
      await db.query(SQL.failPending, [id, `not sent: the endpoint was disabled (${reason})`, now]);
    });
  }

  async pruneFinished(before: number): Promise<number> {
    return (await this.#database.query(SQL.prune, [before])).rowCount ?? 0;
  }

  async listSecrets(): ReturnType<WebhookStore['listSecrets']> {
    const { rows } = await this.#database.query<{ id: string; url: string; secret: Buffer }>(SQL.listSecrets);
    return rows.map((row) => ({ id: row.id, url: row.url, secretCiphertext: row.secret }));
  }

  async replaceSecret(id: string, expected: Buffer, next: Buffer, now: number): Promise<boolean> {
    return (await this.#database.query(SQL.replaceSecret, [id, expected, next, now])).rowCount === 1;
  }
}
