import { createSecretKey, randomBytes, type KeyObject } from 'node:crypto';
import { link, mkdir, open, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { inspect } from 'node:util';
import type { StorageConfig } from '../config/index.js';
import { BehalfError } from '../errors.js';

const SETTING = 'BEHALF_ENCRYPTION_KEYS';
const KEY_FILE_SETTING = 'BEHALF_KEY_FILE';
const KEY_ID = /^[A-Za-z0-9_-]{1,32}$/;
const KEY_BYTES = 32;

/**
 * AES-256 keys by id: the primary (first) one encrypts, every one decrypts, so keys can be
 * rotated (`behalf keys rotate`) without a moment where stored tokens are unreadable.
 *
 * The key material lives in KeyObjects behind private fields: it does not show up in
 * `console.log`, `util.inspect` or `JSON.stringify` of a keyring.
 */
export class Keyring {
  readonly #keys: ReadonlyMap<string, KeyObject>;
  /** Id of the key new ciphertexts are written with. */
  readonly primaryId: string;
  /** Every configured key id, primary first. */
  readonly ids: readonly string[];

  /** Prefer {@link parseKeyring} or {@link generateKeyring}; this trusts that entries were validated. */
  constructor(entries: ReadonlyArray<{ id: string; key: KeyObject }>) {
    const keys = new Map<string, KeyObject>();
    for (const { id, key } of entries) {
      if (!KEY_ID.test(id) || keys.has(id) || key.type !== 'secret' || key.symmetricKeySize !== KEY_BYTES) {
        throw new BehalfError('CONFIG_INVALID', `${SETTING}: invalid key entry.`);
      }
      keys.set(id, key);
    }
    const primaryId = entries[0]?.id;
    if (primaryId === undefined) throw new BehalfError('CONFIG_INVALID', `${SETTING}: no keys given.`);
    this.#keys = keys;
    this.primaryId = primaryId;
    this.ids = Object.freeze([...keys.keys()]);
  }

  has(id: string): boolean {
    return this.#keys.has(id);
  }

  /** The key for an id, for the envelope code; undefined when the id is not configured. */
  keyFor(id: string): KeyObject | undefined {
    return this.#keys.get(id);
  }

  /** Ids only: serialising a keyring never writes key material. */
  toJSON(): { primaryId: string; ids: readonly string[] } {
    return { primaryId: this.primaryId, ids: this.ids };
  }

  [inspect.custom](): string {
    return `Keyring { primary: '${this.primaryId}', ids: [${this.ids.map((id) => `'${id}'`).join(', ')}] }`;
  }
}

/**
 * Parse `ID:BASE64,ID:BASE64,…` (the first is primary). Ids are 1-32 characters of
 * `[A-Za-z0-9_-]` and unique; keys are 32 bytes in standard or URL-safe base64. Any problem is a
 * BehalfError('CONFIG_INVALID') whose message names the setting and the problem, never key material.
 */
export function parseKeyring(value: string, setting = SETTING): Keyring {
  const entries = value
    .split(',')
    .map((entry) => entry.trim())
    .filter((entry) => entry.length > 0);
  const fail = (problem: string): never => {
    throw new BehalfError('CONFIG_INVALID', `${setting}: ${problem}`);
  };
  if (entries.length === 0) {
    fail(
      'no keys given; expected comma-separated ID:BASE64 entries of 32-byte keys, the first one primary (`behalf keys generate` prints one).',
    );
  }
  const parsed: Array<{ id: string; key: KeyObject }> = [];
  for (const [index, entry] of entries.entries()) {
    const colon = entry.indexOf(':');
    // The entry itself is never echoed: it may be (part of) a key.
    if (colon === -1) fail(`entry ${index + 1} is not ID:BASE64 (no ':' found).`);
    const id = entry.slice(0, colon).trim();
    const encoded = entry.slice(colon + 1).trim();
    if (!KEY_ID.test(id)) fail(`entry ${index + 1}: a key id is 1-32 characters of [A-Za-z0-9_-].`);
    if (parsed.some((p) => p.id === id)) fail(`key id '${id}' appears more than once; ids must be unique.`);
    if (encoded.length === 0) fail(`key '${id}' is empty.`);
    const raw = decodeBase64(encoded) ?? fail(`key '${id}' is not valid base64.`);
    try {
      if (raw.length !== KEY_BYTES) {
        const hint = /^[0-9a-f]{64}$/i.test(encoded)
          ? ' (it looks like hex; give base64, e.g. from `openssl rand -base64 32`)'
          : '';
        fail(`key '${id}' is ${raw.length} bytes; AES-256 needs ${KEY_BYTES}${hint}.`);
      }
      if (raw.every((byte) => byte === 0)) fail(`key '${id}' is all zero bytes; use a random key.`);
      parsed.push({ id, key: createSecretKey(raw) });
    } finally {
      raw.fill(0);
    }
  }
  return new Keyring(parsed);
}

/** A keyring with one fresh random key. */
export function generateKeyring(id = 'local1'): Keyring {
  checkKeyId(id);
  const raw = randomBytes(KEY_BYTES);
  try {
    return new Keyring([{ id, key: createSecretKey(raw) }]);
  } finally {
    raw.fill(0);
  }
}

/** The keyring in BEHALF_ENCRYPTION_KEYS format (`ID:BASE64,…`, primary first). Contains key material. */
export function formatKeyring(keyring: Keyring): string {
  return keyring.ids.map((id) => `${id}:${keyring.keyFor(id)!.export().toString('base64')}`).join(',');
}

/**
 * A fresh key entry `ID:BASE64` for `behalf keys generate`: put it first in BEHALF_ENCRYPTION_KEYS,
 * keep the old entries after it, run `behalf keys rotate`, then drop the old ones.
 * The default id is `k` + the UTC date + a short random suffix, so two rotations a day differ.
 */
export function newKeyEntry(id?: string, now: number = Date.now()): string {
  const keyId =
    id ??
    `k${new Date(now).toISOString().slice(0, 10).replaceAll('-', '')}-${randomBytes(2).toString('hex')}`;
  checkKeyId(keyId);
  return `${keyId}:${randomBytes(KEY_BYTES).toString('base64')}`;
}

function checkKeyId(id: string): void {
  if (!KEY_ID.test(id))
    throw new BehalfError('INVALID_REQUEST', 'A key id is 1-32 characters of [A-Za-z0-9_-].');
}

/**
 * Local mode's key file: read it, or create it on first use with owner-only permissions (file
 * 0600, a created folder 0700). `created` tells the caller to say that a key was generated. A key
 * file that group or others can access is refused. Production never uses this: it must be given
 * BEHALF_ENCRYPTION_KEYS.
 *
 * The file holds BEHALF_ENCRYPTION_KEYS entries, one or more per line; lines starting with `#` are comments.
 */
export async function loadOrCreateLocalKeyFile(
  path: string,
  now: number = Date.now(),
): Promise<{ keyring: Keyring; created: boolean }> {
  const existing = await readKeyFile(path);
  if (existing !== undefined) return { keyring: existing, created: false };

  try {
    await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  } catch (error) {
    throw fileError(path, 'cannot create its folder', error);
  }
  const keyring = generateKeyring();
  const text =
    '# behalf local-mode encryption keys (BEHALF_ENCRYPTION_KEYS format: ID:BASE64, first is primary).\n' +
    `# Generated ${new Date(now).toISOString()}. Keep this file private. Production takes its keys from BEHALF_ENCRYPTION_KEYS.\n` +
    `${formatKeyring(keyring)}\n`;

  // Write a private temporary file, then link it into place: the key file appears complete or
  // not at all, and a second process starting at the same moment reads the first one's key
  // instead of overwriting it.
  const temporary = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    const handle = await open(temporary, 'wx', 0o600);
    try {
      await handle.writeFile(text, 'utf8');
      await handle.chmod(0o600);
      await handle.sync();
    } finally {
      await handle.close();
    }
    try {
      await link(temporary, path);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EXDEV') throw error;
      // A filesystem without hard links: exclusive create still refuses to overwrite a key.
      const handle = await open(path, 'wx', 0o600);
      try {
        await handle.writeFile(text, 'utf8');
        await handle.sync();
      } finally {
        await handle.close();
      }
    }
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') {
      const raced = await readKeyFile(path);
      if (raced !== undefined) return { keyring: raced, created: false };
    }
    throw fileError(path, 'cannot be created', error);
  } finally {
    await unlink(temporary).catch(() => undefined);
  }
  return { keyring, created: true };
}

async function readKeyFile(path: string): Promise<Keyring | undefined> {
  let handle;
  try {
    handle = await open(path, 'r');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw fileError(path, 'cannot be read', error);
  }
  try {
    // Checked on the open file, so what is checked is what is read.
    const info = await handle.stat();
    if (!info.isFile())
      throw new BehalfError('CONFIG_INVALID', `${KEY_FILE_SETTING}: ${path} is not a regular file.`);
    if (process.platform !== 'win32' && (info.mode & 0o077) !== 0) {
      const mode = (info.mode & 0o777).toString(8).padStart(4, '0');
      throw new BehalfError(
        'CONFIG_INVALID',
        `${KEY_FILE_SETTING}: ${path} has mode ${mode}: group or others can access the encryption keys. Run \`chmod 600 ${path}\` (and consider the keys exposed).`,
      );
    }
    const text = await handle.readFile('utf8');
    const entries = text
      .split(/\r?\n/)
      .map((line) => line.trim())
      .filter((line) => line.length > 0 && !line.startsWith('#'))
      .join(',');
    return parseKeyring(entries, `${KEY_FILE_SETTING} (${path})`);
  } catch (error) {
    if (error instanceof BehalfError) throw error;
    throw fileError(path, 'cannot be read', error);
  } finally {
    await handle.close();
  }
}

function fileError(path: string, problem: string, cause: unknown): BehalfError {
  const code = (cause as NodeJS.ErrnoException).code ?? 'error';
  return new BehalfError('CONFIG_INVALID', `${KEY_FILE_SETTING}: ${path} ${problem} (${code}).`, { cause });
}

/**
 * Strict base64 (standard or URL-safe, padding optional): anything that does not round-trip is
 * refused, rather than silently decoded into different bytes the way Buffer.from does.
 */
function decodeBase64(text: string): Buffer | undefined {
  const padded = /={1,2}$/.test(text);
  const body = text.replace(/={1,2}$/, '');
  let encoding: 'base64' | 'base64url';
  if (/^[A-Za-z0-9+/]+$/.test(body)) encoding = 'base64';
  else if (/^[A-Za-z0-9_-]+$/.test(body)) encoding = 'base64url';
  else return undefined;
  if (body.length % 4 === 1 || (padded && text.length % 4 !== 0)) return undefined;
  const bytes = Buffer.from(body, encoding);
  if (bytes.toString(encoding).replace(/=+$/, '') !== body) {
    bytes.fill(0);
    return undefined;
  }
  return bytes;
}

/**
 * The keyring for a configuration: BEHALF_ENCRYPTION_KEYS when given; in local mode without it,
 * the generated key file (`createdKeyFile` says whether it was created now); in production
 * without it, a CONFIG_INVALID error.
 */
export async function loadKeyring(
  config: Pick<StorageConfig, 'mode' | 'encryptionKeys' | 'keyFile'>,
): Promise<{ keyring: Keyring; createdKeyFile: boolean }> {
  if (config.encryptionKeys !== undefined)
    return { keyring: parseKeyring(config.encryptionKeys), createdKeyFile: false };
  if (config.mode !== 'local') {
    throw new BehalfError(
      'CONFIG_INVALID',
      `${SETTING}: is required in production: comma-separated ID:BASE64 entries of 32-byte keys, the first one primary (\`behalf keys generate\` prints one).`,
    );
  }
  const { keyring, created } = await loadOrCreateLocalKeyFile(config.keyFile);
  return { keyring, createdKeyFile: created };
}
