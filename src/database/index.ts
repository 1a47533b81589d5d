/**
 * behalf's database: one object per backend owns the connection or pool, the one ordered
 * migration list covering every table behalf uses, the error mapping and transactions. The vault,
 * the security event log and job runs are repositories over it.
 */
import type { Clock } from '../clock.js';
import { parseDatabaseUrl } from '../vault/database-url.js';
import {
  migratePostgres,
  openPostgresDatabase,
  type MigrationReport,
  type PostgresDatabase,
} from './postgres.js';
import type { PostgresPoolOptions } from './postgres-settings.js';
import { SqliteDatabase } from './sqlite.js';

export { STALENESS_BOUND_MS, type GrantChangeListener, type GrantChanges } from './grant-changes.js';
export {
  migratePostgres,
  openPostgresDatabase,
  PostgresDatabase,
  POSTGRES_SCHEMA_VERSION,
  type MigrationReport,
  type NamedStatement,
  type Queryable,
} from './postgres.js';
export { sqlState } from './postgres-errors.js';
export { parsePostgresSettings, redactPostgresUrl, type PostgresPoolOptions } from './postgres-settings.js';
export { SqliteDatabase, SQLITE_SCHEMA_VERSION, type SqliteDatabaseOptions } from './sqlite.js';

export type Database = SqliteDatabase | PostgresDatabase;

export interface OpenDatabaseOptions {
  /** Time for the writes whose caller gives none (SQLite migrations' records). */
  clock?: Clock;
  /** A relative sqlite path is resolved against this. Default: the process's working directory. */
  cwd?: string;
  /** Postgres pool and timeouts; parameters in the URL's query string win (see {@link PostgresPoolOptions}). */
  postgres?: PostgresPoolOptions;
}

/**
 * Open the database BEHALF_DATABASE_URL names (see {@link parseDatabaseUrl}).
 *
 * - SQLite, the embedded default: the file is created and migrated on open.
 * - Postgres: nothing is migrated on open. The schema must be the version this build knows, or
 *   this fails with CONFIG_INVALID saying to run `behalf migrate` ({@link migrateDatabase}); an
 *   unreachable server fails with STORE_UNAVAILABLE. Messages never contain the password.
 */
export async function openDatabase(url: string, options: OpenDatabaseOptions = {}): Promise<Database> {
  const location = parseDatabaseUrl(url, options.cwd);
  if (location.kind === 'postgres') return openPostgresDatabase(location.url, options.postgres);
  return new SqliteDatabase(location.path, options.clock === undefined ? {} : { clock: options.clock });
}

/**
 * Bring the database's schema up to the version this build knows (`behalf migrate`): every table
 * behalf uses, job queue included. Safe to run again, and from several machines at once. A schema
 * newer than this build knows is refused with CONFIG_INVALID.
 */
export async function migrateDatabase(
  url: string,
  options: OpenDatabaseOptions = {},
): Promise<MigrationReport> {
  const location = parseDatabaseUrl(url, options.cwd);
  if (location.kind === 'postgres') return migratePostgres(location.url, options.postgres);
  const database = new SqliteDatabase(
    location.path,
    options.clock === undefined ? {} : { clock: options.clock },
  );
  try {
    const { from, applied } = database.migrations;
    return { kind: 'sqlite', target: database.path, from, to: applied.at(-1)?.version ?? from, applied };
  } finally {
    await database.close();
  }
}
