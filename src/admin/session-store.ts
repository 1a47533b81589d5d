import type { PostgresDatabase, SqliteDatabase } from '../database/index.js';

/** A console session as stored: only a hash of its token, and the API key it was opened with. */
export interface AdminSessionRecord {
  apiKeyId: string;
  /** The key's label, for the page header (the key itself is never stored). */
  apiKeyName: string;
  /** Unix milliseconds, behalf's clock. */
  createdAt: number;
  lastSeenAt: number;
}

/**
 * Console sessions in behalf's database, so every instance behind a load balancer knows them.
 * Rows are keyed by SHA-256 of the session token (a copy of the table opens no session) and
 * reference their API key with ON DELETE CASCADE: revoking a key ends its sessions in the same
 * statement.
 */
export interface AdminSessionStore {
  /** False when the API key is gone (revoked between the check and this insert). */
  create(idHash: Buffer, apiKeyId: string, now: number): Promise<boolean>;
  /** The session, if its key still exists. */
  get(idHash: Buffer): Promise<AdminSessionRecord | null>;
  /** Slide the idle timeout. */
  touch(idHash: Buffer, now: number): Promise<void>;
  delete(idHash: Buffer): Promise<void>;
  /** Delete sessions idle since before `idleBefore` or opened before `createdBefore`. */
  prune(idleBefore: number, createdBefore: number): Promise<number>;
}

interface SessionRow {
  api_key_id: string;
  api_key_name: string;
  created_at: number;
  last_seen_at: number;
}

function toRecord(row: SessionRow): AdminSessionRecord {
  return {
    apiKeyId: row.api_key_id,
    apiKeyName: row.api_key_name,
    createdAt: Number(row.created_at),
    lastSeenAt: Number(row.last_seen_at),
  };
}

const GET = `SELECT s.api_key_id, k.name AS api_key_name, s.created_at, s.last_seen_at
  FROM admin_sessions s JOIN api_keys k ON k.id = s.api_key_id WHERE s.id_hash = `;

export class SqliteAdminSessionStore implements AdminSessionStore {
  readonly #database: SqliteDatabase;
  readonly #sql;

  constructor(database: SqliteDatabase) {
    this.#database = database;
    const db = database.connection;
    this.#sql = {
      // Inserted only while the key exists: no foreign-key error to tell apart from others.
      create: db.prepare(
        `INSERT INTO admin_sessions (id_hash, api_key_id, created_at, last_seen_at)
         SELECT @id_hash, id, @now, @now FROM api_keys WHERE id = @api_key_id`,
      ),
      get: db.prepare(`${GET}?`),
      touch: db.prepare('UPDATE admin_sessions SET last_seen_at = ? WHERE id_hash = ? AND last_seen_at < ?'),
      delete: db.prepare('DELETE FROM admin_sessions WHERE id_hash = ?'),
      prune: db.prepare('DELETE FROM admin_sessions WHERE last_seen_at < ? OR created_at < ?'),
    };
  }

  create(idHash: Buffer, apiKeyId: string, now: number): Promise<boolean> {
    return this.#database.run(
      () => this.#sql.create.run({ id_hash: idHash, api_key_id: apiKeyId, now }).changes === 1,
    );
  }

  get(idHash: Buffer): Promise<AdminSessionRecord | null> {
    return this.#database.run(() => {
      const row = this.#sql.get.get(idHash) as SessionRow | undefined;
      return row === undefined ? null : toRecord(row);
    });
  }

  async touch(idHash: Buffer, now: number): Promise<void> {
    // Losing a touch in a power cut only shortens a session: no fsync for it.
    await this.#database.runUnsynced(() => this.#sql.touch.run(now, idHash, now));
  }

  async delete(idHash: Buffer): Promise<void> {
    await this.#database.run(() => this.#sql.delete.run(idHash));
  }

  prune(idleBefore: number, createdBefore: number): Promise<number> {
    return this.#database.run(() => this.#sql.prune.run(idleBefore, createdBefore).changes);
  }
}

export class PostgresAdminSessionStore implements AdminSessionStore {
  readonly #database: PostgresDatabase;

  constructor(database: PostgresDatabase) {
    this.#database = database;
  }

  async create(idHash: Buffer, apiKeyId: string, now: number): Promise<boolean> {
    const result = await this.#database.query(
      `INSERT INTO admin_sessions (id_hash, api_key_id, created_at, last_seen_at)
       SELECT $1, id, $3, $3 FROM api_keys WHERE id = $2`,
      [idHash, apiKeyId, now],
    );
    return result.rowCount === 1;
  }

  async get(idHash: Buffer): Promise<AdminSessionRecord | null> {
    const { rows } = await this.#database.query<SessionRow>(`${GET}$1`, [idHash]);
    return rows[0] === undefined ? null : toRecord(rows[0]);
  }

  async touch(idHash: Buffer, now: number): Promise<void> {
    await this.#database.query(
      'UPDATE admin_sessions SET last_seen_at = $1 WHERE id_hash = $2 AND last_seen_at < $1',
      [now, idHash],
    );
  }

  async delete(idHash: Buffer): Promise<void> {
    await this.#database.query('DELETE FROM admin_sessions WHERE id_hash = $1', [idHash]);
  }

  async prune(idleBefore: number, createdBefore: number): Promise<number> {
    return (
      (
        await this.#database.query('DELETE FROM admin_sessions WHERE last_seen_at < $1 OR created_at < $2', [
          idleBefore,
          createdBefore,
        ])
      ).rowCount ?? 0
    );
  }
}
