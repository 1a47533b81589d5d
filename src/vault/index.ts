/**
 * The vault: users, grants with their tokens encrypted at rest, and service API keys.
 *
 * - `Store` (./types.ts): the storage contract, ciphertext only; SQLite (embedded) and Postgres.
 * - `Vault`: the layer everything else uses, plaintext in and out.
 * - `Keyring` and the envelope: AES-256-GCM, key ids for rotation, row-bound associated data.
 * - `verifyKeyring`: at start-up, each key id's check value in the database (./key-check.ts).
 */
import {
  migrateDatabase,
  openDatabase,
  openPostgresDatabase,
  SqliteDatabase,
  type MigrationReport,
  type OpenDatabaseOptions,
  type PostgresPoolOptions,
  type SqliteDatabaseOptions,
} from '../database/index.js';
import { PostgresStore } from './postgres-store.js';
import { SqliteStore } from './sqlite-store.js';
import type { Store } from './types.js';

export {
  apiKeyId,
  authenticateApiKey,
  createApiKey,
  listApiKeys,
  onApiKeyRevoked,
  revokeApiKey,
  verifyApiKey,
  type CreatedApiKey,
} from './api-keys.js';
export { parseDatabaseUrl, redactDatabaseUrl } from './database-url.js';
export { countGrantsByStatus } from './grant-counts.js';
export { userStates, type UserState } from './user-search.js';
export { decryptToken, encryptToken, envelopeKeyId, ENVELOPE_VERSION, type RowBinding } from './envelope.js';
export { createKeyCheckValue, verifyKeyCheckValue, verifyKeyring } from './key-check.js';
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
  parsePostgresSettings,
  POSTGRES_SCHEMA_VERSION,
  redactPostgresUrl,
  SQLITE_SCHEMA_VERSION,
  type MigrationReport,
  type PostgresPoolOptions,
} from '../database/index.js';
export { erasePostgresUser, PostgresStore, revokePostgresGrant } from './postgres-store.js';
export { eraseSqliteUser, revokeSqliteGrant, SqliteStore } from './sqlite-store.js';
export type * from './types.js';
export { Vault, type AccessGrant, type Grant, type SignInSave } from './vault.js';

export type OpenStoreOptions = OpenDatabaseOptions;

/**
 * Open the vault's store on a database of its own (closed with the store), at the place
 * BEHALF_DATABASE_URL names: SQLite is created and migrated on open; Postgres must have been
 * migrated (see ../database/index.ts). A server opens the database once instead and builds every
 * repository over it (see ../app.ts).
 */
export async function openStore(url: string, options: OpenStoreOptions = {}): Promise<Store> {
  const database = await openDatabase(url, options);
  const clock = options.clock === undefined ? {} : { clock: options.clock };
  return database.kind === 'postgres'
    ? new PostgresStore(database, { ...clock, ownsDatabase: true })
    : new SqliteStore(database, { ...clock, ownsDatabase: true });
}

/** The SQLite store on a database file of its own (see {@link openStore}). */
export async function openSqliteStore(
  path: string,
  options: SqliteDatabaseOptions = {},
): Promise<SqliteStore> {
  return new SqliteStore(new SqliteDatabase(path, options), {
    ...(options.clock === undefined ? {} : { clock: options.clock }),
    ownsDatabase: true,
  });
}

/** The Postgres store on a pool of its own (see {@link openStore}). */
export async function openPostgresStore(
  url: string,
  options: PostgresPoolOptions & { clock?: OpenStoreOptions['clock'] } = {},
): Promise<PostgresStore> {
  const { clock, ...pool } = options;
  return new PostgresStore(await openPostgresDatabase(url, pool), {
    ...(clock === undefined ? {} : { clock }),
    ownsDatabase: true,
  });
}

/** `behalf migrate`: see {@link migrateDatabase}. */
export function migrateStore(url: string, options: OpenStoreOptions = {}): Promise<MigrationReport> {
  return migrateDatabase(url, options);
}
