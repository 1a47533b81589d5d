import type Database from 'better-sqlite3';
import { systemClock, type Clock } from '../clock.js';
import { sqliteCode, type SqliteDatabase } from '../database/sqlite.js';
import {
  grantStatusEvent,
  recordSqliteEvents,
  userDeletedEvent,
  type GrantChangeReason,
  type UserDeletionReason,
} from '../webhooks/outbox.js';
import {
  checkListOptions,
  checkStatus,
  checkTtl,
  duplicateApiKey,
  toApiKey,
  toApiKeySummary,
  toGrant,
  toGrantPage,
  toKeyCheck,
  toRefreshRecord,
  toUser,
  type ApiKeyRow,
  type GrantRow,
  type KeyCheckRow,
  type RefreshRow,
  type UserRow,
} from './rows.js';
import type {
  AccessTokenWrite,
  ApiKeyRecord,
  ApiKeySummary,
  GrantPage,
  GrantStatus,
  KeyCheckRecord,
  RefreshRecord,
  SignInWrite,
  StoredGrant,
  Store,
  UserRecord,
  UserSearch,
  UserSearchPage,
} from './types.js';
import { searchSqliteUsers } from './user-search.js';

export interface SqliteStoreOptions {
  /** Time for the writes whose caller gives none (key rotation). */
  clock?: Clock;
  /** Close the database when the store is closed (the store was opened on its own, by openStore). */
  ownsDatabase?: boolean;
}

/**
 * The embedded vault. better-sqlite3 is synchronous; every method is async anyway so that the
 * Postgres backend fits behind the same interface, and errors always arrive as rejections.
 * Triggers log every change to a grant for the other processes on the file (see
 * src/database/grant-changes.ts); this one hears of its own changes at once, after each commit.
 */
export class SqliteStore implements Store {
  readonly kind = 'sqlite' as const;
  /** The absolute file path, or `:memory:`. */
  readonly path: string;
  readonly database: SqliteDatabase;
  readonly #sql: VaultStatements;
  readonly #clock: Clock;
  readonly #ownsDatabase: boolean;

  constructor(database: SqliteDatabase, options: SqliteStoreOptions = {}) {
    this.database = database;
    this.path = database.path;
    this.#sql = vaultStatements(database);
    this.#clock = options.clock ?? systemClock;
    this.#ownsDatabase = options.ownsDatabase ?? false;
  }

  get changes(): SqliteDatabase['changes'] {
    return this.database.changes;
  }

  /** What opening did to the schema (for `behalf migrate`). */
  get migrations(): SqliteDatabase['migrations'] {
    return this.database.migrations;
  }

  /** The connection's settings, for diagnostics and tests. */
  settings(): ReturnType<SqliteDatabase['settings']> {
    return this.database.settings();
  }

  async saveSignIn(write: SignInWrite): Promise<{ user: UserRecord; grant: StoredGrant }> {
    const saved = await this.database.transaction(() => {
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
        (existing?.refresh_token_issued_at == null ||
          existing.refresh_token === null ||
          now >= existing.refresh_token_issued_at);
      const refreshToken = replaceRefresh ? write.refreshTokenCiphertext! : (existing?.refresh_token ?? null);
      // A new refresh token brings the grant back to life. Without one the stored status
      // stands (a repeat sign-in cannot revive a grant Google refused), and a grant with no
      // refresh token at all needs consent.
      const status: GrantStatus =
        refreshToken === null
          ? 'needs_consent'
          : replaceRefresh
            ? 'active'
            : ((existing?.status as GrantStatus | undefined) ?? 'active');
      this.#sql.upsertGrant.run({
        sub: user.sub,
        client_id: write.clientId,
        refresh_token: refreshToken,
        refresh_token_issued_at: replaceRefresh ? now : (existing?.refresh_token_issued_at ?? null),
        refresh_token_expires_at: replaceRefresh
          ? (write.refreshTokenExpiresAt ?? null)
          : (existing?.refresh_token_expires_at ?? null),
        access_token: write.accessTokenCiphertext,
        access_token_expires_at: write.accessTokenExpiresAt,
        scopes: write.scopes.join(' '),
        status,
        now,
      });
      recordSqliteEvents(
        this.database,
        [
          grantStatusEvent(
            user.sub,
            (existing?.status as GrantStatus | undefined) ?? null,
            status,
            'signed_in',
          ),
        ],
        now,
      );
      return {
        user: toUser(this.#sql.getUser.get(user.sub) as UserRow),
        grant: toGrant(this.#sql.getGrant.get(user.sub, write.clientId) as GrantRow),
      };
    });
    this.changes.publish(write.user.sub);
    return saved;
  }

  async getUser(sub: string): Promise<UserRecord | null> {
    return this.database.run(() => {
      const row = this.#sql.getUser.get(sub) as UserRow | undefined;
      return row === undefined ? null : toUser(row);
    });
  }

  async countExpiringGrants(clientId: string, before: number): Promise<number> {
    return this.database.run(
      () => (this.#sql.countExpiring.get({ client_id: clientId, before }) as { n: number }).n,
    );
  }

  async getGrant(sub: string, clientId: string): Promise<StoredGrant | null> {
    return this.database.run(() => {
      const row = this.#sql.getGrant.get(sub, clientId) as GrantRow | undefined;
      return row === undefined ? null : toGrant(row);
    });
  }

  async saveAccessToken(
    sub: string,
    clientId: string,
    write: AccessTokenWrite,
    expectedVersion?: number,
  ): Promise<boolean> {
    // One write, in a savepoint of its own within the group commit (SqliteDatabase.runUnsynced).
    return this.database.runUnsynced(() => {
      const result = this.#sql.saveAccessToken.run({
        sub,
        client_id: clientId,
        access_token: write.accessTokenCiphertext,
        expires_at: write.accessTokenExpiresAt,
        scopes: write.scopes === undefined ? null : write.scopes.join(' '),
        expected_version: expectedVersion ?? null,
        now: write.now,
      });
      if (write.releaseLeaseOf !== undefined)
        this.#sql.releaseLease.run({ sub, client_id: clientId, holder: write.releaseLeaseOf });
      if (write.refreshed !== undefined) this.#recordRefresh(sub, clientId, write.refreshed);
      return result.changes === 1;
    });
  }

  async setGrantStatus(
    sub: string,
    clientId: string,
    status: GrantStatus,
    now: number,
    reason?: GrantChangeReason,
  ): Promise<void> {
    checkStatus(status);
    await this.database.transaction(() => {
      const before = this.#sql.getGrant.get(sub, clientId) as GrantRow | undefined;
      this.#sql.setStatus.run({ sub, client_id: clientId, status, now });
      if (before !== undefined)
        recordSqliteEvents(
          this.database,
          [grantStatusEvent(sub, before.status as GrantStatus, status, reason)],
          now,
        );
    });
    this.changes.publish(sub);
  }

  async revokeGrant(sub: string, clientId: string, now: number): Promise<boolean> {
    const changed = await this.database.transaction(() =>
      revokeSqliteGrant(this.database, sub, clientId, now, 'signed_out'),
    );
    this.changes.publish(sub);
    return changed;
  }

  async replaceCiphertexts(
    sub: string,
    clientId: string,
    ciphertexts: { refreshToken: Buffer | null; accessToken: Buffer | null },
    expectedVersion: number,
  ): Promise<boolean> {
    const written = await this.database.run(
      () =>
        this.#sql.replaceCiphertexts.run({
          sub,
          client_id: clientId,
          refresh_token: ciphertexts.refreshToken,
          access_token: ciphertexts.accessToken,
          expected_version: expectedVersion,
          now: this.#clock.now(),
        }).changes === 1,
    );
    if (written) this.changes.publish(sub);
    return written;
  }

  async deleteUser(sub: string): Promise<boolean> {
    const deleted = await this.database.transaction(() =>
      eraseSqliteUser(this.database, sub, 'deleted', this.#clock.now()),
    );
    this.changes.publish(sub);
    return deleted;
  }

  async listGrants(options: {
    after?: { sub: string; clientId: string };
    limit: number;
    status?: GrantStatus;
  }): Promise<GrantPage> {
    const limit = checkListOptions(options);
    return this.database.run(() => {
      const rows = this.#sql.listGrants.all({
        after_sub: options.after?.sub ?? null,
        after_client: options.after?.clientId ?? '',
        status: options.status ?? null,
        limit: limit + 1,
      }) as GrantRow[];
      return toGrantPage(rows, limit);
    });
  }

  async createApiKey(record: ApiKeyRecord): Promise<void> {
    return this.database.run(() => {
      try {
        this.#sql.insertApiKey.run({
          id: record.id,
          hash: record.hash,
          name: record.name,
          created_at: record.createdAt,
        });
      } catch (error) {
        if (sqliteCode(error)?.startsWith('SQLITE_CONSTRAINT') === true) throw duplicateApiKey(error);
        throw error;
      }
    });
  }

  async findApiKey(id: string): Promise<ApiKeyRecord | null> {
    return this.database.run(() => {
      const row = this.#sql.findApiKey.get(id) as ApiKeyRow | undefined;
      return row === undefined ? null : toApiKey(row);
    });
  }

  async listApiKeys(): Promise<ApiKeySummary[]> {
    return this.database.run(() =>
      (this.#sql.listApiKeys.all() as Array<Omit<ApiKeyRow, 'hash'>>).map(toApiKeySummary),
    );
  }

  async deleteApiKey(id: string): Promise<boolean> {
    return this.database.run(() => this.#sql.deleteApiKey.run(id).changes === 1);
  }

  async recordApiKeyUse(id: string, at: number): Promise<void> {
    // A lost note of use costs nothing: no fsync for it.
    await this.database.runUnsynced(() => this.#sql.recordApiKeyUse.run({ id, at }));
  }

  searchUsers(search: UserSearch): Promise<UserSearchPage> {
    return searchSqliteUsers(this.database, search);
  }

  async recordRefresh(sub: string, clientId: string, record: RefreshRecord): Promise<void> {
    // Written beside the access token, which is not fsynced either.
    await this.database.runUnsynced(() => this.#recordRefresh(sub, clientId, record));
  }

  #recordRefresh(sub: string, clientId: string, record: RefreshRecord): void {
    this.#sql.recordRefresh.run({
      sub,
      client_id: clientId,
      at: record.at,
      outcome: record.outcome,
      reason: record.reason,
    });
  }

  async getLastRefresh(sub: string, clientId: string): Promise<RefreshRecord | null> {
    return this.database.run(() => {
      const row = this.#sql.getLastRefresh.get(sub, clientId) as RefreshRow | undefined;
      return row === undefined ? null : toRefreshRecord(row);
    });
  }

  async acquireRefreshLease(sub: string, clientId: string, holder: string, ttlMs: number): Promise<boolean> {
    checkTtl(ttlMs);
    // Leases are real time (the process clock), whatever clock the store was given for tests.
    const now = Date.now();
    return this.database.runUnsynced(
      () =>
        this.#sql.takeLease.run({ sub, client_id: clientId, holder, now, expires_at: now + ttlMs })
          .changes === 1,
    );
  }

  async renewRefreshLease(sub: string, clientId: string, holder: string, ttlMs: number): Promise<boolean> {
    checkTtl(ttlMs);
    return this.database.runUnsynced(
      () =>
        this.#sql.renewLease.run({ sub, client_id: clientId, holder, expires_at: Date.now() + ttlMs })
          .changes === 1,
    );
  }

  async releaseRefreshLease(sub: string, clientId: string, holder: string): Promise<void> {
    await this.database.runUnsynced(() => this.#sql.releaseLease.run({ sub, client_id: clientId, holder }));
  }

  async listKeyChecks(): Promise<KeyCheckRecord[]> {
    return this.database.run(() => (this.#sql.listKeyChecks.all() as KeyCheckRow[]).map(toKeyCheck));
  }

  async addKeyCheck(record: KeyCheckRecord): Promise<boolean> {
    return this.database.run(
      () =>
        this.#sql.addKeyCheck.run({
          key_id: record.keyId,
          check_value: record.checkValue,
          created_at: record.createdAt,
        }).changes === 1,
    );
  }

  async close(): Promise<void> {
    if (this.#ownsDatabase) await this.database.close();
  }
}

/**
 * Revoke a grant and erase its tokens, inside the transaction the connection is in, recording
 * `grant.revoked` for the webhooks when it was not revoked already.
 */
export function revokeSqliteGrant(
  database: SqliteDatabase,
  sub: string,
  clientId: string,
  now: number,
  reason: GrantChangeReason,
): boolean {
  const sql = vaultStatements(database);
  const before = sql.getGrant.get(sub, clientId) as GrantRow | undefined;
  const changed = sql.revokeGrant.run({ sub, client_id: clientId, now }).changes === 1;
  if (before !== undefined)
    recordSqliteEvents(
      database,
      [grantStatusEvent(sub, before.status as GrantStatus, 'revoked', reason)],
      now,
    );
  return changed;
}

/**
 * Forget a user, inside the transaction the connection is in, recording `user.deleted` for the
 * webhooks; true when there was one.
 */
export function eraseSqliteUser(
  database: SqliteDatabase,
  sub: string,
  reason: UserDeletionReason,
  now: number,
): boolean {
  let last = 0;
  for (const statement of vaultStatements(database).eraseUser) last = statement.run(sub).changes;
  if (last === 1) recordSqliteEvents(database, [userDeletedEvent(sub, reason)], now);
  return last === 1;
}

/** The vault's statements for a database, prepared once per connection. */
const prepared = new WeakMap<SqliteDatabase, VaultStatements>();
function vaultStatements(database: SqliteDatabase): VaultStatements {
  let statements = prepared.get(database);
  if (statements === undefined) {
    statements = prepareVault(database.connection);
    prepared.set(database, statements);
  }
  return statements;
}

type VaultStatements = ReturnType<typeof prepareVault>;

/** Every statement of the SQLite vault, prepared once on the database's connection. */
function prepareVault(db: Database.Database) {
  return {
    // One statement: insert, or take over only a lease that has run out; no grant, no lease.
    takeLease: db.prepare(
      `INSERT INTO refresh_leases (sub, client_id, holder, expires_at)
       SELECT sub, client_id, @holder, @expires_at FROM grants WHERE sub = @sub AND client_id = @client_id
       ON CONFLICT (sub, client_id) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
       WHERE refresh_leases.expires_at <= @now`,
    ),
    releaseLease: db.prepare(
      'DELETE FROM refresh_leases WHERE sub = @sub AND client_id = @client_id AND holder = @holder',
    ),
    renewLease: db.prepare(
      'UPDATE refresh_leases SET expires_at = @expires_at WHERE sub = @sub AND client_id = @client_id AND holder = @holder',
    ),
    upsertUser: db.prepare(
      `INSERT INTO users (sub, email, email_verified, name, given_name, family_name, picture, locale, hd, created_at, updated_at, last_sign_in_at)
       VALUES (@sub, @email, @email_verified, @name, @given_name, @family_name, @picture, @locale, @hd, @now, @now, @now)
       ON CONFLICT (sub) DO UPDATE SET email = excluded.email, email_verified = excluded.email_verified, name = excluded.name,
         given_name = excluded.given_name, family_name = excluded.family_name, picture = excluded.picture,
         locale = excluded.locale, hd = excluded.hd, updated_at = excluded.updated_at, last_sign_in_at = excluded.last_sign_in_at`,
    ),
    upsertGrant: db.prepare(
      `INSERT INTO grants (sub, client_id, refresh_token, refresh_token_issued_at, refresh_token_expires_at, access_token,
         access_token_expires_at, scopes, status, version, created_at, updated_at)
       VALUES (@sub, @client_id, @refresh_token, @refresh_token_issued_at, @refresh_token_expires_at, @access_token,
         @access_token_expires_at, @scopes, @status, 1, @now, @now)
       ON CONFLICT (sub, client_id) DO UPDATE SET refresh_token = excluded.refresh_token,
         refresh_token_issued_at = excluded.refresh_token_issued_at,
         refresh_token_expires_at = excluded.refresh_token_expires_at, access_token = excluded.access_token,
         access_token_expires_at = excluded.access_token_expires_at, scopes = excluded.scopes, status = excluded.status,
         version = grants.version + 1, updated_at = excluded.updated_at`,
    ),
    getUser: db.prepare('SELECT * FROM users WHERE sub = ?'),
    getGrant: db.prepare('SELECT * FROM grants WHERE sub = ? AND client_id = ?'),
    // A range of grants_by_refresh_expiry (migration 9).
    countExpiring: db.prepare(
      `SELECT COUNT(*) AS n FROM grants WHERE refresh_token_expires_at IS NOT NULL
         AND refresh_token_expires_at < @before AND client_id = @client_id AND status = 'active'`,
    ),
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
    // One write: both tokens erased, the grant revoked; it comes back only with a new sign-in.
    revokeGrant: db.prepare(
      `UPDATE grants SET status = 'revoked', refresh_token = NULL, access_token = NULL, access_token_expires_at = NULL,
         version = version + 1, updated_at = @now
       WHERE sub = @sub AND client_id = @client_id`,
    ),
    // Forgetting a user, in this order in one transaction: their queued jobs (plainjob's pending
    // rows; a started one finds its run gone and does nothing), job runs, security state, refresh
    // leases, grants, and the user, whose row count says whether there was one.
    eraseUser: [
      db.prepare(
        `DELETE FROM plainjob_jobs WHERE status = 0 AND json_extract(data, '$.runId') IN (SELECT id FROM job_runs WHERE sub = ?)`,
      ),
      db.prepare('DELETE FROM job_runs WHERE sub = ?'),
      db.prepare('DELETE FROM user_security WHERE sub = ?'),
      db.prepare('DELETE FROM refresh_leases WHERE sub = ?'),
      db.prepare('DELETE FROM grants WHERE sub = ?'),
      db.prepare('DELETE FROM users WHERE sub = ?'),
    ],
    listKeyChecks: db.prepare('SELECT * FROM key_checks ORDER BY key_id'),
    addKeyCheck: db.prepare(
      'INSERT INTO key_checks (key_id, check_value, created_at) VALUES (@key_id, @check_value, @created_at) ON CONFLICT (key_id) DO NOTHING',
    ),
    // Keyset pagination in (sub, client_id) order: byte order (SQLite's BINARY collation).
    listGrants: db.prepare(
      `SELECT * FROM grants
       WHERE (@after_sub IS NULL OR (sub, client_id) > (@after_sub, @after_client))
         AND (@status IS NULL OR status = @status)
       ORDER BY sub, client_id LIMIT @limit`,
    ),
    insertApiKey: db.prepare(
      'INSERT INTO api_keys (id, hash, name, created_at) VALUES (@id, @hash, @name, @created_at)',
    ),
    findApiKey: db.prepare('SELECT * FROM api_keys WHERE id = ?'),
    listApiKeys: db.prepare(
      'SELECT id, name, created_at, last_used_at FROM api_keys ORDER BY created_at, id',
    ),
    recordApiKeyUse: db.prepare(
      'UPDATE api_keys SET last_used_at = @at WHERE id = @id AND (last_used_at IS NULL OR last_used_at < @at)',
    ),
    // Only for a grant that exists; a newer record stands.
    recordRefresh: db.prepare(
      `INSERT INTO grant_refreshes (sub, client_id, at, outcome, reason)
       SELECT sub, client_id, @at, @outcome, @reason FROM grants WHERE sub = @sub AND client_id = @client_id
       ON CONFLICT (sub, client_id) DO UPDATE SET at = excluded.at, outcome = excluded.outcome, reason = excluded.reason
       WHERE excluded.at >= grant_refreshes.at`,
    ),
    // A record older than the grant belongs to a grant deleted meanwhile (and is not shown).
    getLastRefresh: db.prepare(
      `SELECT r.at, r.outcome, r.reason FROM grant_refreshes r JOIN grants g ON g.sub = r.sub AND g.client_id = r.client_id
       WHERE r.sub = ? AND r.client_id = ? AND r.at >= g.created_at`,
    ),
    deleteApiKey: db.prepare('DELETE FROM api_keys WHERE id = ?'),
  };
}
