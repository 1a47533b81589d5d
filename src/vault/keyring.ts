import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { BehalfError } from '../errors.js';

/** AES-256 keys by id; the primary one encrypts, every one decrypts (so keys can be rotated). */
export interface Keyring {
  readonly primaryId: string;
  get(id: string): Buffer | undefined;
  readonly ids: readonly string[];
}

const SETTING = 'BEHALF_ENCRYPTION_KEYS';
const KEY_ID = /^[A-Za-z0-9_-]{1,32}$/;

/** Parse `ID:BASE64,ID:BASE64` (first is primary). Messages name the problem, never key material. */
export function parseKeyring(value: string, setting = SETTING): Keyring {
  const entries = value
    .split(',')
    .map((e) => e.trim())
    .filter((e) => e.length > 0);
  if (entries.length === 0) throw new BehalfError('CONFIG_INVALID', `${setting}: no keys given; expected ID:BASE64 entries.`);
  const keys = new Map<string, Buffer>();
  for (const [index, entry] of entries.entries()) {
    const colon = entry.indexOf(':');
    const id = colon === -1 ? '' : entry.slice(0, colon);
    const encoded = colon === -1 ? '' : entry.slice(colon + 1);
    if (!KEY_ID.test(id)) {
      throw new BehalfError('CONFIG_INVALID', `${setting}: entry ${index + 1} is not ID:BASE64 with an id of 1-32 characters [A-Za-z0-9_-].`);
    }
    if (keys.has(id)) throw new BehalfError('CONFIG_INVALID', `${setting}: key id '${id}' appears twice.`);
    if (!/^[A-Za-z0-9+/_-]+={0,2}$/.test(encoded)) {
      throw new BehalfError('CONFIG_INVALID', `${setting}: key '${id}' is not valid base64.`);
    }
    const key = Buffer.from(encoded, encoded.includes('-') || encoded.includes('_') ? 'base64url' : 'base64');
    if (key.length !== 32) {
      throw new BehalfError('CONFIG_INVALID', `${setting}: key '${id}' is ${key.length} bytes; AES-256 needs 32.`);
    }
    keys.set(id, key);
  }
  const ids = [...keys.keys()];
  return { primaryId: ids[0]!, ids, get: (id) => keys.get(id) };
}

/** A fresh key entry `ID:BASE64` (for `behalf keys generate` and local mode). */
export function newKeyEntry(id = `k${new Date().toISOString().slice(0, 10).replaceAll('-', '')}`): string {
  if (!KEY_ID.test(id)) throw new BehalfError('INVALID_REQUEST', 'A key id is 1-32 characters [A-Za-z0-9_-].');
  return `${id}:${randomBytes(32).toString('base64')}`;
}

/**
 * Local mode's key file: created on first use with owner-only permissions (file 0600, folder
 * 0700); refused if others can read it. Production never uses this: it must be given keys.
 */
export async function loadOrCreateLocalKeyFile(path: string): Promise<{ keyring: Keyring; created: boolean }> {
  let text: string | undefined;
  try {
    const info = await stat(path);
    if ((info.mode & 0o077) !== 0) {
      throw new BehalfError('CONFIG_INVALID', `BEHALF_KEY_FILE: ${path} can be read by other users; run chmod 600 on it.`);
    }
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') {
      if (error instanceof BehalfError) throw error;
      throw new BehalfError('CONFIG_INVALID', `BEHALF_KEY_FILE: cannot read ${path} (${(error as NodeJS.ErrnoException).code ?? 'error'}).`);
    }
  }
  if (text !== undefined) return { keyring: parseKeyring(text.trim(), `BEHALF_KEY_FILE (${path})`), created: false };
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const entry = newKeyEntry('local1');
  await writeFile(path, `${entry}\n`, { mode: 0o600, flag: 'wx' });
  await chmod(path, 0o600);
  return { keyring: parseKeyring(entry), created: true };
}
