import type { StorageConfig } from '../config/config.js';
import { BehalfError } from '../errors.js';
import { parseDatabaseUrl } from './database-url.js';
import { loadOrCreateLocalKeyFile, parseKeyring, type Keyring } from './keyring.js';
import { SqliteStore } from './sqlite-store.js';
import type { Store } from './types.js';

export { createApiKey, verifyApiKey } from './api-keys.js';
export { parseDatabaseUrl, type DatabaseLocation } from './database-url.js';
export { decryptToken, encryptToken, envelopeKeyId, type RowBinding, type TokenColumn } from './envelope.js';
export { loadOrCreateLocalKeyFile, newKeyEntry, parseKeyring, type Keyring } from './keyring.js';
export { SqliteStore, SQLITE_SCHEMA_VERSION } from './sqlite-store.js';
export type * from './types.js';
export { Vault, type Grant, type RotationReport } from './vault.js';

/** Open the store a database URL names. */
export async function openStore(url: string): Promise<Store> {
  const location = parseDatabaseUrl(url);
  if (location.kind === 'postgres') {
    throw new BehalfError('CONFIG_INVALID', 'BEHALF_DATABASE_URL: the Postgres backend is not available yet; use sqlite:PATH.');
  }
  return new SqliteStore(location.path);
}

/** The keyring from BEHALF_ENCRYPTION_KEYS, or in local mode the generated key file. */
export async function loadKeyring(config: StorageConfig): Promise<{ keyring: Keyring; createdKeyFile: boolean }> {
  if (config.encryptionKeys !== undefined) return { keyring: parseKeyring(config.encryptionKeys), createdKeyFile: false };
  if (config.mode !== 'local') {
    throw new BehalfError('CONFIG_INVALID', 'BEHALF_ENCRYPTION_KEYS: is required in production.');
  }
  const { keyring, created } = await loadOrCreateLocalKeyFile(config.keyFile);
  return { keyring, createdKeyFile: created };
}
