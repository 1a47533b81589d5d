import { systemClock, type Clock } from '../clock.js';
import { sqlState, type PostgresDatabase, type Queryable } from '../database/index.js';
import { BehalfError } from '../errors.js';
import {
  grantStatusEvent,
  recordPostgresEvents,
  userDeletedEvent,
  type GrantChangeReason,
  type UserDeletionReason,
} from '../webhooks/outbox.js';
import { eraseUserStatements, SQL } from './postgres-sql.js';
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
import { searchPostgresUsers } from './user-search.js';

export interface PostgresStoreOptions {
  /** Time for the writes whose caller gives none (key rotation). */
  clock?: Clock;
  /** Close the database when the store is closed (the store was opened on its own, by openStore). */
  ownsDatabase?: boolean;
}

/**
 * The vault over Postgres, for several behalf instances sharing one database. Every write is one
 * statement or one short transaction; concurrent writers to one grant are ordered by Postgres's
 * row locks, and the rules SQLite applies (a refresh token never replaced by an older one, a
 * compare-and-set on `version`) hold across instances. A trigger announces every change to a
 * grant to the other instances (see src/database/grant-changes.ts); this one hears of its own
 * changes at once, after each commit.
 */
export class PostgresStore implements Store {
  readonly kind = 'postgres' as const;
  /** The database, without password: safe to print. */
  readonly target: string;
  readonly database: PostgresDatabase;
  readonly #clock: Clock;
  readonly #ownsDatabase: boolean;

  constructor(database: PostgresDatabase, options: PostgresStoreOptions = {}) {
    this.database = database;
    this.target = database.target;
    this.#clock = options.clock ?? systemClock;
    this.#ownsDatabase = options.ownsDatabase ?? false;
  }

  get changes(): PostgresDatabase['changes'] {
    return this.database.changes;
  }

  /** The pool's effective settings, for diagnostics and tests. */
  settings(): ReturnType<PostgresDatabase['settings']> {
    return this.database.settings();
  }

  async saveSignIn(write: SignInWrite): Promise<{ user: UserRecord; grant: StoredGrant }> {
    const { user, now } = write;
    const saved = await this.database.transaction(async (db) => {
      // The user row's lock (taken by the upsert, held to commit) orders sign-ins of one user
      // across instances; the grant upsert then works on the newest committed grant.
      const saved = await db.query<UserRow>(SQL.upsertUser, [
        user.sub,
        user.email,
        user.emailVerified,
        user.name,
        user.givenName,
        user.familyName,
        user.picture,
        user.locale,
        user.hd,
        now,
      ]);
      const before = await lockedStatus(db, user.sub, write.clientId);
      const grant = await db.query<GrantRow>(SQL.upsertGrant, [
        user.sub,
        write.clientId,
        write.refreshTokenCiphertext ?? null,
        write.accessTokenCiphertext,
        write.accessTokenExpiresAt,
        write.scopes,
        now,
        write.refreshTokenExpiresAt ?? null,
      ]);
      const stored = toGrant(grant.rows[0]!);
      await recordPostgresEvents(db, [grantStatusEvent(user.sub, before, stored.status, 'signed_in')], now);
      return { user: toUser(saved.rows[0]!), grant: stored };
    });
    this.changes.publish(user.sub);
    return saved;
  }

  async getUser(sub: string): Promise<UserRecord | null> {
    const { rows } = await this.database.query<UserRow>(SQL.getUser, [sub]);
    return rows[0] === undefined ? null : toUser(rows[0]);
  }

  async countExpiringGrants(clientId: string, before: number): Promise<number> {
    const { rows } = await this.database.query<{ n: number }>(SQL.countExpiring, [clientId, before]);
    return Number(rows[0]?.n ?? 0);
  }

  async getGrant(sub: string, clientId: string): Promise<StoredGrant | null> {
    const { rows } = await this.database.query<GrantRow>(SQL.getGrant, [sub, clientId]);
    return rows[0] === undefined ? null : toGrant(rows[0]);
  }

  async saveAccessToken(
    sub: string,
    clientId: string,
    write: AccessTokenWrite,
    expectedVersion?: number,
  ): Promise<boolean> {
    const values = [
      sub,
      clientId,
      write.accessTokenCiphertext,
      write.accessTokenExpiresAt,
      write.scopes ?? null,
      expectedVersion ?? null,
      write.now,
    ];
    const result =
      write.refreshed !== undefined
        ? await this.database.query(SQL.saveRefreshedAccessToken, [
            ...values,
            write.releaseLeaseOf ?? null,
            write.refreshed.at,
            write.refreshed.outcome,
            write.refreshed.reason,
          ])
        : write.releaseLeaseOf === undefined
          ? await this.database.query(SQL.saveAccessToken, values)
          : await this.database.query(SQL.saveAccessTokenReleasingLease, [...values, write.releaseLeaseOf]);
    return result.rowCount === 1;
  }

  async setGrantStatus(
    sub: string,
    clientId: string,
    status: GrantStatus,
    now: number,
    reason?: GrantChangeReason,
  ): Promise<void> {
    checkStatus(status);
    await this.database.transaction(async (db) => {
      const before = await lockedStatus(db, sub, clientId);
      await db.query(SQL.setStatus, [sub, clientId, status, now]);
      await recordPostgresEvents(db, [grantStatusEvent(sub, before, status, reason)], now);
    });
    this.changes.publish(sub);
  }

  async revokeGrant(sub: string, clientId: string, now: number): Promise<boolean> {
    const changed = await this.database.transaction((db) =>
      revokePostgresGrant(db, sub, clientId, now, 'signed_out'),
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
    const result = await this.database.query(SQL.replaceCiphertexts, [
      sub,
      clientId,
      ciphertexts.refreshToken,
      ciphertexts.accessToken,
      expectedVersion,
      this.#clock.now(),
    ]);
    if (result.rowCount === 1) this.changes.publish(sub);
    return result.rowCount === 1;
  }

  async deleteUser(sub: string): Promise<boolean> {
    const deleted = await this.database.transaction((db) =>
      erasePostgresUser(db, this.database.jobSchema, sub, 'deleted', this.#clock.now()),
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
    const { after, status } = options;
    const { rows } =
      after === undefined
        ? await this.database.query<GrantRow>(
            status === undefined ? SQL.listFirst : SQL.listFirstByStatus,
            status === undefined ? [limit + 1] : [limit + 1, status],
          )
        : await this.database.query<GrantRow>(
            status === undefined ? SQL.listAfter : SQL.listAfterByStatus,
            status === undefined
              ? [limit + 1, after.sub, after.clientId]
              : [limit + 1, after.sub, after.clientId, status],
          );
    return toGrantPage(rows, limit);
  }

  async createApiKey(record: ApiKeyRecord): Promise<void> {
    try {
      await this.database.query(SQL.insertApiKey, [record.id, record.hash, record.name, record.createdAt]);
    } catch (error) {
      if (error instanceof BehalfError && sqlState(error.cause) === '23505')
        throw duplicateApiKey(error.cause);
      throw error;
    }
  }

  async findApiKey(id: string): Promise<ApiKeyRecord | null> {
    const { rows } = await this.database.query<ApiKeyRow>(SQL.findApiKey, [id]);
    return rows[0] === undefined ? null : toApiKey(rows[0]);
  }

  async listApiKeys(): Promise<ApiKeySummary[]> {
    const { rows } = await this.database.query<Omit<ApiKeyRow, 'hash'>>(SQL.listApiKeys);
    return rows.map(toApiKeySummary);
  }

  async deleteApiKey(id: string): Promise<boolean> {
    return (await this.database.query(SQL.deleteApiKey, [id])).rowCount === 1;
  }

  async recordApiKeyUse(id: string, at: number): Promise<void> {
    await this.database.query(SQL.recordApiKeyUse, [id, at]);
  }

  searchUsers(search: UserSearch): Promise<UserSearchPage> {
    return searchPostgresUsers(this.database, search);
  }

  async recordRefresh(sub: string, clientId: string, record: RefreshRecord): Promise<void> {
    await this.database.query(SQL.recordRefresh, [sub, clientId, record.at, record.outcome, record.reason]);
  }

  async getLastRefresh(sub: string, clientId: string): Promise<RefreshRecord | null> {
    const { rows } = await this.database.query<RefreshRow>(SQL.getLastRefresh, [sub, clientId]);
    return rows[0] === undefined ? null : toRefreshRecord(rows[0]);
  }

  async acquireRefreshLease(sub: string, clientId: string, holder: string, ttlMs: number): Promise<boolean> {
    checkTtl(ttlMs);
    const result = await this.database.query(SQL.takeLease, [sub, clientId, holder, ttlMs]);
    return result.rowCount === 1;
  }

  async renewRefreshLease(sub: string, clientId: string, holder: string, ttlMs: number): Promise<boolean> {
    checkTtl(ttlMs);
    const result = await this.database.query(SQL.renewLease, [sub, clientId, holder, ttlMs]);
    return result.rowCount === 1;
  }

  async releaseRefreshLease(sub: string, clientId: string, holder: string): Promise<void> {
    await this.database.query(SQL.releaseLease, [sub, clientId, holder]);
  }

  async listKeyChecks(): Promise<KeyCheckRecord[]> {
    const { rows } = await this.database.query<KeyCheckRow>(SQL.listKeyChecks);
    return rows.map(toKeyCheck);
  }

  async addKeyCheck(record: KeyCheckRecord): Promise<boolean> {
    const result = await this.database.query(SQL.addKeyCheck, [
      record.keyId,
      record.checkValue,
      record.createdAt,
    ]);
    return result.rowCount === 1;
  }

  async close(): Promise<void> {
    if (this.#ownsDatabase) await this.database.close();
  }
}

/**
 * Revoke a grant and erase its tokens, inside the transaction `db` is in, recording
 * `grant.revoked` for the webhooks when it was not revoked already.
 */
export async function revokePostgresGrant(
  db: Queryable,
  sub: string,
  clientId: string,
  now: number,
  reason: GrantChangeReason,
): Promise<boolean> {
  const before = await lockedStatus(db, sub, clientId);
  const changed = (await db.query(SQL.revokeGrant, [sub, clientId, now])).rowCount === 1;
  await recordPostgresEvents(db, [grantStatusEvent(sub, before, 'revoked', reason)], now);
  return changed;
}

/**
 * Forget a user (see eraseUserStatements), inside the transaction `db` is in, recording
 * `user.deleted` for the webhooks when there was one.
 */
export async function erasePostgresUser(
  db: Queryable,
  jobSchema: string,
  sub: string,
  reason: UserDeletionReason,
  now: number,
): Promise<boolean> {
  let last = 0;
  for (const statement of eraseUserStatements(jobSchema))
    last = (await db.query(statement, [sub])).rowCount ?? 0;
  if (last === 1) await recordPostgresEvents(db, [userDeletedEvent(sub, reason)], now);
  return last === 1;
}

/** The grant's status, locked until the transaction `db` is in ends; null when there is no such grant. */
async function lockedStatus(db: Queryable, sub: string, clientId: string): Promise<GrantStatus | null> {
  const { rows } = await db.query<{ status: GrantStatus }>(SQL.lockGrantStatus, [sub, clientId]);
  return rows[0]?.status ?? null;
}
