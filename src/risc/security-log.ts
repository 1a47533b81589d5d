import Database from 'better-sqlite3';
import pg from 'pg';
import { BehalfError } from '../errors.js';

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

/**
 * Beside the vault, the security events received: event ids (Google redelivers; each is acted on
 * once, across instances) and each user's latest security state. Kept in the same database, in
 * tables of its own.
 */
export interface SecurityLog {
  /** Records an event id; false when it was already recorded (a redelivery). */
  recordEvent(jti: string, now: number): Promise<boolean>;
  setState(sub: string, state: SecurityState | null, now: number): Promise<void>;
  getState(sub: string): Promise<UserSecurity | null>;
  close(): Promise<void>;
}

const TABLES = [
  'CREATE TABLE IF NOT EXISTS security_events (jti TEXT PRIMARY KEY, received_at BIGINT NOT NULL)',
  'CREATE TABLE IF NOT EXISTS user_security (sub TEXT PRIMARY KEY, state TEXT NOT NULL, at BIGINT NOT NULL)',
];

export class SqliteSecurityLog implements SecurityLog {
  readonly #db: Database.Database;

  constructor(path: string) {
    this.#db = new Database(path);
    this.#db.pragma('journal_mode = WAL');
    this.#db.pragma('busy_timeout = 5000');
    for (const sql of TABLES) this.#db.exec(sql);
  }

  async recordEvent(jti: string, now: number): Promise<boolean> {
    return this.#db.prepare('INSERT INTO security_events (jti, received_at) VALUES (?, ?) ON CONFLICT DO NOTHING').run(jti, now).changes === 1;
  }

  async setState(sub: string, state: SecurityState | null, now: number): Promise<void> {
    if (state === null) this.#db.prepare('DELETE FROM user_security WHERE sub = ?').run(sub);
    else
      this.#db
        .prepare('INSERT INTO user_security (sub, state, at) VALUES (?, ?, ?) ON CONFLICT (sub) DO UPDATE SET state = excluded.state, at = excluded.at')
        .run(sub, state, now);
  }

  async getState(sub: string): Promise<UserSecurity | null> {
    const row = this.#db.prepare('SELECT state, at FROM user_security WHERE sub = ?').get(sub) as { state: SecurityState; at: number } | undefined;
    return row === undefined ? null : { state: row.state, at: Number(row.at) };
  }

  async close(): Promise<void> {
    if (this.#db.open) this.#db.close();
  }
}

export class PostgresSecurityLog implements SecurityLog {
  readonly #pool: pg.Pool;
  #ready: Promise<void> | undefined;

  constructor(connectionString: string) {
    this.#pool = new pg.Pool({ connectionString, max: 2 });
    this.#pool.on('error', () => undefined);
  }

  async recordEvent(jti: string, now: number): Promise<boolean> {
    const result = await this.#query('INSERT INTO security_events (jti, received_at) VALUES ($1, $2) ON CONFLICT DO NOTHING', [jti, now]);
    return result.rowCount === 1;
  }

  async setState(sub: string, state: SecurityState | null, now: number): Promise<void> {
    if (state === null) await this.#query('DELETE FROM user_security WHERE sub = $1', [sub]);
    else
      await this.#query(
        'INSERT INTO user_security (sub, state, at) VALUES ($1, $2, $3) ON CONFLICT (sub) DO UPDATE SET state = excluded.state, at = excluded.at',
        [sub, state, now],
      );
  }

  async getState(sub: string): Promise<UserSecurity | null> {
    const { rows } = await this.#query('SELECT state, at FROM user_security WHERE sub = $1', [sub]);
    const row = rows[0] as { state: SecurityState; at: string } | undefined;
    return row === undefined ? null : { state: row.state, at: Number(row.at) };
  }

  async close(): Promise<void> {
    await this.#pool.end();
  }

  async #query(text: string, values: unknown[]): Promise<pg.QueryResult> {
    this.#ready ??= (async () => {
      for (const sql of TABLES) await this.#pool.query(sql);
    })();
    try {
      await this.#ready;
      return await this.#pool.query(text, values);
    } catch (error) {
      this.#ready = undefined;
      throw new BehalfError('STORE_UNAVAILABLE', 'The database could not be reached; retry later.', {
        cause: new Error((error as Error | undefined)?.name ?? 'database error'),
      });
    }
  }
}
