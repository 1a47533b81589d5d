import type Database from 'better-sqlite3';
import type { SqliteDatabase } from '../database/index.js';
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

/**
 * Webhook endpoints and deliveries on SQLite, on the database's one connection. SQLite has one
 * writer at a time, so a claim (read the due rows, lease them) is one IMMEDIATE transaction and
 * two processes on the file never take the same delivery.
 */
export class SqliteWebhookStore implements WebhookStore {
  readonly #database: SqliteDatabase;
  readonly #sql: ReturnType<typeof prepare>;

  constructor(database: SqliteDatabase) {
    this.#database = database;
    this.#sql = prepare(database.connection);
  }

  async insertEndpoint(record: EndpointRecord): Promise<void> {
    await this.#database.run(() =>
      this.#sql.insertEndpoint.run({
        id: record.id,
        url: record.url,
        events: record.events === null ? null : record.events.join(' '),
        secret: record.secretCiphertext,
        status: record.status,
        disabled_reason: record.disabledReason,
        created_at: record.createdAt,
        updated_at: record.updatedAt,
      }),
    );
  }

  async listEndpoints(): ReturnType<WebhookStore['listEndpoints']> {
    return this.#database.run(() =>
      withCounts(
        this.#sql.listEndpoints.all() as EndpointRow[],
        this.#sql.countDeliveries.all() as CountRow[],
      ),
    );
  }

  async removeEndpoint(id: string): Promise<boolean> {
    return this.#database.run(() => this.#sql.removeEndpoint.run(id).changes === 1);
  }

  async listDeliveries(filter: DeliveryFilter): Promise<DeliveryRecord[]> {
    const limit = checkDeliveryFilter(filter);
    return this.#database.run(() =>
      (
        this.#sql.listDeliveries.all({
          endpoint_id: filter.endpointId ?? null,
          status: filter.status ?? null,
          sub: filter.sub ?? null,
          limit,
        }) as DeliveryRow[]
      ).map(toDelivery),
    );
  }

  async claimDue(now: number, leaseUntil: number, limit: number): Promise<ClaimedDelivery[]> {
    // A look first, outside any transaction: a dispatcher that finds nothing due (most polls)
    // never takes the write lock every process on the file shares.
    if ((await this.#database.run(() => this.#sql.due.all({ now, limit: 1 }))).length === 0) return [];
    return this.#database.transaction(() => {
      const due = this.#sql.due.all({ now, limit }) as Array<{
        id: string;
        endpoint_id: string;
        url: string;
        secret: Buffer;
        payload: string;
        attempts: number;
      }>;
      for (const row of due) this.#sql.lease.run({ id: row.id, now, lease_until: leaseUntil });
      return due.map((row) => ({
        id: row.id,
        endpointId: row.endpoint_id,
        url: row.url,
        secretCiphertext: row.secret,
        payload: row.payload,
        attempt: row.attempts + 1,
      }));
    });
  }

  async recordOutcome(id: string, attempt: number, now: number, outcome: AttemptOutcome): Promise<boolean> {
    const finished = outcome.kind === 'delivered' || outcome.retryAt === null;
    return this.#database.run(
      () =>
        this.#sql.recordOutcome.run({
          id,
          attempt,
          status: outcome.kind === 'delivered' ? 'delivered' : finished ? 'failed' : 'pending',
          next_attempt_at: finished ? null : (outcome as { retryAt: number }).retryAt,
          last_status: outcome.httpStatus,
          last_error: outcome.kind === 'delivered' ? null : outcome.error,
          finished_at: finished ? now : null,
        }).changes === 1,
    );
  }

  async disableEndpoint(id: string, reason: string, now: number): Promise<void> {
    await this.#database.transaction(() => {
      this.#sql.disableEndpoint.run({ id, reason, now });
      this.#sql.failPending.run({
        endpoint_id: id,
        error: `not sent: the endpoint was disabled (${reason})`,
        now,
      });
    });
  }

  async pruneFinished(before: number): Promise<number> {
    return this.#database.run(() => this.#sql.prune.run(before).changes);
  }

  async listSecrets(): ReturnType<WebhookStore['listSecrets']> {
    return this.#database.run(() =>
      (this.#sql.listSecrets.all() as Array<{ id: string; url: string; secret: Buffer }>).map((row) => ({
        id: row.id,
        url: row.url,
        secretCiphertext: row.secret,
      })),
    );
  }

  async replaceSecret(id: string, expected: Buffer, next: Buffer, now: number): Promise<boolean> {
    return this.#database.run(() => this.#sql.replaceSecret.run({ id, expected, next, now }).changes === 1);
  }
}

// The tables come from the database's migrations (src/database/migrations/sqlite.ts, version 6).
function prepare(db: Database.Database) {
  return {
    insertEndpoint: db.prepare(
      `INSERT INTO webhook_endpoints (id, url, events, secret, status, disabled_reason, created_at, updated_at)
       VALUES (@id, @url, @events, @secret, @status, @disabled_reason, @created_at, @updated_at)`,
    ),
    listEndpoints: db.prepare('SELECT * FROM webhook_endpoints ORDER BY created_at, id'),
    countDeliveries: db.prepare(
      'SELECT endpoint_id, status, COUNT(*) AS n FROM webhook_deliveries GROUP BY endpoint_id, status',
    ),
    removeEndpoint: db.prepare('DELETE FROM webhook_endpoints WHERE id = ?'),
    listDeliveries: db.prepare(
      `SELECT id, endpoint_id, event_type, sub, status, attempts, next_attempt_at, last_attempt_at, last_status, last_error, created_at, finished_at
       FROM webhook_deliveries
       WHERE (@endpoint_id IS NULL OR endpoint_id = @endpoint_id) AND (@status IS NULL OR status = @status) AND (@sub IS NULL OR sub = @sub)
       ORDER BY created_at DESC, id DESC LIMIT @limit`,
    ),
    due: db.prepare(
      `SELECT d.id, d.endpoint_id, e.url, e.secret, d.payload, d.attempts
       FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id
       WHERE d.status = 'pending' AND d.next_attempt_at <= @now AND (d.lease_until IS NULL OR d.lease_until <= @now) AND e.status = 'enabled'
       ORDER BY d.next_attempt_at, d.id LIMIT @limit`,
    ),
    lease: db.prepare(
      'UPDATE webhook_deliveries SET attempts = attempts + 1, lease_until = @lease_until, last_attempt_at = @now WHERE id = @id',
    ),
    recordOutcome: db.prepare(
      `UPDATE webhook_deliveries SET status = @status, next_attempt_at = @next_attempt_at, lease_until = NULL,
         last_status = @last_status, last_error = @last_error, finished_at = @finished_at
       WHERE id = @id AND attempts = @attempt AND status = 'pending'`,
    ),
    disableEndpoint: db.prepare(
      `UPDATE webhook_endpoints SET status = 'disabled', disabled_reason = @reason, updated_at = @now WHERE id = @id`,
    ),
    failPending: db.prepare(
      `UPDATE webhook_deliveries SET status = 'failed', next_attempt_at = NULL, lease_until = NULL, last_error = @error, finished_at = @now
       WHERE endpoint_id = @endpoint_id AND status = 'pending'`,
    ),
    prune: db.prepare(`DELETE FROM webhook_deliveries WHERE status <> 'pending' AND finished_at < ?`),
    listSecrets: db.prepare('SELECT id, url, secret FROM webhook_endpoints ORDER BY id'),
    replaceSecret: db.prepare(
      'UPDATE webhook_endpoints SET secret = @next, updated_at = @now WHERE id = @id AND secret = @expected',
    ),
  };
}
