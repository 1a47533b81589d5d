import { randomBytes } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BehalfError } from '../../src/errors.js';
import {
  formatKeyring,
  generateKeyring,
  loadKeyring,
  loadOrCreateLocalKeyFile,
  newKeyEntry,
  parseKeyring,
} from '../../src/vault/index.js';

const key = () => randomBytes(32).toString('base64');

function configError(run: () => unknown, ...secrets: string[]): BehalfError {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(BehalfError);
    const e = error as BehalfError;
    expect(e.code).toBe('CONFIG_INVALID');
    for (const secret of secrets) expect(e.message).not.toContain(secret);
    return e;
  }
  throw new Error('expected a configuration error');
}

describe('parseKeyring (BEHALF_ENCRYPTION_KEYS)', () => {
  it('reads comma-separated ID:BASE64 entries, the first one primary', () => {
    const keyring = parseKeyring(` k2:${key()} , k1:${key()},`);
    expect(keyring.primaryId).toBe('k2');
    expect(keyring.ids).toEqual(['k2', 'k1']);
    expect(keyring.has('k1')).toBe(true);
    expect(keyring.has('k3')).toBe(false);
  });

  it('accepts standard and URL-safe base64, padded or not', () => {
    const raw = Buffer.from('fb'.repeat(16) + 'ff'.repeat(16), 'hex');
    for (const encoded of [raw.toString('base64'), raw.toString('base64url'), raw.toString('base64').replace(/=+$/, '')]) {
      expect(formatKeyring(parseKeyring(`k:${encoded}`))).toBe(`k:${raw.toString('base64')}`);
    }
  });

  it('names the key and its length when a key is not 32 bytes', () => {
    const short = randomBytes(16).toString('base64');
    expect(configError(() => parseKeyring(`k1:${key()},k2:${short}`), short).message).toBe(
      "BEHALF_ENCRYPTION_KEYS: key 'k2' is 16 bytes; AES-256 needs 32.",
    );
    const hex = randomBytes(32).toString('hex');
    expect(configError(() => parseKeyring(`k1:${hex}`), hex).message).toMatch(/key 'k1' is 48 bytes; AES-256 needs 32 \(it looks like hex/);
  });

  it('refuses a duplicate id', () => {
    expect(configError(() => parseKeyring(`k1:${key()},k1:${key()}`)).message).toBe(
      "BEHALF_ENCRYPTION_KEYS: key id 'k1' appears more than once; ids must be unique.",
    );
  });

  it.each([
    ['characters outside base64', 'k1:not*base64*at*all*!!!!!!!!!!!!!!!!!!!!!!!!!!!!'],
    ['mixed alphabets', `k1:${'+'.repeat(20)}${'_'.repeat(23)}`],
    ['a dangling character', `k1:${key().replace(/=+$/, '')}AB`],
    ['bad padding', `k1:${key().replace(/=+$/, '')}===`],
  ])('refuses bad base64 (%s) without echoing it', (_what, value) => {
    const encoded = value.slice(3);
    expect(configError(() => parseKeyring(value), encoded).message).toMatch(/^BEHALF_ENCRYPTION_KEYS: key 'k1' is not valid base64\.$|is \d+ bytes/);
  });

  it.each([
    ['empty', '', /no keys given/],
    ['only commas and spaces', ' , ,', /no keys given/],
    ['an entry without an id', `${key()}`, /entry 1 is not ID:BASE64/],
    ['an empty id', `:${key()}`, /entry 1: a key id is 1-32 characters/],
    ['an id too long', `${'k'.repeat(33)}:${key()}`, /entry 1: a key id is 1-32 characters/],
    ['an id with bad characters', `k.1:${key()}`, /entry 1: a key id is 1-32 characters/],
    ['an empty key', 'k1:', /key 'k1' is empty/],
    ['an all-zero key', `k1:${Buffer.alloc(32).toString('base64')}`, /all zero bytes/],
  ])('refuses %s with a message naming the setting and the problem', (_what, value, problem) => {
    const secret = value.includes(':') ? value.slice(value.indexOf(':') + 1) : value;
    const error = configError(() => parseKeyring(value), ...(secret.length > 8 ? [secret] : []));
    expect(error.message).toMatch(/^BEHALF_ENCRYPTION_KEYS: /);
    expect(error.message).toMatch(problem);
  });

  it('names another setting when told to', () => {
    expect(configError(() => parseKeyring('', 'BEHALF_KEY_FILE (/x)')).message).toMatch(/^BEHALF_KEY_FILE \(\/x\): /);
  });

  it('never shows key material when logged or serialised', () => {
    const material = key();
    const keyring = parseKeyring(`k1:${material}`);
    const raw = Buffer.from(material, 'base64');
    for (const shown of [inspect(keyring, { showHidden: true, depth: 10 }), JSON.stringify(keyring), String(keyring)]) {
      expect(shown).not.toContain(material);
      expect(shown).not.toContain(raw.toString('hex'));
    }
    expect(JSON.parse(JSON.stringify(keyring))).toEqual({ primaryId: 'k1', ids: ['k1'] });
  });
});

describe('generating keys', () => {
  it('generateKeyring makes one random key that formatKeyring writes and parseKeyring reads back', () => {
    const a = generateKeyring('gen');
    const b = generateKeyring('gen');
    expect(a.ids).toEqual(['gen']);
    expect(formatKeyring(a)).not.toBe(formatKeyring(b));
    expect(formatKeyring(parseKeyring(formatKeyring(a)))).toBe(formatKeyring(a));
  });

  it('newKeyEntry prints an entry BEHALF_ENCRYPTION_KEYS accepts, with a dated default id', () => {
    const entry = newKeyEntry(undefined, Date.UTC(2026, 10, 25));
    expect(entry).toMatch(/^k20261125-[0-9a-f]{4}:[A-Za-z0-9+/]{43}=$/);
    expect(parseKeyring(entry).primaryId).toBe(entry.split(':')[0]);
    expect(newKeyEntry('prod-2026')).toMatch(/^prod-2026:/);
    expect(() => newKeyEntry('no spaces')).toThrow(BehalfError);
  });
});

describe('local-mode key file', () => {
  let dir: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'behalf-keys-'));
  });

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it.skipIf(process.platform === 'win32')('is created on first use, 0600 in a 0700 folder, and says so; later uses read it', async () => {
    const path = join(dir, 'first', '.behalf', 'encryption-keys');
    const first = await loadOrCreateLocalKeyFile(path);
    expect(first.created).toBe(true);
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect((await stat(join(dir, 'first', '.behalf'))).mode & 0o777).toBe(0o700);
    const second = await loadOrCreateLocalKeyFile(path);
    expect(second.created).toBe(false);
    expect(formatKeyring(second.keyring)).toBe(formatKeyring(first.keyring));
    const text = await readFile(path, 'utf8');
    expect(text).toContain('# behalf local-mode encryption keys');
    expect(text).toContain(formatKeyring(first.keyring));
  });

  it('two processes creating it at once end with one key', async () => {
    const path = join(dir, 'race', 'encryption-keys');
    const results = await Promise.all(Array.from({ length: 8 }, () => loadOrCreateLocalKeyFile(path)));
    expect(results.filter((r) => r.created)).toHaveLength(1);
    expect(new Set(results.map((r) => formatKeyring(r.keyring))).size).toBe(1);
    // The temporary files used to create it atomically are gone.
    expect(await readdir(join(dir, 'race'))).toEqual(['encryption-keys']);
  });

  it.skipIf(process.platform === 'win32').each([0o644, 0o640, 0o604, 0o660])('is refused when its mode is %o', async (mode) => {
    const path = join(dir, `open-${mode.toString(8)}`);
    const material = key();
    await writeFile(path, `k1:${material}\n`);
    await chmod(path, mode);
    const error = await loadOrCreateLocalKeyFile(path).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BehalfError);
    expect((error as BehalfError).code).toBe('CONFIG_INVALID');
    expect((error as BehalfError).message).toContain(`BEHALF_KEY_FILE: ${path} has mode 0${mode.toString(8)}`);
    expect((error as BehalfError).message).toContain('chmod 600');
    expect((error as BehalfError).message).not.toContain(material);
  });

  it('reads several keys and comment lines, and reports a bad one under BEHALF_KEY_FILE', async () => {
    const path = join(dir, 'hand-written');
    await writeFile(path, `# mine\nnew:${key()}\n\nold:${key()}\n`, { mode: 0o600 });
    expect((await loadOrCreateLocalKeyFile(path)).keyring.ids).toEqual(['new', 'old']);
    const bad = join(dir, 'bad');
    await writeFile(bad, `k1:${randomBytes(16).toString('base64')}\n`, { mode: 0o600 });
    const error = (await loadOrCreateLocalKeyFile(bad).catch((e: unknown) => e)) as BehalfError;
    expect(error.message).toBe(`BEHALF_KEY_FILE (${bad}): key 'k1' is 16 bytes; AES-256 needs 32.`);
  });

  it('a folder where the file should be is a configuration error', async () => {
    const path = join(dir, 'is-a-folder');
    await mkdir(path, { mode: 0o700 });
    const error = (await loadOrCreateLocalKeyFile(path).catch((e: unknown) => e)) as BehalfError;
    expect(error).toBeInstanceOf(BehalfError);
    expect(error.code).toBe('CONFIG_INVALID');
    expect(error.message).toMatch(/^BEHALF_KEY_FILE: /);
  });
});

describe('loadKeyring', () => {
  it('uses BEHALF_ENCRYPTION_KEYS when given, in either mode', async () => {
    const entry = newKeyEntry('env');
    for (const mode of ['local', 'production'] as const) {
      const { keyring, createdKeyFile } = await loadKeyring({ mode, encryptionKeys: entry, keyFile: '/nonexistent/never-created' });
      expect(keyring.primaryId).toBe('env');
      expect(createdKeyFile).toBe(false);
    }
  });

  it('refuses to start production without keys', async () => {
    const error = (await loadKeyring({ mode: 'production', encryptionKeys: undefined, keyFile: '/nonexistent/x' }).catch((e: unknown) => e)) as BehalfError;
    expect(error.code).toBe('CONFIG_INVALID');
    expect(error.message).toMatch(/^BEHALF_ENCRYPTION_KEYS: is required in production/);
  });

  it('local mode without keys uses (and first creates) the key file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'behalf-local-'));
    try {
      const keyFile = join(dir, '.behalf', 'encryption-keys');
      expect((await loadKeyring({ mode: 'local', encryptionKeys: undefined, keyFile })).createdKeyFile).toBe(true);
      expect((await loadKeyring({ mode: 'local', encryptionKeys: undefined, keyFile })).createdKeyFile).toBe(false);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
