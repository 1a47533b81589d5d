import pg from 'pg';
import { systemClock, type Clock } from '../clock.js';
import { BehalfError } from '../errors.js';
import { POSTGRES_MIGRATIONS, POSTGRES_SCHEMA_VERSION } from './migrations/postgres.js';
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

export { POSTGRES_SCHEMA_VERSION };

const SETTING = 'BEHALF_DATABASE_URL';
const STATUSES: ReadonlySet<string> = new Set<GrantStatus>(['active', 'revoked', 'needs_consent']);
const MAX_PAGE = 10_000;
const MIGRATE_HINT = 'run `behalf migrate` with the same BEHALF_DATABASE_URL';

/**
 * Pool and timeout settings. Each can also be given in the URL's query string (the name in
 * brackets), which wins: the URL is what the operator controls. behalf removes these from the URL
 * before handing it to `pg`; every other parameter (sslmode, application_name, options,
 * lock_timeout, idle_in_transaction_session_timeout …) passes through untouched.
 */
export interface PostgresPoolOptions {
  /** Connections this process may open (`pool_max`). Default 10. */
  poolMax?: number;
  /** How long to wait for a connection, new or from a full pool (`connect_timeout`, in seconds as in libpq). Default 10 s. */
  connectTimeoutMs?: number;
  /** Server-side limit on one statement, lock waits included (`statement_timeout`, milliseconds as in Postgres; 0: none). Default 10000. */
  statementTimeoutMs?: number;
  /** How long an idle connection is kept open (`pool_idle_timeout_ms`; 0: forever). Default 30000. */
  poolIdleTimeoutMs?: number;
}

export interface PostgresStoreOptions extends PostgresPoolOptions {
  /** Time for the writes whose caller gives none (key rotation). */
  clock?: Clock;
}

/** What `behalf migrate` did. */
export interface MigrationReport {
  kind: 'sqlite' | 'postgres';
  /** Where, without any password: `postgres://user@host:port/db`, or the SQLite file path. */
  target: string;
  /** Schema version before and after. */
  from: number;
  to: number;
  applied: Array<{ version: number; name: string }>;
}

/** The settings behalf derives from a postgres:// URL (see {@link PostgresPoolOptions}). */
export interface PostgresSettings {
  /** The URL for `pg`, behalf's own parameters removed. Holds the password: never print it. */
  connectionString: string;
  /** The URL without password or query: safe for messages. */
  target: string;
  poolMax: number;
  connectTimeoutMs: number;
  statementTimeoutMs: number;
  poolIdleTimeoutMs: number;
}

const DEFAULTS = { poolMax: 10, connectTimeoutMs: 10_000, statementTimeoutMs: 10_000, poolIdleTimeoutMs: 30_000 } as const;

/**
 * Read behalf's pool and timeout parameters out of a postgres:// URL. Problems are CONFIG_INVALID
 * naming BEHALF_DATABASE_URL and the parameter, never echoing the URL or a value.
 */
export function parsePostgresSettings(url: string, options: PostgresPoolOptions = {}): PostgresSettings {
  let parsed: URL;
  try {
    parsed = new URL(url.trim());
  } catch {
    throw new BehalfError('CONFIG_INVALID', `${SETTING}: the postgres:// URL is malformed (expected postgres://USER:PASSWORD@HOST:PORT/DB).`);
  }
  const query = parsed.searchParams;
  const take = (name: string, parse: (raw: string) => number | undefined, problem: string): number | undefined => {
    const raw = query.get(name);
    if (raw === null) return undefined;
    query.delete(name);
    const value = parse(raw.trim());
    if (value === undefined) throw new BehalfError('CONFIG_INVALID', `${SETTING}: the ${name} parameter ${problem}`);
    return value;
  };
  const whole = (min: number, max: number) => (raw: string) => {
    const n = /^\d+$/.test(raw) ? Number(raw) : NaN;
    return Number.isSafeInteger(n) && n >= min && n <= max ? n : undefined;
  };
  const seconds = (raw: string) => {
    const n = /^\d+(\.\d+)?$/.test(raw) ? Number(raw) : NaN;
    return Number.isFinite(n) && n <= 3600 ? Math.round(n * 1000) : undefined;
  };
  const poolMax = take('pool_max', whole(1, 1000), 'must be a whole number of connections from 1 to 1000.');
  const connectTimeoutMs = take('connect_timeout', seconds, 'must be a number of seconds from 0 to 3600 (0: wait forever).');
  const statementTimeoutMs = take('statement_timeout', whole(0, 86_400_000), 'must be a whole number of milliseconds (0: no limit).');
  const poolIdleTimeoutMs = take('pool_idle_timeout_ms', whole(0, 86_400_000), 'must be a whole number of milliseconds (0: keep idle connections).');
  const target = redactPostgresUrl(parsed.href);
  return {
    connectionString: parsed.href,
    target,
    poolMax: poolMax ?? options.poolMax ?? DEFAULTS.poolMax,
    connectTimeoutMs: connectTimeoutMs ?? options.connectTimeoutMs ?? DEFAULTS.connectTimeoutMs,
    statementTimeoutMs: statementTimeoutMs ?? options.statementTimeoutMs ?? DEFAULTS.statementTimeoutMs,
    poolIdleTimeoutMs: poolIdleTimeoutMs ?? options.poolIdleTimeoutMs ?? DEFAULTS.poolIdleTimeoutMs,
  };
}

/**
 * A postgres:// URL fit for a message: scheme, user, host, port and database only. The password
 * goes, and so does the whole query string (libpq accepts `password=` and `sslpassword=` there).
 */
export function redactPostgresUrl(url: string): string {
  try {
    const parsed = new URL(url.trim());
    const user = parsed.username === '' ? '' : `${parsed.username}@`;
    return `${parsed.protocol}//${user}${parsed.host}${parsed.pathname === '/' ? '' : parsed.pathname}`;
  } catch {
    return 'postgres://(malformed URL)';
  }
}

// BIGINT (int8) arrives as a string by default, since it may exceed 2^53. behalf's BIGINTs are
// Unix milliseconds and version counters, far below that: read them as numbers. Per pool, not
// pg.types.setTypeParser, which would change every other pg user in the process.
const INT8_OID = 20;
const types: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === INT8_OID && format !== 'binary' ? (value: string) => Number(value) : pg.types.getTypeParser(oid, format)) as pg.CustomTypesConfig['getTypeParser'],
};

function createPool(settings: PostgresSettings, purpose: 'store' | 'migrate'): pg.Pool {
  const statementTimeout = purpose === 'migrate' ? 0 : settings.statementTimeoutMs;
  const pool = new pg.Pool({
    connectionString: settings.connectionString,
    max: purpose === 'migrate' ? 1 : settings.poolMax,
    connectionTimeoutMillis: settings.connectTimeoutMs,
    idleTimeoutMillis: settings.poolIdleTimeoutMs,
    fallback_application_name: 'behalf',
    ...(statementTimeout > 0
      ? {
          statement_timeout: statementTimeout,
          // A connection that silently vanished (no reset ever arrives) would otherwise hang a
          // call until TCP gives up: fail on our side a little after the server's own limit.
          query_timeout: statementTimeout + 2_000,
        }
      : {}),
    // Notice a dead peer on an idle connection without waiting hours for the OS default.
    keepAlive: true,
    keepAliveInitialDelayMillis: 10_000,
    types,
  });
  // An idle connection that dies (Postgres restarted, a proxy cut it) is reported here and
  // dropped by the pool, which opens a new one on the next call: nothing else to do. Without a
  // listener, the event would crash the process.
  pool.on('error', () => undefined);
  return pool;
}

/**
 * Open the Postgres store at `url`. Nothing is migrated here: the schema must be exactly the
 * version this build knows, or start-up stops with a CONFIG_INVALID that says to run
 * `behalf migrate`. An unreachable server stops start-up with one STORE_UNAVAILABLE naming
 * BEHALF_DATABASE_URL.
 */
export async function openPostgresStore(url: string, options: PostgresStoreOptions = {}): Promise<PostgresStore> {
  const settings = parsePostgresSettings(url, options);
  const pool = createPool(settings, 'store');
  try {
    const version = await readSchemaVersion(pool, settings);
    if (version !== POSTGRES_SCHEMA_VERSION) throw schemaMismatch(settings, version);
  } catch (error) {
    await pool.end().catch(() => undefined);
    throw error;
  }
  return new PostgresStore(pool, settings, options.clock ?? systemClock);
}

/**
 * Apply the migrations this build knows that the database lacks, in one transaction, under an
 * advisory lock so that several `behalf migrate` runs at once (one per deploying machine) apply
 * each migration once. Running it again applies nothing. A schema newer than this build knows is
 * refused.
 */
export async function migratePostgres(url: string, options: PostgresPoolOptions = {}): Promise<MigrationReport> {
  const settings = parsePostgresSettings(url, options);
  const pool = createPool(settings, 'migrate');
  try {
    const client = await pool.connect().catch((error: unknown) => {
      throw openError(settings, error);
    });
    let broken: unknown;
    const onError = (error: unknown) => {
      broken = error;
    };
    client.on('error', onError);
    try {
      await client.query('BEGIN');
      // Migrations may rewrite big tables: no statement limit here, whatever the URL says.
      await client.query('SET LOCAL statement_timeout = 0');
      // One lock per database and schema: other schemas in the same database migrate freely.
      await client.query("SELECT pg_advisory_xact_lock(hashtext('behalf.schema_migrations'), hashtext(COALESCE(current_schema(), '')))");
      await client.query(
        `CREATE TABLE IF NOT EXISTS schema_migrations (
           version     INTEGER     NOT NULL PRIMARY KEY,
           name        TEXT        NOT NULL,
           applied_at  TIMESTAMPTZ NOT NULL DEFAULT now()
         )`,
      );
      const from = await currentVersion(client, settings);
      if (from > POSTGRES_SCHEMA_VERSION) throw schemaMismatch(settings, from);
      const applied: MigrationReport['applied'] = [];
      for (const migration of POSTGRES_MIGRATIONS) {
        if (migration.version <= from) continue;
        await client.query(migration.sql);
        await client.query('INSERT INTO schema_migrations (version, name) VALUES ($1, $2)', [migration.version, migration.name]);
        applied.push({ version: migration.version, name: migration.name });
      }
      await client.query('COMMIT');
      return { kind: 'postgres', target: settings.target, from, to: Math.max(from, POSTGRES_SCHEMA_VERSION), applied };
    } catch (error) {
      await client.query('ROLLBACK').catch((rollbackError: unknown) => {
        broken = rollbackError;
      });
      throw openError(settings, error);
    } finally {
      client.off('error', onError);
      client.release(broken === undefined ? undefined : true);
    }
  } finally {
    await pool.end().catch(() => undefined);
  }
}

/** The schema version recorded in `schema_migrations`; 0 when behalf has never migrated here. */
async function readSchemaVersion(pool: pg.Pool, settings: PostgresSettings): Promise<number> {
  try {
    const { rows } = await pool.query<{ present: boolean }>("SELECT to_regclass('schema_migrations') IS NOT NULL AS present");
    return rows[0]?.present === true ? await currentVersion(pool, settings) : 0;
  } catch (error) {
    throw openError(settings, error);
  }
}

async function currentVersion(db: pg.Pool | pg.PoolClient, settings: PostgresSettings): Promise<number> {
  try {
    const { rows } = await db.query<{ version: number }>('SELECT COALESCE(MAX(version), 0)::integer AS version FROM schema_migrations WHERE name IS NOT NULL');
    return rows[0]?.version ?? 0;
  } catch (error) {
    // Another tool's schema_migrations (Rails, golang-migrate …) has no name column.
    if (sqlState(error) === '42703' || sqlState(error) === '42883') {
      throw new BehalfError(
        'CONFIG_INVALID',
        `${SETTING}: ${settings.target} has a schema_migrations table that is not behalf's. Give behalf a database of its own, ` +
          'or a schema of its own (add ?options=-c%20search_path%3Dbehalf to the URL after CREATE SCHEMA behalf).',
        { reason: 'foreign_schema', cause: error },
      );
    }
    throw error;
  }
}

function schemaMismatch(settings: PostgresSettings, version: number): BehalfError {
  if (version > POSTGRES_SCHEMA_VERSION) {
    return new BehalfError(
      'CONFIG_INVALID',
      `${SETTING}: the database schema at ${settings.target} is at version ${version}, newer than this behalf knows (${POSTGRES_SCHEMA_VERSION}). ` +
        'A newer behalf has migrated it: run that newer behalf (`behalf migrate` never downgrades), or point the setting at another database.',
      { reason: 'schema_too_new' },
    );
  }
  const state = version === 0 ? 'has no behalf schema yet (version 0)' : `is at schema version ${version}, older than this behalf needs`;
  return new BehalfError(
    'CONFIG_INVALID',
    `${SETTING}: the database at ${settings.target} ${state}; this behalf needs version ${POSTGRES_SCHEMA_VERSION}: ${MIGRATE_HINT}, then start again.`,
    { reason: version === 0 ? 'schema_missing' : 'schema_too_old' },
  );
}

/**
 * The store over Postgres, for several behalf instances sharing one database. Every write is one
 * statement or one short transaction; concurrent writers to one grant are ordered by Postgres's
 * row locks, and the rules SQLite applies (a refresh token never replaced by an older one, a
 * compare-and-set on `version`) hold across instances.
 */
export class PostgresStore implements Store {
  readonly kind = 'postgres' as const;
  /** The database, without password: safe to print. */
  readonly target: string;
  readonly #pool: pg.Pool;
  readonly #settings: PostgresSettings;
  readonly #clock: Clock;
  #closed = false;

  /** Prefer {@link openPostgresStore}, which checks the schema first. */
  constructor(pool: pg.Pool, settings: PostgresSettings, clock: Clock = systemClock) {
    this.#pool = pool;
    this.#settings = settings;
    this.target = settings.target;
    this.#clock = clock;
  }

  /** The pool's effective settings, for diagnostics and tests. */
  settings(): Omit<PostgresSettings, 'connectionString'> & { schemaVersion: number } {
    const { connectionString: _secret, ...safe } = this.#settings;
    return { ...safe, schemaVersion: POSTGRES_SCHEMA_VERSION };
  }

  async saveSignIn(write: SignInWrite): Promise<{ user: UserRecord; grant: StoredGrant }> {
    const { user, now } = write;
    return this.#transaction(async (db) => {
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
      const grant = await db.query<GrantRow>(SQL.upsertGrant, [
        user.sub,
        write.clientId,
        write.refreshTokenCiphertext ?? null,
        write.accessTokenCiphertext,
        write.accessTokenExpiresAt,
        write.scopes,
        now,
      ]);
      return { user: toUser(saved.rows[0]!), grant: toGrant(grant.rows[0]!) };
    });
  }

  async getUser(sub: string): Promise<UserRecord | null> {
    const { rows } = await this.#query<UserRow>(SQL.getUser, [sub]);
    return rows[0] === undefined ? null : toUser(rows[0]);
  }

  async getGrant(sub: string, clientId: string): Promise<StoredGrant | null> {
    const { rows } = await this.#query<GrantRow>(SQL.getGrant, [sub, clientId]);
    return rows[0] === undefined ? null : toGrant(rows[0]);
  }

  async saveAccessToken(sub: string, clientId: string, write: AccessTokenWrite, expectedVersion?: number): Promise<boolean> {
    const values = [sub, clientId, write.accessTokenCiphertext, write.accessTokenExpiresAt, write.scopes ?? null, expectedVersion ?? null, write.now];
    const result =
      write.releaseLeaseOf === undefined
        ? await this.#query(SQL.saveAccessToken, values)
        : await this.#query(SQL.saveAccessTokenReleasingLease, [...values, write.releaseLeaseOf]);
    return result.rowCount === 1;
  }

  async setGrantStatus(sub: string, clientId: string, status: GrantStatus, now: number): Promise<void> {
    if (!STATUSES.has(status)) throw new BehalfError('INVALID_REQUEST', `Unknown grant status; expected one of ${[...STATUSES].join(', ')}.`);
    await this.#query(SQL.setStatus, [sub, clientId, status, now]);
  }

  async replaceCiphertexts(
    sub: string,
    clientId: string,
    ciphertexts: { refreshToken: Buffer | null; accessToken: Buffer | null },
    expectedVersion: number,
  ): Promise<boolean> {
    const result = await this.#query(SQL.replaceCiphertexts, [
      sub,
      clientId,
      ciphertexts.refreshToken,
      ciphertexts.accessToken,
      expectedVersion,
      this.#clock.now(),
    ]);
    return result.rowCount === 1;
  }

  async deleteUser(sub: string): Promise<boolean> {
    const result = await this.#query(SQL.deleteUser, [sub]);
    return result.rowCount === 1;
  }

  async listGrants(options: { after?: { sub: string; clientId: string }; limit: number; status?: GrantStatus }): Promise<GrantPage> {
    if (!Number.isInteger(options.limit) || options.limit < 1) {
      throw new BehalfError('INVALID_REQUEST', 'listGrants: limit must be a whole number of at least 1.');
    }
    if (options.status !== undefined && !STATUSES.has(options.status)) {
      throw new BehalfError('INVALID_REQUEST', `listGrants: unknown status; expected one of ${[...STATUSES].join(', ')}.`);
    }
    const limit = Math.min(options.limit, MAX_PAGE);
    const { after, status } = options;
    // One row more than asked tells whether there is a next page.
    const { rows } =
      after === undefined
        ? await this.#query<GrantRow>(status === undefined ? SQL.listFirst : SQL.listFirstByStatus, status === undefined ? [limit + 1] : [limit + 1, status])
        : await this.#query<GrantRow>(
            status === undefined ? SQL.listAfter : SQL.listAfterByStatus,
            status === undefined ? [limit + 1, after.sub, after.clientId] : [limit + 1, after.sub, after.clientId, status],
          );
    const grants = rows.slice(0, limit).map(toGrant);
    const last = grants.at(-1);
    return { grants, next: rows.length > limit && last !== undefined ? { sub: last.sub, clientId: last.clientId } : null };
  }

  async createApiKey(record: ApiKeyRecord): Promise<void> {
    try {
      await this.#query(SQL.insertApiKey, [record.id, record.hash, record.name, record.createdAt]);
    } catch (error) {
      if (error instanceof BehalfError && sqlState(error.cause) === '23505') {
        throw new BehalfError('INVALID_REQUEST', 'An API key with this id already exists.', { reason: 'duplicate_id', cause: error.cause });
      }
      throw error;
    }
  }

  async findApiKey(id: string): Promise<ApiKeyRecord | null> {
    const { rows } = await this.#query<ApiKeyRow>(SQL.findApiKey, [id]);
    const row = rows[0];
    return row === undefined ? null : { id: row.id, hash: row.hash, name: row.name, createdAt: row.created_at };
  }

  async acquireRefreshLease(sub: string, clientId: string, holder: string, ttlMs: number): Promise<boolean> {
    checkTtl(ttlMs);
    const result = await this.#query(SQL.takeLease, [sub, clientId, holder, ttlMs]);
    return result.rowCount === 1;
  }

  async releaseRefreshLease(sub: string, clientId: string, holder: string): Promise<void> {
    await this.#query(SQL.releaseLease, [sub, clientId, holder]);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#pool.end();
  }

  async #query<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string, values: unknown[]): Promise<pg.QueryResult<R>> {
    this.#checkOpen();
    try {
      // pool.query gives a failed connection back to the pool as broken, so it is not reused.
      return await this.#pool.query<R>(text, values);
    } catch (error) {
      throw runtimeError(error);
    }
  }

  async #transaction<T>(body: (db: pg.PoolClient) => Promise<T>): Promise<T> {
    this.#checkOpen();
    let client: pg.PoolClient;
    try {
      client = await this.#pool.connect();
    } catch (error) {
      throw runtimeError(error);
    }
    // A checked-out connection that dies reports it as an 'error' event (the pool only listens
    // while the connection is idle): note it, so the connection is destroyed rather than reused.
    let broken: unknown;
    const onError = (error: unknown) => {
      broken = error;
    };
    client.on('error', onError);
    try {
      await client.query('BEGIN');
      const result = await body(client);
      await client.query('COMMIT');
      return result;
    } catch (error) {
      // A ROLLBACK that fails means the connection is gone: destroy it rather than reuse it.
      await client.query('ROLLBACK').catch((rollbackError: unknown) => {
        broken = rollbackError;
      });
      throw runtimeError(error);
    } finally {
      client.off('error', onError);
      client.release(broken === undefined ? undefined : true);
    }
  }

  #checkOpen(): void {
    if (this.#closed) throw new BehalfError('STORE_UNAVAILABLE', 'The Postgres store is closed.');
  }
}

function checkTtl(ttlMs: number): void {
  if (!Number.isInteger(ttlMs) || ttlMs < 1) throw new BehalfError('INVALID_REQUEST', 'A refresh lease needs a whole number of milliseconds of at least 1.');
}

// Every SQL statement of the store, in one place. $n are bound parameters: values never enter the text.
const GRANT_COLUMNS = `sub, client_id, refresh_token, access_token, access_token_expires_at, scopes, status, version,
  refresh_token_issued_at, created_at, updated_at`;

/**
 * Whether a sign-in's refresh token replaces the stored one, inside ON CONFLICT DO UPDATE where
 * `grants` is the stored row and `excluded` the new one. A refresh token older than the stored
 * one never replaces it (two sign-ins racing): the rule SqliteStore.saveSignIn applies too.
 */
const REPLACES_REFRESH = `(excluded.refresh_token IS NOT NULL AND (grants.refresh_token IS NULL
  OR grants.refresh_token_issued_at IS NULL OR excluded.updated_at >= grants.refresh_token_issued_at))`;

const SAVE_ACCESS_TOKEN = `UPDATE grants SET access_token = $3, access_token_expires_at = $4, scopes = COALESCE($5::text[], scopes),
      version = version + 1, updated_at = $7
    WHERE sub = $1 AND client_id = $2 AND status = 'active' AND ($6::bigint IS NULL OR version = $6::bigint)`;

const SQL = {
  upsertUser: `INSERT INTO users (sub, email, email_verified, name, given_name, family_name, picture, locale, hd, created_at, updated_at, last_sign_in_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10, $10)
    ON CONFLICT (sub) DO UPDATE SET email = excluded.email, email_verified = excluded.email_verified, name = excluded.name,
      given_name = excluded.given_name, family_name = excluded.family_name, picture = excluded.picture,
      locale = excluded.locale, hd = excluded.hd, updated_at = excluded.updated_at, last_sign_in_at = excluded.last_sign_in_at
    RETURNING *`,
  // A first sign-in without a refresh token needs consent. On a repeat sign-in, a new refresh
  // token brings the grant back to life; without one the stored token and status stand (a
  // repeat sign-in cannot revive a grant Google refused), and a grant with none needs consent.
  upsertGrant: `INSERT INTO grants (${GRANT_COLUMNS})
    VALUES ($1, $2, $3, $4, $5, $6, CASE WHEN $3::bytea IS NULL THEN 'needs_consent' ELSE 'active' END, 1,
      CASE WHEN $3::bytea IS NULL THEN NULL ELSE $7::bigint END, $7, $7)
    ON CONFLICT (sub, client_id) DO UPDATE SET
      refresh_token = CASE WHEN ${REPLACES_REFRESH} THEN excluded.refresh_token ELSE grants.refresh_token END,
      refresh_token_issued_at = CASE WHEN ${REPLACES_REFRESH} THEN excluded.updated_at ELSE grants.refresh_token_issued_at END,
      status = CASE WHEN ${REPLACES_REFRESH} THEN 'active' WHEN grants.refresh_token IS NULL THEN 'needs_consent' ELSE grants.status END,
      access_token = excluded.access_token, access_token_expires_at = excluded.access_token_expires_at, scopes = excluded.scopes,
      version = grants.version + 1, updated_at = excluded.updated_at
    RETURNING *`,
  getUser: 'SELECT * FROM users WHERE sub = $1',
  getGrant: `SELECT ${GRANT_COLUMNS} FROM grants WHERE sub = $1 AND client_id = $2`,
  // Only an active grant takes a new access token: a revoked one must not get one back.
  saveAccessToken: SAVE_ACCESS_TOKEN,
  // One statement, so one round trip and one transaction: the lease goes whatever the update does.
  saveAccessTokenReleasingLease: `WITH released AS (DELETE FROM refresh_leases WHERE sub = $1 AND client_id = $2 AND holder = $8)
    ${SAVE_ACCESS_TOKEN}`,
  setStatus: `UPDATE grants SET status = $3, version = version + 1, updated_at = $4,
      access_token = CASE WHEN $3 = 'active' THEN access_token ELSE NULL END,
      access_token_expires_at = CASE WHEN $3 = 'active' THEN access_token_expires_at ELSE NULL END
    WHERE sub = $1 AND client_id = $2`,
  replaceCiphertexts: `UPDATE grants SET refresh_token = $3, access_token = $4,
      access_token_expires_at = CASE WHEN $4::bytea IS NULL THEN NULL ELSE access_token_expires_at END,
      version = version + 1, updated_at = $6
    WHERE sub = $1 AND client_id = $2 AND version = $5`,
  // Grants go by ON DELETE CASCADE; leases (which have no foreign key, see the migration) here.
  deleteUser: `WITH leases AS (DELETE FROM refresh_leases WHERE sub = $1)
    DELETE FROM users WHERE sub = $1`,
  // Keyset pagination in byte order (COLLATE "C", as SQLite's BINARY), straight off the primary key.
  listFirst: `SELECT ${GRANT_COLUMNS} FROM grants
    ORDER BY sub COLLATE "C", client_id COLLATE "C" LIMIT $1`,
  listFirstByStatus: `SELECT ${GRANT_COLUMNS} FROM grants WHERE status = $2
    ORDER BY sub COLLATE "C", client_id COLLATE "C" LIMIT $1`,
  listAfter: `SELECT ${GRANT_COLUMNS} FROM grants WHERE (sub COLLATE "C", client_id COLLATE "C") > ($2::text COLLATE "C", $3::text COLLATE "C")
    ORDER BY sub COLLATE "C", client_id COLLATE "C" LIMIT $1`,
  listAfterByStatus: `SELECT ${GRANT_COLUMNS} FROM grants WHERE (sub COLLATE "C", client_id COLLATE "C") > ($2::text COLLATE "C", $3::text COLLATE "C")
      AND status = $4
    ORDER BY sub COLLATE "C", client_id COLLATE "C" LIMIT $1`,
  insertApiKey: 'INSERT INTO api_keys (id, hash, name, created_at) VALUES ($1, $2, $3, $4)',
  findApiKey: 'SELECT * FROM api_keys WHERE id = $1',
  // One statement: take a free lease, or take over one that has run out, on the database's
  // clock. Concurrent takers queue on the primary key and see the winner's row: exactly one
  // gets a row back. No grant, no row inserted: false.
  takeLease: `INSERT INTO refresh_leases (sub, client_id, holder, expires_at)
    SELECT sub, client_id, $3, now() + $4::double precision * interval '1 millisecond'
      FROM grants WHERE sub = $1 AND client_id = $2
    ON CONFLICT (sub, client_id) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
      WHERE refresh_leases.expires_at <= now()`,
  releaseLease: 'DELETE FROM refresh_leases WHERE sub = $1 AND client_id = $2 AND holder = $3',
} as const;

function sqlState(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null | undefined)?.code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}

/** A Node network error code (ECONNREFUSED …), also from inside an AggregateError (several addresses tried). */
function networkCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null | undefined)?.code;
  if (typeof code === 'string' && /^E[A-Z_]+$/.test(code)) return code;
  const inner = (error as { errors?: unknown } | null | undefined)?.errors;
  return Array.isArray(inner) ? inner.map(networkCode).find((c) => c !== undefined) : undefined;
}

/**
 * pg's own connection failures carry no code, only a message: a connection or pool timeout, a
 * connection that ended under a query, a client that is no longer queryable.
 */
function isConnectionFailure(error: unknown): boolean {
  const message = (error as Error | undefined)?.message ?? '';
  return /connection terminated|connection timeout|timeout exceeded when trying to connect|not queryable|query read timeout|connection error/i.test(message);
}

/**
 * SQLSTATEs after which the same call may succeed later: connection exceptions (08), too many
 * connections and other resource limits (53), shutdown and restart (57P01-57P05), a statement
 * cancelled by statement_timeout (57014), serialization and deadlock (40), a lock not available
 * (55P03), system and I/O errors (58), an idle transaction ended by the server (25P03).
 */
function retryableState(state: string): boolean {
  return /^(08|53|58|40)/.test(state) || /^57P0[1-5]$/.test(state) || ['57014', '55P03', '25P03'].includes(state);
}

/** Short, secret-free words for why: an errno, a SQLSTATE, or pg's kind of failure. */
function why(error: unknown): string {
  return sqlState(error) ?? networkCode(error) ?? (isConnectionFailure(error) ? 'connection lost or timed out' : ((error as Error | undefined)?.name ?? 'error'));
}

/**
 * A failure during a call. Messages carry an errno or SQLSTATE and never pg's own message (which
 * can quote values, e.g. a duplicate key) nor the URL; the original is kept as `cause`.
 */
function runtimeError(error: unknown): BehalfError {
  if (error instanceof BehalfError) return error;
  const state = sqlState(error);
  if ((state !== undefined && retryableState(state)) || networkCode(error) !== undefined || isConnectionFailure(error)) {
    return new BehalfError('STORE_UNAVAILABLE', `The Postgres store is unavailable (${why(error)}); retry.`, { cause: error, retryAfter: 1 });
  }
  if (state !== undefined && /^(28|3D|3F|42501)/.test(state)) {
    // Credentials, database or schema gone or changed under a running server: retryable once fixed.
    return new BehalfError('STORE_UNAVAILABLE', `The Postgres store refused behalf (${state}); check ${SETTING}.`, { cause: error, retryAfter: 5 });
  }
  return new BehalfError('INTERNAL', `The Postgres store failed (${why(error)}).`, { cause: error });
}

/** A failure while opening or migrating: one message naming the setting and where, without a password. */
function openError(settings: PostgresSettings, error: unknown): BehalfError {
  if (error instanceof BehalfError) return error;
  const where = `${SETTING}: Postgres at ${settings.target}`;
  const state = sqlState(error);
  if (state === '28P01' || state === '28000') {
    return new BehalfError('CONFIG_INVALID', `${where} refused the credentials (${state}): check the user and password.`, { cause: error });
  }
  if (state === '3D000') {
    return new BehalfError('CONFIG_INVALID', `${where}: the database does not exist (${state}): create it, then ${MIGRATE_HINT}.`, { cause: error });
  }
  if (state === '3F000') {
    return new BehalfError('CONFIG_INVALID', `${where}: the schema on the search_path does not exist (${state}): create it, then ${MIGRATE_HINT}.`, { cause: error });
  }
  if (state === '42501') {
    return new BehalfError('CONFIG_INVALID', `${where}: permission denied (${state}): the user needs to own behalf's schema, or at least use it.`, { cause: error });
  }
  if ((state !== undefined && retryableState(state)) || networkCode(error) !== undefined || isConnectionFailure(error)) {
    return new BehalfError(
      'STORE_UNAVAILABLE',
      `${where} cannot be reached (${why(error)}): check that the server is running and that the URL names it.`,
      { cause: error, retryAfter: 5 },
    );
  }
  return new BehalfError('INTERNAL', `${where} failed (${why(error)}).`, { cause: error });
}

interface UserRow {
  sub: string;
  email: string | null;
  email_verified: boolean;
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
  scopes: string[];
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
    emailVerified: row.email_verified,
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
    scopes: row.scopes,
    status: row.status as GrantStatus,
    version: row.version,
    refreshTokenIssuedAt: row.refresh_token_issued_at,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}
