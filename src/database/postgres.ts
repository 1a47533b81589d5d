/**
 * behalf's Postgres database: one object owns the pool (the URL's pool and timeout settings apply
 * to everything behalf does there), the one ordered migration list, the error mapping and
 * transactions. The vault, the security event log and job runs are repositories over it.
 */
import type pg from 'pg';
import { BehalfError } from '../errors.js';
import { PostgresGrantChanges } from './grant-changes.js';
import { POSTGRES_MIGRATIONS, POSTGRES_SCHEMA_VERSION } from './migrations/postgres.js';
import { MIGRATE_HINT, openError, runtimeError, sqlState } from './postgres-errors.js';
import {
  createPool,
  parsePostgresSettings,
  type PostgresPoolOptions,
  type PostgresSettings,
} from './postgres-settings.js';

export { POSTGRES_SCHEMA_VERSION };

const SETTING = 'BEHALF_DATABASE_URL';

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

/**
 * A statement Postgres prepares once per connection, by name, and then only binds and executes:
 * parse and plan are skipped on every later use (about 1.45x the rate of the same primary-key
 * SELECT sent unnamed, measured one call at a time on a 2-core machine). For the few hot, fixed
 * statements; a name must always go with the same text. Needs session connections (as LISTEN
 * does): see the README's Postgres section.
 */
export interface NamedStatement {
  readonly name: string;
  readonly text: string;
}

/** Something SQL runs on: the pool, or one transaction's connection. */
export interface Queryable {
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(
    statement: string | NamedStatement,
    values?: unknown[],
  ): Promise<pg.QueryResult<R>>;
}

/**
 * The database behind every Postgres repository. Open it with {@link openPostgresDatabase}, which
 * checks that `behalf migrate` has prepared the schema; nothing here ever runs DDL, so a serving
 * role needs no DDL rights.
 */
export class PostgresDatabase implements Queryable {
  readonly kind = 'postgres' as const;
  /** The database, without password: safe to print. */
  readonly target: string;
  /** The schema behalf's tables are in (the first of the connection's search_path). */
  readonly schema: string;
  /** The schema pg-boss's tables are in (see {@link jobSchemaFor}). */
  readonly jobSchema: string;
  /** Changes to grants made by any instance on this database. */
  readonly changes: PostgresGrantChanges;
  readonly #pool: pg.Pool;
  readonly #settings: PostgresSettings;
  #closed = false;

  constructor(pool: pg.Pool, settings: PostgresSettings, schema: string) {
    this.#pool = pool;
    this.#settings = settings;
    this.target = settings.target;
    this.schema = schema;
    this.jobSchema = jobSchemaFor(schema);
    this.changes = new PostgresGrantChanges(settings, schema);
  }

  /** The pool's effective settings, for diagnostics and tests. */
  settings(): Omit<PostgresSettings, 'connectionString'> & { schemaVersion: number } {
    const { connectionString: _secret, ...safe } = this.#settings;
    return { ...safe, schemaVersion: POSTGRES_SCHEMA_VERSION };
  }

  /** The schema version recorded in the database now (readiness: has another behalf migrated it since?). */
  async schemaVersion(): Promise<number> {
    const { rows } = await this.query<{ version: number }>(
      'SELECT COALESCE(MAX(version), 0)::integer AS version FROM schema_migrations',
    );
    return rows[0]?.version ?? 0;
  }

  /** One statement on the pool; failures come back as BehalfErrors (see ./postgres-errors.ts). */
  async query<R extends pg.QueryResultRow = pg.QueryResultRow>(
    statement: string | NamedStatement,
    values: unknown[] = [],
  ): Promise<pg.QueryResult<R>> {
    this.#checkOpen();
    try {
      // pool.query gives a failed connection back to the pool as broken, so it is not reused.
      // pg copies a config object before adding the values, so one NamedStatement serves every caller.
      return await this.#pool.query<R>(statement, values);
    } catch (error) {
      throw runtimeError(error);
    }
  }

  /** Run `body` in one transaction on one connection: committed if it resolves, rolled back if it throws. */
  async transaction<T>(body: (db: Queryable) => Promise<T>): Promise<T> {
    this.#checkOpen();
    return inTransaction(this.#pool, body, runtimeError);
  }

  /** For pg-boss (its `db` option): its SQL runs on this pool, with this pool's settings. */
  readonly executeSql = async (text: string, values?: unknown[]): Promise<{ rows: unknown[] }> => {
    this.#checkOpen();
    return this.#pool.query(text, values);
  };

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.changes.close();
    await this.#pool.end();
  }

  #checkOpen(): void {
    if (this.#closed) throw new BehalfError('STORE_UNAVAILABLE', 'The Postgres database is closed.');
  }
}

/**
 * pg-boss keeps its tables in a schema of its own, named after behalf's: `behalf_jobs` beside
 * `public`, `<schema>_jobs` beside any other (so two behalf deployments in two schemas of one
 * database have two queues).
 */
export function jobSchemaFor(schema: string): string {
  return schema === 'public' ? 'behalf_jobs' : `${schema}_jobs`;
}

/**
 * Open the Postgres database at `url`. Nothing is migrated here: the schema must be exactly the
 * version this build knows, or start-up stops with a CONFIG_INVALID that says to run
 * `behalf migrate`. An unreachable server stops start-up with one STORE_UNAVAILABLE naming
 * BEHALF_DATABASE_URL.
 */
export async function openPostgresDatabase(
  url: string,
  options: PostgresPoolOptions = {},
): Promise<PostgresDatabase> {
  const settings = parsePostgresSettings(url, options);
  const pool = await createPool(settings, 'store');
  try {
    const schema = await currentSchema(pool, settings);
    const version = await readSchemaVersion(pool, settings);
    if (version !== POSTGRES_SCHEMA_VERSION) throw schemaMismatch(settings, version);
    return new PostgresDatabase(pool, settings, schema);
  } catch (error) {
    await pool.end().catch(() => undefined);
    throw error;
  }
}

/**
 * Apply the migrations this build knows that the database lacks, in one transaction, under an
 * advisory lock so that several `behalf migrate` runs at once (one per deploying machine) apply
 * each migration once. Running it again applies nothing. A schema newer than this build knows is
 * refused.
 */
export async function migratePostgres(
  url: string,
  options: PostgresPoolOptions = {},
): Promise<MigrationReport> {
  const settings = parsePostgresSettings(url, options);
  const pool = await createPool(settings, 'migrate');
  try {
    return await inTransaction(
      pool,
      async (client) => {
        // Migrations may rewrite big tables: no statement limit here, whatever the URL says.
        await client.query('SET LOCAL statement_timeout = 0');
        // One lock per database and schema: other schemas in the same database migrate freely.
        await client.query(
          "SELECT pg_advisory_xact_lock(hashtext('behalf.schema_migrations'), hashtext(COALESCE(current_schema(), '')))",
        );
        const context = { jobSchema: jobSchemaFor(await currentSchema(client, settings)) };
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
          await client.query(typeof migration.sql === 'string' ? migration.sql : migration.sql(context));
          if (migration.after !== undefined) await migration.after(client, context);
          await client.query('INSERT INTO schema_migrations (version, name) VALUES ($1, $2)', [
            migration.version,
            migration.name,
          ]);
          applied.push({ version: migration.version, name: migration.name });
        }
        return {
          kind: 'postgres',
          target: settings.target,
          from,
          to: Math.max(from, POSTGRES_SCHEMA_VERSION),
          applied,
        };
      },
      (error) => openError(settings, error),
    );
  } finally {
    await pool.end().catch(() => undefined);
  }
}

/**
 * Run `body` in one transaction on one connection of `pool`: committed if it resolves, rolled back
 * if it throws; failures (connecting included) come back through `mapError`.
 */
async function inTransaction<T>(
  pool: pg.Pool,
  body: (db: pg.PoolClient) => Promise<T>,
  mapError: (error: unknown) => Error,
): Promise<T> {
  let client: pg.PoolClient;
  try {
    client = await pool.connect();
  } catch (error) {
    throw mapError(error);
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
    throw mapError(error);
  } finally {
    client.off('error', onError);
    client.release(broken === undefined ? undefined : true);
  }
}

/** The schema behalf's tables go in: the first existing schema on the search_path. */
async function currentSchema(db: pg.Pool | pg.PoolClient, settings: PostgresSettings): Promise<string> {
  let schema: string | null | undefined;
  try {
    schema = (await db.query<{ schema: string | null }>('SELECT current_schema() AS schema')).rows[0]?.schema;
  } catch (error) {
    throw openError(settings, error);
  }
  if (schema === null || schema === undefined) {
    throw new BehalfError(
      'CONFIG_INVALID',
      `${SETTING}: Postgres at ${settings.target}: the schema on the search_path does not exist: create it, then ${MIGRATE_HINT}.`,
      { reason: 'schema_missing' },
    );
  }
  // pg-boss writes its schema's name into SQL unquoted: keep to plain lower-case identifiers.
  if (!/^[a-z_][a-z0-9_]{0,57}$/.test(schema)) {
    throw new BehalfError(
      'CONFIG_INVALID',
      `${SETTING}: Postgres at ${settings.target}: behalf's schema name must be lower-case letters, digits and underscores (at most 58).`,
      { reason: 'schema_name' },
    );
  }
  return schema;
}

/** The schema version recorded in `schema_migrations`; 0 when behalf has never migrated here. */
async function readSchemaVersion(pool: pg.Pool, settings: PostgresSettings): Promise<number> {
  try {
    const { rows } = await pool.query<{ present: boolean }>(
      "SELECT to_regclass('schema_migrations') IS NOT NULL AS present",
    );
    return rows[0]?.present === true ? await currentVersion(pool, settings) : 0;
  } catch (error) {
    throw openError(settings, error);
  }
}

async function currentVersion(db: pg.Pool | pg.PoolClient, settings: PostgresSettings): Promise<number> {
  try {
    const { rows } = await db.query<{ version: number }>(
      'SELECT COALESCE(MAX(version), 0)::integer AS version FROM schema_migrations WHERE name IS NOT NULL',
    );
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
  const state =
    version === 0
      ? 'has no behalf schema yet (version 0)'
      : `is at schema version ${version}, older than this behalf needs`;
  return new BehalfError(
    'CONFIG_INVALID',
    `${SETTING}: the database at ${settings.target} ${state}; this behalf needs version ${POSTGRES_SCHEMA_VERSION}: ${MIGRATE_HINT}, then start again.`,
    { reason: version === 0 ? 'schema_missing' : 'schema_too_old' },
  );
}
