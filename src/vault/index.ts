/**
 * The vault: users, grants with their tokens encrypted at rest, and service API keys.
 *
 * - `Store` (./types.ts): the storage contract, ciphertext only; SQLite now, Postgres later.
 * - `Vault`: the layer everything else uses, plaintext in and out.
 * - `Keyring` and the envelope: AES-256-GCM, key ids for rotation, row-bound associated data.
 */
import type { Clock } from '../clock.js';
import { BehalfError } from '../errors.js';
import { parseDatabaseUrl } from './database-url.js';
import { openSqliteStore } from './sqlite-store.js';
import type { Store } from './types.js';

export { apiKeyId, authenticateApiKey, createApiKey, verifyApiKey, type CreatedApiKey } from './api-keys.js';
export { parseDatabaseUrl, type DatabaseLocation } from './database-url.js';
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

/**
 * Open the store BEHALF_DATABASE_URL names (see {@link parseDatabaseUrl}). A relative sqlite
 * path is resolved against `cwd`. Postgres is recognised but not built yet: CONFIG_INVALID.
 */
export async function openStore(url: string, options: { clock?: Clock; cwd?: string } = {}): Promise<Store> {
  const location = parseDatabaseUrl(url, options.cwd);
  if (location.kind === 'postgres') {
    throw new BehalfError(
      'CONFIG_INVALID',
      'BEHALF_DATABASE_URL: the Postgres backend is not built yet; use sqlite:PATH for now (the default is sqlite:.behalf/behalf.db).',
    );
  }
  return openSqliteStore(location.path, options.clock === undefined ? {} : { clock: options.clock });
}
