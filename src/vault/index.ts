/**
 * The vault: users, grants with their tokens encrypted at rest, and service API keys.
 *
 * - `Store` (./types.ts): the storage contract, ciphertext only; SQLite (embedded) and Postgres.
 * - `Vault`: the layer everything else uses, plaintext in and out.
 * - `Keyring` and the envelope: AES-256-GCM, key ids for rotation, row-bound associated data.
 */
import type { Clock } from '../clock.js';
import { parseDatabaseUrl } from './database-url.js';
import { migratePostgres, openPostgresStore, type MigrationReport, type PostgresPoolOptions } from './postgres-store.js';
import { openSqliteStore } from './sqlite-store.js';
import type { Store } from './types.js';

export { apiKeyId, authenticateApiKey, createApiKey, verifyApiKey, type CreatedApiKey } from './api-keys.js';
export { parseDatabaseUrl, redactDatabaseUrl, type DatabaseLocation } from './database-url.js';
export { decryptToken, encryptToken, envelopeKeyId, ENVELOPE_VERSION, type RowBinding, type TokenColumn } from './envelope.js';
export {
  formatKeyring,
  generateKeyring,
  Keyring,
  loadKeyring,
  loadOrCreateLocalKeyFile,
  newKeyEntry,
  parseKeyring,
} from './keyring.js';
export {
  migratePostgres,
  openPostgresStore,
  parsePostgresSettings,
  PostgresStore,
  POSTGRES_SCHEMA_VERSION,
  redactPostgresUrl,
  type MigrationReport,
  type PostgresPoolOptions,
  type PostgresSettings,
  type PostgresStoreOptions,
} from './postgres-store.js';
export { openSqliteStore, SqliteStore, SQLITE_SCHEMA_VERSION, type SqliteStoreOptions } from './sqlite-store.js';
export type * from './types.js';
export {
  Vault,
  type AccessTokenSave,
  type Grant,
  type RotateOptions,
  type RotationReport,
  type SignInSave,
} from './vault.js';

export interface OpenStoreOptions {
  /** Time for the writes whose caller gives none (key rotation, SQLite migrations). */
  clock?: Clock;
  /** A relative sqlite path is resolved against this. Default: the process's working directory. */
  cwd?: string;
  /** Postgres pool and timeouts; parameters in the URL's query string win (see {@link PostgresPoolOptions}). */
  postgres?: PostgresPoolOptions;
}

/**
 * Open the store BEHALF_DATABASE_URL names (see {@link parseDatabaseUrl}).
 *
 * - SQLite, the embedded default: the file is created and migrated on open.
 * - Postgres: nothing is migrated on open. The schema must be the version this build knows, or
 *   this fails with CONFIG_INVALID saying to run `behalf migrate` ({@link migrateStore}); an
 *   unreachable server fails with STORE_UNAVAILABLE. Messages never contain the password.
 */
export async function openStore(url: string, options: OpenStoreOptions = {}): Promise<Store> {
  const location = parseDatabaseUrl(url, options.cwd);
  const clock = options.clock === undefined ? {} : { clock: options.clock };
  if (location.kind === 'postgres') return openPostgresStore(location.url, { ...options.postgres, ...clock });
  return openSqliteStore(location.path, clock);
}

/**
 * Bring the database's schema up to the version this build knows (`behalf migrate`) and say what
 * was applied. Safe to run again, and from several machines at once. A schema newer than this
 * build knows is refused with CONFIG_INVALID.
 */
export async function migrateStore(url: string, options: OpenStoreOptions = {}): Promise<MigrationReport> {
  const location = parseDatabaseUrl(url, options.cwd);
  if (location.kind === 'postgres') return migratePostgres(location.url, options.postgres);
  const store = await openSqliteStore(location.path, options.clock === undefined ? {} : { clock: options.clock });
  try {
    const { from, applied } = store.migrations;
    return { kind: 'sqlite', target: store.path, from, to: applied.at(-1)?.version ?? from, applied };
  } finally {
    await store.close();
  }
}
