import type { PostgresDatabase, SqliteDatabase } from '../database/index.js';
import {
  erasePostgresUser,
  eraseSqliteUser,
  revokePostgresGrant,
  revokeSqliteGrant,
} from '../vault/index.js';
import { recordPostgresEvents, recordSqliteEvents, type WebhookEvent } from '../webhooks/outbox.js';

/** What Google last told us about a user's account (Cross-Account Protection). */
export type SecurityState =
  | 'sessions_revoked'
  | 'tokens_revoked'
  | 'token_revoked'
  | 'account_disabled'
  | 'account_disabled_hijacking'
  | 'credential_change_required';

export interface UserSecurity {
  state: SecurityState;
  /** Unix milliseconds. */
  at: number;
}

/** One thing a security event makes behalf do. */
export type SecurityStep =
  /** Mark the grant revoked, erase its tokens, and record why. */
  | { op: 'revoke_grant'; sub: string; clientId: string; state: SecurityState }
  /** Forget the user entirely (as DELETE /v1/users/{sub}). */
  | { op: 'delete_user'; sub: string }
  /** Record (or, with null, clear) the user's security state. */
  | { op: 'set_state'; sub: string; state: SecurityState | null }
  /**
   * Announce the event: to the webhooks (`security_event.received`) and in the user's security
   * event history (the admin console shows it), with its type and what behalf did.
   */
  | { op: 'announce'; sub: string; event: string; action: string };

/** One security event received about a user, as the admin console lists them. */
export interface SecurityEventRecord {
  /** The event type's short name (`tokens-revoked`, `account-disabled`, …). */
  type: string;
  /** What behalf did about it (see SecurityAction in ./receiver.ts). */
  action: string;
  /** When it was received, Unix milliseconds. */
  at: number;
}

/**
 * The security events received, in the database beside the vault: each event token's id (Google
 * redelivers) and each user's latest security state. Recording an event's id and acting on it are
 * one transaction, so an event is acted on exactly once, across instances: a handling that fails
 * records nothing, and Google's redelivery acts. The webhook events it causes are recorded in the
 * same transaction, so they too are sent once per event, not once per redelivery.
 */
export interface SecurityLog {
  /**
   * Record the event id `jti` and apply `steps`, in one transaction. False, with nothing applied,
   * when the id was recorded already (a redelivery of an event that was acted on).
   */
  applyEvent(jti: string, now: number, steps: readonly SecurityStep[]): Promise<boolean>;
  getState(sub: string): Promise<UserSecurity | null>;
  /** The events received about a user, newest first. */
  listEvents(sub: string, limit: number): Promise<SecurityEventRecord[]>;
}

/** The users a step changes the grant of: their token caches must forget them. */
function touchedUsers(steps: readonly SecurityStep[]): string[] {
  return steps
    .filter((step) => step.op === 'revoke_grant' || step.op === 'delete_user')
    .map((step) => step.sub);
}

/** A user deleted by the event leaves no history behind (the deletion erased the rest). */
function keepsHistory(step: SecurityStep & { op: 'announce' }): boolean {
  return step.action !== 'user_deleted';
}

function announcement(step: SecurityStep & { op: 'announce' }): WebhookEvent {
  return {
    type: 'security_event.received',
    sub: step.sub,
    fields: { event: step.event, action: step.action },
  };
}

export class SqliteSecurityLog implements SecurityLog {
  readonly #database: SqliteDatabase;
  readonly #sql;

  constructor(database: SqliteDatabase) {
    this.#database = database;
    const db = database.connection;
    this.#sql = {
      record: db.prepare(
        'INSERT INTO security_events (jti, received_at) VALUES (?, ?) ON CONFLICT DO NOTHING',
      ),
      clearState: db.prepare('DELETE FROM user_security WHERE sub = ?'),
      setState: db.prepare(
        'INSERT INTO user_security (sub, state, at) VALUES (?, ?, ?) ON CONFLICT (sub) DO UPDATE SET state = excluded.state, at = excluded.at',
      ),
      getState: db.prepare('SELECT state, at FROM user_security WHERE sub = ?'),
      recordHistory: db.prepare(
        'INSERT INTO security_event_history (sub, jti, type, action, at) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING',
      ),
      listEvents: db.prepare(
        'SELECT type, action, at FROM security_event_history WHERE sub = ? ORDER BY at DESC, type LIMIT ?',
      ),
    };
  }

  async applyEvent(jti: string, now: number, steps: readonly SecurityStep[]): Promise<boolean> {
    const applied = await this.#database.transaction(() => {
      if (this.#sql.record.run(jti, now).changes === 0) return false;
      for (const step of steps) {
        if (step.op === 'revoke_grant') {
          // State first, then the grant: the order deleting a user locks them in (see PostgresSecurityLog).
          this.#sql.setState.run(step.sub, step.state, now);
          revokeSqliteGrant(this.#database, step.sub, step.clientId, now, 'security_event');
        } else if (step.op === 'delete_user') {
          eraseSqliteUser(this.#database, step.sub, 'account_purged', now);
        } else if (step.op === 'announce') {
          recordSqliteEvents(this.#database, [announcement(step)], now);
          if (keepsHistory(step)) this.#sql.recordHistory.run(step.sub, jti, step.event, step.action, now);
        } else if (step.state === null) {
          this.#sql.clearState.run(step.sub);
        } else {
          this.#sql.setState.run(step.sub, step.state, now);
        }
      }
      return true;
    });
    if (applied) for (const sub of touchedUsers(steps)) this.#database.changes.publish(sub);
    return applied;
  }

  async getState(sub: string): Promise<UserSecurity | null> {
    return this.#database.run(() => {
      const row = this.#sql.getState.get(sub) as { state: SecurityState; at: number } | undefined;
      return row === undefined ? null : { state: row.state, at: Number(row.at) };
    });
  }

  async listEvents(sub: string, limit: number): Promise<SecurityEventRecord[]> {
    return this.#database.run(() =>
      (this.#sql.listEvents.all(sub, limit) as SecurityEventRecord[]).map(toEventRecord),
    );
  }
}

function toEventRecord(row: SecurityEventRecord): SecurityEventRecord {
  return { type: row.type, action: row.action, at: Number(row.at) };
}

const SQL = {
  record: 'INSERT INTO security_events (jti, received_at) VALUES ($1, $2) ON CONFLICT DO NOTHING',
  clearState: 'DELETE FROM user_security WHERE sub = $1',
  setState:
    'INSERT INTO user_security (sub, state, at) VALUES ($1, $2, $3) ON CONFLICT (sub) DO UPDATE SET state = excluded.state, at = excluded.at',
  getState: 'SELECT state, at FROM user_security WHERE sub = $1',
  recordHistory:
    'INSERT INTO security_event_history (sub, jti, type, action, at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING',
  listEvents:
    'SELECT type, action, at FROM security_event_history WHERE sub = $1 ORDER BY at DESC, type LIMIT $2',
} as const;

export class PostgresSecurityLog implements SecurityLog {
  readonly #database: PostgresDatabase;

  constructor(database: PostgresDatabase) {
    this.#database = database;
  }

  async applyEvent(jti: string, now: number, steps: readonly SecurityStep[]): Promise<boolean> {
    const applied = await this.#database.transaction(async (db) => {
      // A concurrent delivery of the same id waits here for this one's commit, then finds it.
      if ((await db.query(SQL.record, [jti, now])).rowCount === 0) return false;
      for (const step of steps) {
        if (step.op === 'revoke_grant') {
          // State first, then the grant: the order deleting a user takes their row locks in
          // (user_security, then users and grants). The other way round, a revoke and a deletion
          // of one user at once deadlocked (40P01), and one of the two events failed.
          await db.query(SQL.setState, [step.sub, step.state, now]);
          await revokePostgresGrant(db, step.sub, step.clientId, now, 'security_event');
        } else if (step.op === 'delete_user') {
          await erasePostgresUser(db, this.#database.jobSchema, step.sub, 'account_purged', now);
        } else if (step.op === 'announce') {
          await recordPostgresEvents(db, [announcement(step)], now);
          if (keepsHistory(step))
            await db.query(SQL.recordHistory, [step.sub, jti, step.event, step.action, now]);
        } else if (step.state === null) {
          await db.query(SQL.clearState, [step.sub]);
        } else {
          await db.query(SQL.setState, [step.sub, step.state, now]);
        }
      }
      return true;
    });
    if (applied) for (const sub of touchedUsers(steps)) this.#database.changes.publish(sub);
    return applied;
  }

  async getState(sub: string): Promise<UserSecurity | null> {
    const { rows } = await this.#database.query<{ state: SecurityState; at: number }>(SQL.getState, [sub]);
    const row = rows[0];
    return row === undefined ? null : { state: row.state, at: Number(row.at) };
  }

  async listEvents(sub: string, limit: number): Promise<SecurityEventRecord[]> {
    const { rows } = await this.#database.query<SecurityEventRecord>(SQL.listEvents, [sub, limit]);
    return rows.map(toEventRecord);
  }
}
