import { chmodSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { BehalfError } from '../errors.js';
import type {
  AccessTokenWrite,
  ApiKeyRecord,
  GrantPage,
  GrantStatus,
  SignInWrite,
  StoredGrant,
  Store,
  UserRecord,
} from './types.js';

// The SQLite schema, versioned: each migration runs once, in order, in a transaction.
const MIGRATIONS: string[] = [
  `CREATE TABLE users (
     sub TEXT PRIMARY KEY,
     email TEXT,
     email_verified INTEGER NOT NULL,
     name TEXT,
     given_name TEXT,
     family_name TEXT,
     picture TEXT,
     locale TEXT,
     hd TEXT,
     created_at INTEGER NOT NULL,
     updated_at INTEGER NOT NULL,
     last_sign_in_at INTEGER NOT NULL
   );
   CREATE TABLE grants (
     sub TEXT NOT NULL REFERENCES users (sub) ON DELETE CASCADE,
     client_id TEXT NOT NULL,
     refresh_token BLOB,
     access_token BLOB,
     access_token_expires_at INTEGER,
     scopes TEXT NOT NULL,
     status TEXT NOT NULL CHECK (status IN ('active', 'revoked', 'needs_consent')),
     version INTEGER NOT NULL,
     refresh_token_issued_at INTEGER,
     created_at INTEGER NOT NULL,
     updated_at INTEGER NOT NULL,
     PRIMARY KEY (sub, client_id)
   );
   CREATE INDEX grants_by_status ON grants (status, sub, client_id);
   CREATE TABLE api_keys (
     id TEXT PRIMARY KEY,
     hash BLOB NOT NULL,
     name TEXT NOT NULL,
     created_at INTEGER NOT NULL
   );`,
];

export const SQLITE_SCHEMA_VERSION = MIGRATIONS.length;

/**
 * The embedded store: one SQLite file, WAL, synchronous=FULL so a sign-in is on disk before it is
 * answered. better-sqlite3 is synchronous; the interface is async so Postgres fits behind it.
 */
export class SqliteStore implements Store {
  readonly kind = 'sqlite' as const;
  readonly #db: Database.Database;
  readonly #sql: ReturnType<typeof prepare>;

  constructor(path: string) {
    try {
      if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
      this.#db = new Database(path);
      if (path !== ':memory:') chmodSync(path, 0o600);
      this.#db.pragma('journal_mode = WAL');
      this.#db.pragma('synchronous = FULL');
      this.#db.pragma('foreign_keys = ON');
      this.#db.pragma('busy_timeout = 5000');
      migrate(this.#db);
    } catch (error) {
      if (error instanceof BehalfError) throw error;
      throw new BehalfError('STORE_UNAVAILABLE', `BEHALF_DATABASE_URL: cannot open the SQLite database at ${path} (${(error as Error).message}).`);
    }
    this.#sql = prepare(this.#db);
  }

  async saveSignIn(write: SignInWrite): Promise<{ user: UserRecord; grant: StoredGrant }> {
    const { user, now } = write;
    return this.#db.transaction(() => {
      this.#sql.upsertUser.run({
        sub: user.sub,
        email: user.email,
        email_verified: user.emailVerified ? 1 : 0,
        name: user.name,
        given_name: user.givenName,
        family_name: user.familyName,
        picture: user.picture,
        locale: user.locale,
        hd: user.hd,
        now,
      });
      const existing = this.#sql.getGrant.get(user.sub, write.clientId) as GrantRow | undefined;
      const newRefresh = write.refreshTokenCiphertext;
      const refresh = newRefresh ?? existing?.refresh_token ?? null;
      // A new refresh token brings the grant back to life; without one, the old status stands,
      // except that a repeat sign-in can never revive a grant that has no refresh token.
      const status: GrantStatus = newRefresh !== undefined ? 'active' : (existing?.status as GrantStatus | undefined) ?? (refresh === null ? 'needs_consent' : 'active');
      this.#sql.upsertGrant.run({
        sub: user.sub,
        client_id: write.clientId,
        refresh_token: refresh,
        access_token: write.accessTokenCiphertext,
        access_token_expires_at: write.accessTokenExpiresAt,
        scopes: write.scopes.join(' '),
        status: refresh === null ? 'needs_consent' : status,
        refresh_token_issued_at: newRefresh !== undefined ? now : (existing?.refresh_token_issued_at ?? null),
        now,
      });
      return {
        user: toUser(this.#sql.getUser.get(user.sub) as UserRow),
        grant: toGrant(this.#sql.getGrant.get(user.sub, write.clientId) as GrantRow),
      };
    })();
  }

  async getUser(sub: string): Promise<UserRecord | null> {
    const row = this.#sql.getUser.get(sub) as UserRow | undefined;
    return row === undefined ? null : toUser(row);
  }

  async getGrant(sub: string, clientId: string): Promise<StoredGrant | null> {
    const row = this.#sql.getGrant.get(sub, clientId) as GrantRow | undefined;
    return row === undefined ? null : toGrant(row);
  }

  async saveAccessToken(sub: string, clientId: string, write: AccessTokenWrite, expectedVersion?: number): Promise<boolean> {
    const result = this.#sql.saveAccessToken.run({
      sub,
      client_id: clientId,
      access_token: write.accessTokenCiphertext,
      expires_at: write.accessTokenExpiresAt,
      scopes: write.scopes === undefined ? null : write.scopes.join(' '),
      expected_version: expectedVersion ?? null,
      now: write.now,
    });
    return result.changes === 1;
  }

  async setGrantStatus(sub: string, clientId: string, status: GrantStatus, now: number): Promise<void> {
    this.#sql.setStatus.run({ sub, client_id: clientId, status, now });
  }

  async replaceCiphertexts(
    sub: string,
    clientId: string,
    ciphertexts: { refreshToken: Buffer | null; accessToken: Buffer | null },
    expectedVersion: number,
  ): Promise<boolean> {
    const result = this.#sql.replaceCiphertexts.run({
      sub,
      client_id: clientId,
      refresh_token: ciphertexts.refreshToken,
      access_token: ciphertexts.accessToken,
      expected_version: expectedVersion,
    });
    return result.changes === 1;
  }

  async deleteUser(sub: string): Promise<boolean> {
    return this.#db.transaction(() => {
      this.#sql.deleteGrants.run(sub);
      return this.#sql.deleteUser.run(sub).changes === 1;
    })();
  }

  async listGrants(options: { after?: { sub: string; clientId: string }; limit: number; status?: GrantStatus }): Promise<GrantPage> {
    const limit = Math.max(1, Math.min(options.limit, 10_000));
    const rows = this.#sql.listGrants.all({
      after_sub: options.after?.sub ?? null,
      after_client: options.after?.clientId ?? '',
      status: options.status ?? null,
      limit,
    }) as GrantRow[];
    const grants = rows.map(toGrant);
    const last = grants.at(-1);
    return { grants, next: grants.length === limit && last !== undefined ? { sub: last.sub, clientId: last.clientId } : null };
  }

  async createApiKey(record: ApiKeyRecord): Promise<void> {
    this.#sql.insertApiKey.run({ id: record.id, hash: record.hash, name: record.name, created_at: record.createdAt });
  }

  async findApiKey(id: string): Promise<ApiKeyRecord | null> {
    const row = this.#sql.findApiKey.get(id) as { id: string; hash: Buffer; name: string; created_at: number } | undefined;
    return row === undefined ? null : { id: row.id, hash: row.hash, name: row.name, createdAt: row.created_at };
  }

  async close(): Promise<void> {
    if (this.#db.open) this.#db.close();
  }
}

function migrate(db: Database.Database): void {
  db.exec('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)');
  const row = db.prepare('SELECT MAX(version) AS version FROM schema_migrations').get() as { version: number | null };
  const current = row.version ?? 0;
  if (current > MIGRATIONS.length) {
    throw new BehalfError(
      'CONFIG_INVALID',
      `BEHALF_DATABASE_URL: the database schema is version ${current}, newer than this behalf knows (${MIGRATIONS.length}). Run a newer behalf.`,
    );
  }
  for (let version = current + 1; version <= MIGRATIONS.length; version++) {
    db.transaction(() => {
      db.exec(MIGRATIONS[version - 1]!);
      db.prepare('INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)').run(version, Date.now());
    })();
  }
}

function prepare(db: Database.Database) {
  return {
    upsertUser: db.prepare(
      `INSERT INTO users (sub, email, email_verified, name, given_name, family_name, picture, locale, hd, created_at, updated_at, last_sign_in_at)
       VALUES (@sub, @email, @email_verified, @name, @given_name, @family_name, @picture, @locale, @hd, @now, @now, @now)
       ON CONFLICT (sub) DO UPDATE SET email = excluded.email, email_verified = excluded.email_verified, name = excluded.name,
         given_name = excluded.given_name, family_name = excluded.family_name, picture = excluded.picture,
         locale = excluded.locale, hd = excluded.hd, updated_at = excluded.updated_at, last_sign_in_at = excluded.last_sign_in_at`,
    ),
    upsertGrant: db.prepare(
      `INSERT INTO grants (sub, client_id, refresh_token, access_token, access_token_expires_at, scopes, status, version,
         refresh_token_issued_at, created_at, updated_at)
       VALUES (@sub, @client_id, @refresh_token, @access_token, @access_token_expires_at, @scopes, @status, 1,
         @refresh_token_issued_at, @now, @now)
       ON CONFLICT (sub, client_id) DO UPDATE SET refresh_token = excluded.refresh_token, access_token = excluded.access_token,
         access_token_expires_at = excluded.access_token_expires_at, scopes = excluded.scopes, status = excluded.status,
         refresh_token_issued_at = excluded.refresh_token_issued_at, version = grants.version + 1, updated_at = excluded.updated_at`,
    ),
    getUser: db.prepare('SELECT * FROM users WHERE sub = ?'),
    getGrant: db.prepare('SELECT * FROM grants WHERE sub = ? AND client_id = ?'),
    saveAccessToken: db.prepare(
      `UPDATE grants SET access_token = @access_token, access_token_expires_at = @expires_at,
         scopes = COALESCE(@scopes, scopes), version = version + 1, updated_at = @now
       WHERE sub = @sub AND client_id = @client_id AND status = 'active'
         AND (@expected_version IS NULL OR version = @expected_version)`,
    ),
    setStatus: db.prepare(
      `UPDATE grants SET status = @status, version = version + 1, updated_at = @now,
         access_token = CASE WHEN @status = 'active' THEN access_token ELSE NULL END,
         access_token_expires_at = CASE WHEN @status = 'active' THEN access_token_expires_at ELSE NULL END
       WHERE sub = @sub AND client_id = @client_id`,
    ),
    replaceCiphertexts: db.prepare(
      `UPDATE grants SET refresh_token = @refresh_token, access_token = @access_token, version = version + 1
       WHERE sub = @sub AND client_id = @client_id AND version = @expected_version`,
    ),
    deleteGrants: db.prepare('DELETE FROM grants WHERE sub = ?'),
    deleteUser: db.prepare('DELETE FROM users WHERE sub = ?'),
    listGrants: db.prepare(
      `SELECT * FROM grants
       WHERE (@after_sub IS NULL OR sub > @after_sub OR (sub = @after_sub AND client_id > @after_client))
         AND (@status IS NULL OR status = @status)
       ORDER BY sub, client_id LIMIT @limit`,
    ),
    insertApiKey: db.prepare('INSERT INTO api_keys (id, hash, name, created_at) VALUES (@id, @hash, @name, @created_at)'),
    findApiKey: db.prepare('SELECT * FROM api_keys WHERE id = ?'),
  };
}

interface UserRow {
  sub: string;
  email: string | null;
  email_verified: number;
  name: string | null;
  given_name: string | null;
  family_name: string | null;
  picture: string | null;
  locale: string | null;
  hd: string | null;
  created_at: number;
  updated_at: number;
  last_sign_in_at: number;
}

interface GrantRow {
  sub: string;
  client_id: string;
  refresh_token: Buffer | null;
  access_token: Buffer | null;
  access_token_expires_at: number | null;
  scopes: string;
  status: string;
  version: number;
  refresh_token_issued_at: number | null;
  created_at: number;
  updated_at: number;
}

function toUser(row: UserRow): UserRecord {
  return {
    sub: row.sub,
    email: row.email,
    emailVerified: row.email_verified === 1,
    name: row.name,
    givenName: row.given_name,
    familyName: row.family_name,
    picture: row.picture,
    locale: row.locale,
    hd: row.hd,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    lastSignInAt: row.last_sign_in_at,
  };
}

function toGrant(row: GrantRow): StoredGrant {
  return {
    sub: row.sub,
    clientId: row.client_id,
    refreshTokenCiphertext: row.refresh_token,
    accessTokenCiphertext: row.access_token,
    accessTokenExpiresAt: row.access_token_expires_at,
    scopes: row.scopes === '' ? [] : row.scopes.split(' '),
    status: row.status as GrantStatus,
    version: row.version,
    refreshTokenIssuedAt: row.refresh_token_issued_at,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}
