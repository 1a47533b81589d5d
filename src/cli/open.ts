import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { systemClock } from '../clock.js';
import {
  loadDatabaseUrl,
  loadStorageConfig,
  readClientSecretFile,
  type ConfigInput,
} from '../config/index.js';
import { openDatabase, type Database } from '../database/index.js';
import { BehalfError } from '../errors.js';
import {
  loadKeyring,
  PostgresStore,
  SqliteStore,
  Vault,
  verifyKeyring,
  type Keyring,
  type Store,
} from '../vault/index.js';
import { LOCAL_CLIENT_SECRET_FILE } from './local-mode.js';
import { settingsFromOptions } from './settings-flags.js';

/**
 * What the commands open, each only what it uses: the database alone (API keys, migrate), the
 * database and the encryption keys (key rotation, webhooks), or everything with Google (sweep,
 * serve). `--local` means local mode's data: the same database, its generated key file, and the
 * emulator of a running `npm start`.
 */

/** Environment and flags, in local mode with `--local`. */
export function configInput(
  options: Record<string, unknown>,
  env: Record<string, string | undefined> = process.env,
): ConfigInput {
  return { mode: options.local === true ? 'local' : 'production', env, flags: settingsFromOptions(options) };
}

/** The store alone, for the time of `body`: no encryption keys, no Google. */
export async function withStore<T>(
  options: Record<string, unknown>,
  body: (store: Store) => Promise<T>,
): Promise<T> {
  const database = await openDatabase(loadDatabaseUrl(configInput(options)));
  try {
    return await body(storeOn(database));
  } finally {
    await database.close();
  }
}

export interface OpenVault {
  database: Database;
  store: Store;
  keyring: Keyring;
  vault: Vault;
}

/** The database and the encryption keys, checked as `serve` checks them, for the time of `body`. */
export async function withVault<T>(
  options: Record<string, unknown>,
  body: (opened: OpenVault) => Promise<T>,
): Promise<T> {
  const storage = loadStorageConfig(configInput(options));
  const { keyring } = await loadKeyring(storage);
  const database = await openDatabase(storage.databaseUrl);
  try {
    const store = storeOn(database);
    // A key id whose bytes differ from the ones that wrote this database stops here, as in `serve`.
    await verifyKeyring(store, keyring, systemClock.now());
    return await body({ database, store, keyring, vault: new Vault(store, keyring) });
  } finally {
    await database.close();
  }
}

/**
 * The environment for a command that talks to Google in local mode (`sweep --local`): local mode's
 * client, and the emulator that wrote it, which the running `npm start` serves (its token_uri
 * says where). Anything set explicitly wins, as in `serve --local`.
 */
export async function localGoogleEnv(
  env: Record<string, string | undefined>,
): Promise<Record<string, string | undefined>> {
  const file = resolve(LOCAL_CLIENT_SECRET_FILE);
  if ((await readFile(file).catch(() => undefined)) === undefined) {
    throw new BehalfError(
      'CONFIG_INVALID',
      `--local: local mode has not run in this folder (no ${LOCAL_CLIENT_SECRET_FILE}); start it with \`npm start\` (behalf serve --local).`,
    );
  }
  const { tokenUri } = await readClientSecretFile(file);
  const origin = originOf(tokenUri);
  if (origin === undefined)
    throw new BehalfError(
      'CONFIG_INVALID',
      `--local: ${LOCAL_CLIENT_SECRET_FILE} does not name its emulator (no token_uri).`,
    );
  const local = { ...env };
  local.BEHALF_CLIENT_SECRET_FILE ??= LOCAL_CLIENT_SECRET_FILE;
  local.BEHALF_GOOGLE_DISCOVERY_URL ??= `${origin}/.well-known/openid-configuration`;
  local.BEHALF_GOOGLE_API_URL ??= origin;
  return local;
}

function originOf(url: string | undefined): string | undefined {
  try {
    return url === undefined ? undefined : new URL(url).origin;
  } catch {
    return undefined;
  }
}

function storeOn(database: Database): Store {
  return database.kind === 'postgres'
    ? new PostgresStore(database, { clock: systemClock })
    : new SqliteStore(database, { clock: systemClock });
}
