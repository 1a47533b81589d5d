import { closeSync, mkdirSync, openSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { systemClock, type Clock } from '../clock.js';
import { BehalfError } from '../errors.js';
import { SQLITE_MIGRATIONS, SQLITE_SCHEMA_VERSION } from './migrations/sqlite.js';
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

export { SQLITE_SCHEMA_VERSION };

const SETTING = 'BEHALF_DATABASE_URL';
const STATUSES: ReadonlySet<string> = new Set<GrantStatus>(['active', 'revoked', 'needs_consent']);
const MAX_PAGE = 10_000;

export interface SqliteStoreOptions {
  /** Time for the writes whose caller gives none (key rotation, migrations). */
  clock?: Clock;
  /** How long a write waits for another process's lock before failing with STORE_UNAVAILABLE. Default 5000. */
  busyTimeoutMs?: number;
}

/**
 * Open (creating on first run) the SQLite store at `path`, or `:memory:`. A new file is created
 * with mode 0600 and a missing parent folder with 0700. The database runs in WAL mode with
 * `synchronous=FULL`: a sign-in's tokens are on disk before the sign-in is answered. Migrations
 * are applied; a database whose schema is newer than this build knows is refused.
 */
export async function openSqliteStore(path: string, options: SqliteStoreOptions = {}): Promise<SqliteStore> {
  return new SqliteStore(path, options);
}

/**
 * The embedded store. better-sqlite3 is synchronous; every method is async anyway so that the
 * Postgres backend fits behind the same interface, and errors always arrive as rejections.
 */
export class SqliteStore implements Store {
  readonly kind = 'sqlite' as const;
  /** The absolute file path, or `:memory:`. */
  readonly path: string;
  readonly #db: Database.Database;
  readonly #sql: Statements;
  readonly #clock: Clock;
  /** What opening did to the schema: the version found and the migrations applied (for `behalf migrate`). */
  readonly migrations: { from: number; applied: Array<{ version: number; name: string }> };

  /** Prefer {@link openSqliteStore}. Throws BehalfError when the database cannot be opened. */
  constructor(path: string, options: SqliteStoreOptions = {}) {
    this.path = path === ':memory:' ? path : resolve(path);
    this.#clock = options.clock ?? systemClock;
    let db: Database.Database | undefined;
    try {
      if (this.path !== ':memory:') createPrivateFile(this.path);
      db = new Database(this.path);
      // WAL: readers do not block the writer. FULL: the WAL is fsynced at every commit, so a
      // committed sign-in survives a power cut (NORMAL would only survive a process crash).
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = FULL');
      db.pragma(`busy_timeout = ${Math.max(0, Math.floor(options.busyTimeoutMs ?? 5000))}`);
      db.pragma('foreign_keys = ON');
      // Deleted rows (a deleted user's profile) are overwritten with zeros, not left in free pages.
      db.pragma('secure_delete = ON');
      this.migrations = migrate(db, this.#clock.now());
      this.#sql = prepare(db);
      this.#db = db;
    } catch (error) {
      if (db?.open === true) db.close();
      throw openError(this.path, error);
    }
  }

  /** The connection's settings, for diagnostics and tests. */
  settings(): { journalMode: string; synchronous: number; busyTimeoutMs: number; foreignKeys: boolean; schemaVersion: number } {
    return {
      journalMode: String(this.#db.pragma('journal_mode', { simple: true })),
      synchronous: Number(this.#db.pragma('synchronous', { simple: true })),
      busyTimeoutMs: Number(this.#db.pragma('busy_timeout', { simple: true })),
      foreignKeys: Number(this.#db.pragma('foreign_keys', { simple: true })) === 1,
      schemaVersion: (this.#db.prepare('SELECT MAX(version) AS v FROM schema_migrations').get() as { v: number }).v,
    };
  }

  async saveSignIn(write: SignInWrite): Promise<{ user: UserRecord; grant: StoredGrant }> {
    return this.#run(() =>
      // IMMEDIATE: take the write lock up front, so two processes signing the same user in
      // cannot both read the old row and then fail to upgrade (SQLITE_BUSY_SNAPSHOT).
      this.#db.transaction(() => {
        const { user, now } = write;
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
        // A refresh token older than the stored one never replaces it (two sign-ins racing).
        const replaceRefresh =
          write.refreshTokenCiphertext !== undefined &&
          (existing?.refresh_token_issued_at == null || existing.refresh_token === null || now >= existing.refresh_token_issued_at);
        const refreshToken = replaceRefresh ? write.refreshTokenCiphertext! : (existing?.refresh_token ?? null);
        // A new refresh token brings the grant back to life. Without one the stored status
        // stands (a repeat sign-in cannot revive a grant Google refused), and a grant with no
        // refresh token at all needs consent.
        const status: GrantStatus =
          refreshToken === null ? 'needs_consent' : replaceRefresh ? 'active' : ((existing?.status as GrantStatus | undefined) ?? 'active');
        this.#sql.upsertGrant.run({
          sub: user.sub,
          client_id: write.clientId,
          refresh_token: refreshToken,
          refresh_token_issued_at: replaceRefresh ? now : (existing?.refresh_token_issued_at ?? null),
          access_token: write.accessTokenCiphertext,
          access_token_expires_at: write.accessTokenExpiresAt,
          scopes: joinScopes(write.scopes),
          status,
          now,
        });
        return {
          user: toUser(this.#sql.getUser.get(user.sub) as UserRow),
          grant: toGrant(this.#sql.getGrant.get(user.sub, write.clientId) as GrantRow),
        };
      }).immediate(),
    );
  }

  async getUser(sub: string): Promise<UserRecord | null> {
    return this.#run(() => {
      const row = this.#sql.getUser.get(sub) as UserRow | undefined;
      return row === undefined ? null : toUser(row);
    });
  }

  async getGrant(sub: string, clientId: string): Promise<StoredGrant | null> {
    return this.#run(() => {
      const row = this.#sql.getGrant.get(sub, clientId) as GrantRow | undefined;
      return row === undefined ? null : toGrant(row);
    });
  }

  async saveAccessToken(sub: string, clientId: string, write: AccessTokenWrite, expectedVersion?: number): Promise<boolean> {
    const save = this.#db.transaction(() => {
      const result = this.#sql.saveAccessToken.run({
        sub,
        client_id: clientId,
        access_token: write.accessTokenCiphertext,
        expires_at: write.accessTokenExpiresAt,
        scopes: write.scopes === undefined ? null : joinScopes(write.scopes),
        expected_version: expectedVersion ?? null,
        now: write.now,
      });
      if (write.releaseLeaseOf !== undefined) this.#sql.releaseLease.run({ sub, client_id: clientId, holder: write.releaseLeaseOf });
      return result.changes === 1;
    });
    return this.#runUnsynced(() => save.immediate());
  }

  async setGrantStatus(sub: string, clientId: string, status: GrantStatus, now: number): Promise<void> {
    if (!STATUSES.has(status)) throw new BehalfError('INVALID_REQUEST', `Unknown grant status; expected one of ${[...STATUSES].join(', ')}.`);
    return this.#run(() => {
      this.#sql.setStatus.run({ sub, client_id: clientId, status, now });
    });
  }

  async replaceCiphertexts(
    sub: string,
    clientId: string,
    ciphertexts: { refreshToken: Buffer | null; accessToken: Buffer | null },
    expectedVersion: number,
  ): Promise<boolean> {
    return this.#run(() => {
      const result = this.#sql.replaceCiphertexts.run({
        sub,
        client_id: clientId,
        refresh_token: ciphertexts.refreshToken,
        access_token: ciphertexts.accessToken,
        expected_version: expectedVersion,
        now: this.#clock.now(),
      });
      return result.changes === 1;
    });
  }

  async deleteUser(sub: string): Promise<boolean> {
    return this.#run(() =>
      this.#db.transaction(() => {
        this.#sql.deleteLeases.run(sub);
        this.#sql.deleteGrants.run(sub);
        return this.#sql.deleteUser.run(sub).changes === 1;
      }).immediate(),
    );
  }

  async listGrants(options: { after?: { sub: string; clientId: string }; limit: number; status?: GrantStatus }): Promise<GrantPage> {
    if (!Number.isInteger(options.limit) || options.limit < 1) {
      throw new BehalfError('INVALID_REQUEST', 'listGrants: limit must be a whole number of at least 1.');
    }
    if (options.status !== undefined && !STATUSES.has(options.status)) {
      throw new BehalfError('INVALID_REQUEST', `listGrants: unknown status; expected one of ${[...STATUSES].join(', ')}.`);
    }
    const limit = Math.min(options.limit, MAX_PAGE);
    return this.#run(() => {
      // One row more than asked tells whether there is a next page.
      const rows = this.#sql.listGrants.all({
        after_sub: options.after?.sub ?? null,
        after_client: options.after?.clientId ?? '',
        status: options.status ?? null,
        limit: limit + 1,
      }) as GrantRow[];
      const grants = rows.slice(0, limit).map(toGrant);
      const last = grants.at(-1);
      return { grants, next: rows.length > limit && last !== undefined ? { sub: last.sub, clientId: last.clientId } : null };
    });
  }

  async createApiKey(record: ApiKeyRecord): Promise<void> {
    return this.#run(() => {
      try {
        this.#sql.insertApiKey.run({ id: record.id, hash: record.hash, name: record.name, created_at: record.createdAt });
      } catch (error) {
        if (sqliteCode(error)?.startsWith('SQLITE_CONSTRAINT') === true) {
          throw new BehalfError('INVALID_REQUEST', 'An API key with this id already exists.', { reason: 'duplicate_id', cause: error });
        }
        throw error;
      }
    });
  }

  async findApiKey(id: string): Promise<ApiKeyRecord | null> {
    return this.#run(() => {
      const row = this.#sql.findApiKey.get(id) as ApiKeyRow | undefined;
      return row === undefined ? null : { id: row.id, hash: row.hash, name: row.name, createdAt: row.created_at };
    });
  }

  async acquireRefreshLease(sub: string, clientId: string, holder: string, ttlMs: number): Promise<boolean> {
    if (!Number.isInteger(ttlMs) || ttlMs < 1) throw new BehalfError('INVALID_REQUEST', 'A refresh lease needs a whole number of milliseconds of at least 1.');
    // Leases are real time (the process clock), whatever clock the store was given for tests.
    const now = Date.now();
    return this.#runUnsynced(() => this.#sql.takeLease.run({ sub, client_id: clientId, holder, now, expires_at: now + ttlMs }).changes === 1);
  }

  async releaseRefreshLease(sub: string, clientId: string, holder: string): Promise<void> {
    await this.#runUnsynced(() => this.#sql.releaseLease.run({ sub, client_id: clientId, holder }));
  }

  async close(): Promise<void> {
    if (this.#db.open) this.#db.close();
  }

  /**
   * For writes that are cheap to lose in a power cut, and only there: an access token (lost, it is
   * refreshed again) and refresh leases (lost, they are free for the taking). They commit without
   * waiting for the disk (`synchronous=NORMAL`: still atomic, and durable across a process crash),
   * so a refresh costs no fsync; the next fsynced commit carries them to disk. Measured in the
   * refresh-storm benchmark: the lease and token fsyncs were most of behalf's own time per refresh.
   * Grants, refresh tokens and statuses are always written with `synchronous=FULL`.
   */
  async #runUnsynced<T>(body: () => T): Promise<T> {
    return this.#run(() => {
      this.#db.pragma('synchronous = NORMAL');
      try {
        return body();
      } finally {
        this.#db.pragma('synchronous = FULL');
      }
    });
  }

  /** Run a statement, turning SQLite's failures into BehalfErrors (busy or I/O: retryable). */
  async #run<T>(body: () => T): Promise<T> {
    if (!this.#db.open) throw new BehalfError('STORE_UNAVAILABLE', 'The SQLite store is closed.');
    try {
      return body();
    } catch (error) {
      throw runtimeError(error);
    }
  }
}

/** Create the database file (0600) and its folder (0700) if missing, before SQLite opens it. */
function createPrivateFile(path: string): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  try {
    closeSync(openSync(path, 'wx', 0o600));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    if (statSync(path).isDirectory()) {
      throw new BehalfError('CONFIG_INVALID', `${SETTING}: ${path} is a folder; name a file such as ${resolve(path, 'behalf.db')}.`);
    }
  }
}

function migrate(db: Database.Database, now: number): SqliteStore['migrations'] {
  // IMMEDIATE: two processes starting together apply each migration once.
  return db.transaction(() => {
    db.exec(
      'CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER NOT NULL PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)',
    );
    const current = (db.prepare('SELECT MAX(version) AS version FROM schema_migrations').get() as { version: number | null }).version ?? 0;
    if (current > SQLITE_SCHEMA_VERSION) {
      throw new BehalfError(
        'CONFIG_INVALID',
        `${SETTING}: the database schema is at version ${current}, newer than this behalf knows (${SQLITE_SCHEMA_VERSION}). ` +
          'A newer behalf has migrated it: run that version, or point the setting at another database.',
        { reason: 'schema_too_new' },
      );
    }
    const record = db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)');
    const applied: Array<{ version: number; name: string }> = [];
    for (const migration of SQLITE_MIGRATIONS) {
      if (migration.version <= current) continue;
      db.exec(migration.sql);
      record.run(migration.version, migration.name, now);
      applied.push({ version: migration.version, name: migration.name });
    }
    return { from: current, applied };
  }).immediate();
}

function prepare(db: Database.Database) {
  return {
    // One statement: insert, or take over only a lease that has run out; no grant, no lease.
    takeLease: db.prepare(
      `INSERT INTO refresh_leases (sub, client_id, holder, expires_at)
       SELECT sub, client_id, @holder, @expires_at FROM grants WHERE sub = @sub AND client_id = @client_id
       ON CONFLICT (sub, client_id) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
       WHERE refresh_leases.expires_at <= @now`,
    ),
    releaseLease: db.prepare('DELETE FROM refresh_leases WHERE sub = @sub AND client_id = @client_id AND holder = @holder'),
    upsertUser: db.prepare(
      `INSERT INTO users (sub, email, email_verified, name, given_name, family_name, picture, locale, hd, created_at, updated_at, last_sign_in_at)
       VALUES (@sub, @email, @email_verified, @name, @given_name, @family_name, @picture, @locale, @hd, @now, @now, @now)
       ON CONFLICT (sub) DO UPDATE SET email = excluded.email, email_verified = excluded.email_verified, name = excluded.name,
         given_name = excluded.given_name, family_name = excluded.family_name, picture = excluded.picture,
         locale = excluded.locale, hd = excluded.hd, updated_at = excluded.updated_at, last_sign_in_at = excluded.last_sign_in_at`,
    ),
    upsertGrant: db.prepare(
      `INSERT INTO grants (sub, client_id, refresh_token, refresh_token_issued_at, access_token, access_token_expires_at, scopes,
         status, version, created_at, updated_at)
       VALUES (@sub, @client_id, @refresh_token, @refresh_token_issued_at, @access_token, @access_token_expires_at, @scopes,
         @status, 1, @now, @now)
       ON CONFLICT (sub, client_id) DO UPDATE SET refresh_token = excluded.refresh_token,
         refresh_token_issued_at = excluded.refresh_token_issued_at, access_token = excluded.access_token,
         access_token_expires_at = excluded.access_token_expires_at, scopes = excluded.scopes, status = excluded.status,
         version = grants.version + 1, updated_at = excluded.updated_at`,
    ),
    getUser: db.prepare('SELECT * FROM users WHERE sub = ?'),
    getGrant: db.prepare('SELECT * FROM grants WHERE sub = ? AND client_id = ?'),
    // Only an active grant takes a new access token: a revoked one must not get one back.
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
      `UPDATE grants SET refresh_token = @refresh_token, access_token = @access_token,
         access_token_expires_at = CASE WHEN @access_token IS NULL THEN NULL ELSE access_token_expires_at END,
         version = version + 1, updated_at = @now
       WHERE sub = @sub AND client_id = @client_id AND version = @expected_version`,
    ),
    deleteLeases: db.prepare('DELETE FROM refresh_leases WHERE sub = ?'),
    deleteGrants: db.prepare('DELETE FROM grants WHERE sub = ?'),
    deleteUser: db.prepare('DELETE FROM users WHERE sub = ?'),
    // Keyset pagination in (sub, client_id) order: byte order (SQLite's BINARY collation).
    listGrants: db.prepare(
      `SELECT * FROM grants
       WHERE (@after_sub IS NULL OR (sub, client_id) > (@after_sub, @after_client))
         AND (@status IS NULL OR status = @status)
       ORDER BY sub, client_id LIMIT @limit`,
    ),
    insertApiKey: db.prepare('INSERT INTO api_keys (id, hash, name, created_at) VALUES (@id, @hash, @name, @created_at)'),
    findApiKey: db.prepare('SELECT * FROM api_keys WHERE id = ?'),
  };
}

type Statements = ReturnType<typeof prepare>;

function sqliteCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && code.startsWith('SQLITE_') ? code : undefined;
}

/** A failure while opening: a bad path is CONFIG_INVALID, anything else STORE_UNAVAILABLE. */
function openError(path: string, error: unknown): BehalfError {
  if (error instanceof BehalfError) return error;
  const code = sqliteCode(error) ?? (error as NodeJS.ErrnoException).code ?? 'error';
  const where = `${SETTING}: cannot open the SQLite database at ${path}`;
  if (code === 'SQLITE_NOTADB' || code === 'SQLITE_CORRUPT') {
    return new BehalfError('CONFIG_INVALID', `${where}: the file is not a SQLite database (${code}).`, { cause: error });
  }
  if (['ENOTDIR', 'EISDIR', 'EACCES', 'EPERM', 'EROFS', 'ENAMETOOLONG', 'SQLITE_CANTOPEN', 'SQLITE_READONLY'].includes(code)) {
    return new BehalfError('CONFIG_INVALID', `${where} (${code}): check that the path is a file this process can write.`, { cause: error });
  }
  return new BehalfError('STORE_UNAVAILABLE', `${where} (${code}).`, { cause: error });
}

/** A failure during a query. SQLite's own messages name tables and columns, never values. */
function runtimeError(error: unknown): BehalfError {
  if (error instanceof BehalfError) return error;
  const code = sqliteCode(error);
  if (code !== undefined && /^SQLITE_(BUSY|LOCKED|IOERR|FULL|CANTOPEN|PROTOCOL|READONLY)/.test(code)) {
    return new BehalfError('STORE_UNAVAILABLE', `The SQLite store is busy or unavailable (${code}); retry.`, { cause: error, retryAfter: 1 });
  }
  return new BehalfError('INTERNAL', `The SQLite store failed (${code ?? (error as Error).name}).`, { cause: error });
}

function joinScopes(scopes: string[]): string {
  return scopes.join(' ');
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

interface ApiKeyRow {
  id: string;
  hash: Buffer;
  name: string;
  created_at: number;
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
