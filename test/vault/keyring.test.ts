import type * as crypto from 'node:crypto';
import { createSecretKey, generateKeyPairSync, randomBytes } from 'node:crypto';
import type * as fs from 'node:fs/promises';
import { chmod, link, mkdir, mkdtemp, open, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { BehalfError } from '../../src/errors.js';
import {
  formatKeyring,
  generateKeyring,
  Keyring,
  loadKeyring,
  loadOrCreateLocalKeyFile,
  newKeyEntry,
  parseKeyring,
} from '../../src/vault/index.js';

// Watched, otherwise unchanged: the random key bytes (to see them wiped) and the file calls (to
// fail one at a time, as a full disk or a filesystem without hard links would).
vi.mock('node:crypto', async (importOriginal) => {
  const actual = await importOriginal<typeof crypto>();
  return { ...actual, randomBytes: vi.fn(actual.randomBytes) };
});
vi.mock('node:fs/promises', async (importOriginal) => {
  const actual = await importOriginal<typeof fs>();
  return { ...actual, link: vi.fn(actual.link), mkdir: vi.fn(actual.mkdir), open: vi.fn(actual.open) };
});

afterEach(() => {
  vi.mocked(link).mockRestore();
  vi.mocked(mkdir).mockRestore();
  vi.mocked(open).mockRestore();
});

const errno = (code: string) => Object.assign(new Error(`simulated ${code}`), { code });

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
    for (const encoded of [
      raw.toString('base64'),
      raw.toString('base64url'),
      raw.toString('base64').replace(/=+$/, ''),
    ]) {
      expect(formatKeyring(parseKeyring(`k:${encoded}`))).toBe(`k:${raw.toString('base64')}`);
    }
  });

  it('names the key and its length when a key is not 32 bytes', () => {
    const short = randomBytes(16).toString('base64');
    expect(configError(() => parseKeyring(`k1:${key()},k2:${short}`), short).message).toBe(
      "BEHALF_ENCRYPTION_KEYS: key 'k2' is 16 bytes; AES-256 needs 32.",
    );
    const hex = randomBytes(32).toString('hex');
    expect(configError(() => parseKeyring(`k1:${hex}`), hex).message).toMatch(
      /key 'k1' is 48 bytes; AES-256 needs 32 \(it looks like hex/,
    );
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
    expect(configError(() => parseKeyring(value), encoded).message).toMatch(
      /^BEHALF_ENCRYPTION_KEYS: key 'k1' is not valid base64\.$|is \d+ bytes/,
    );
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
    expect(configError(() => parseKeyring('', 'BEHALF_KEY_FILE (/x)')).message).toMatch(
      /^BEHALF_KEY_FILE \(\/x\): /,
    );
  });

  it('never shows key material when logged or serialised', () => {
    const material = key();
    const keyring = parseKeyring(`k1:${material}`);
    const raw = Buffer.from(material, 'base64');
    for (const shown of [
      inspect(keyring, { showHidden: true, depth: 10 }),
      JSON.stringify(keyring),
      String(keyring),
    ]) {
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

  it.skipIf(process.platform === 'win32')(
    'is created on first use, 0600 in a 0700 folder, and says so; later uses read it',
    async () => {
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
    },
  );

  it('two processes creating it at once end with one key', async () => {
    const path = join(dir, 'race', 'encryption-keys');
    const results = await Promise.all(Array.from({ length: 8 }, () => loadOrCreateLocalKeyFile(path)));
    expect(results.filter((r) => r.created)).toHaveLength(1);
    expect(new Set(results.map((r) => formatKeyring(r.keyring))).size).toBe(1);
    // The temporary files used to create it atomically are gone.
    expect(await readdir(join(dir, 'race'))).toEqual(['encryption-keys']);
  });

  it.skipIf(process.platform === 'win32').each([0o644, 0o640, 0o604, 0o660])(
    'is refused when its mode is %o',
    async (mode) => {
      const path = join(dir, `open-${mode.toString(8)}`);
      const material = key();
      await writeFile(path, `k1:${material}\n`);
      await chmod(path, mode);
      const error = await loadOrCreateLocalKeyFile(path).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(BehalfError);
      expect((error as BehalfError).code).toBe('CONFIG_INVALID');
      expect((error as BehalfError).message).toContain(
        `BEHALF_KEY_FILE: ${path} has mode 0${mode.toString(8)}`,
      );
      expect((error as BehalfError).message).toContain('chmod 600');
      expect((error as BehalfError).message).not.toContain(material);
    },
  );

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
      const { keyring, createdKeyFile } = await loadKeyring({
        mode,
        encryptionKeys: entry,
        keyFile: '/nonexistent/never-created',
      });
      expect(keyring.primaryId).toBe('env');
      expect(createdKeyFile).toBe(false);
    }
  });

  it('refuses to start production without keys', async () => {
    const error = (await loadKeyring({
      mode: 'production',
      encryptionKeys: undefined,
      keyFile: '/nonexistent/x',
    }).catch((e: unknown) => e)) as BehalfError;
    expect(error.code).toBe('CONFIG_INVALID');
    expect(error.message).toMatch(/^BEHALF_ENCRYPTION_KEYS: is required in production/);
  });

  it('local mode without keys uses (and first creates) the key file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'behalf-local-'));
    try {
      const keyFile = join(dir, '.behalf', 'encryption-keys');
      expect((await loadKeyring({ mode: 'local', encryptionKeys: undefined, keyFile })).createdKeyFile).toBe(
        true,
      );
      expect((await loadKeyring({ mode: 'local', encryptionKeys: undefined, keyFile })).createdKeyFile).toBe(
        false,
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('Keyring', () => {
  const secret = () => createSecretKey(randomBytes(32));

  it('refuses entries that did not come through parseKeyring: a bad or repeated id, a key that is not 32 secret bytes, none at all', () => {
    const invalid = 'BEHALF_ENCRYPTION_KEYS: invalid key entry.';
    expect(configError(() => new Keyring([{ id: 'k.1', key: secret() }])).message).toBe(invalid);
    expect(configError(() => new Keyring([{ id: 'k'.repeat(33), key: secret() }])).message).toBe(invalid);
    expect(
      configError(
        () =>
          new Keyring([
            { id: 'k1', key: secret() },
            { id: 'k1', key: secret() },
          ]),
      ).message,
    ).toBe(invalid);
    expect(
      configError(() => new Keyring([{ id: 'k1', key: createSecretKey(randomBytes(16)) }])).message,
    ).toBe(invalid);
    expect(
      configError(
        () => new Keyring([{ id: 'k1', key: generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey }]),
      ).message,
    ).toBe(invalid);
    expect(configError(() => new Keyring([])).message).toBe('BEHALF_ENCRYPTION_KEYS: no keys given.');
    const keyring = new Keyring([
      { id: 'k', key: secret() },
      { id: 'K-2_'.padEnd(32, 'x'), key: secret() },
    ]);
    expect(keyring.ids).toEqual(['k', 'K-2_'.padEnd(32, 'x')]);
    expect(keyring.primaryId).toBe('k');
  });

  it('hands out the key of a configured id only', () => {
    const material = Buffer.from(key(), 'base64');
    const keyring = parseKeyring(`k1:${material.toString('base64')}`);
    expect(keyring.keyFor('k1')!.export()).toEqual(material);
    expect(keyring.keyFor('k2')).toBeUndefined();
  });

  it('shows its ids, primary first, when inspected', () => {
    expect(inspect(parseKeyring(`k2:${key()},k1:${key()}`))).toBe(
      "Keyring { primary: 'k2', ids: ['k2', 'k1'] }",
    );
  });
});

describe('parseKeyring, exactly', () => {
  it('takes spaces around the colon and the entries', () => {
    const material = key();
    expect(formatKeyring(parseKeyring(` k1 : ${material} ,`))).toBe(`k1:${material}`);
  });

  it('takes a key with zero bytes in it, as long as not every byte is zero', () => {
    const raw = Buffer.alloc(32);
    raw[31] = 1;
    expect(formatKeyring(parseKeyring(`k1:${raw.toString('base64')}`))).toBe(`k1:${raw.toString('base64')}`);
  });

  it('numbers the entry it refuses and says what it expected', () => {
    expect(configError(() => parseKeyring('')).message).toBe(
      'BEHALF_ENCRYPTION_KEYS: no keys given; expected comma-separated ID:BASE64 entries of 32-byte keys, the first one primary (`behalf keys generate` prints one).',
    );
    expect(configError(() => parseKeyring(`k1:${key()},${key()}`)).message).toBe(
      "BEHALF_ENCRYPTION_KEYS: entry 2 is not ID:BASE64 (no ':' found).",
    );
    expect(configError(() => parseKeyring(`k1:${key()},k 2:${key()}`)).message).toBe(
      'BEHALF_ENCRYPTION_KEYS: entry 2: a key id is 1-32 characters of [A-Za-z0-9_-].',
    );
    expect(configError(() => parseKeyring('k1:')).message).toBe("BEHALF_ENCRYPTION_KEYS: key 'k1' is empty.");
    expect(configError(() => parseKeyring(`k1:${Buffer.alloc(32).toString('base64')}`)).message).toBe(
      "BEHALF_ENCRYPTION_KEYS: key 'k1' is all zero bytes; use a random key.",
    );
    const hex = randomBytes(32).toString('hex').toUpperCase();
    expect(configError(() => parseKeyring(`k1:${hex}`), hex).message).toBe(
      "BEHALF_ENCRYPTION_KEYS: key 'k1' is 48 bytes; AES-256 needs 32 (it looks like hex; give base64, e.g. from `openssl rand -base64 32`).",
    );
  });

  it('refuses base64 that does not read back as written: stray bits in the last character, or padding where none fits', () => {
    const unpadded = key().replace(/=+$/, '');
    // 43 characters carry 258 bits: the last character's 2 lowest must be zero.
    const stray = `${unpadded.slice(0, -1)}${unpadded.at(-1) === 'B' ? 'C' : 'B'}`;
    for (const bad of [stray, `${unpadded}==`, `${unpadded.slice(0, -2)}=`]) {
      expect(configError(() => parseKeyring(`k1:${bad}`), bad).message).toMatch(
        /^BEHALF_ENCRYPTION_KEYS: key 'k1' is (not valid base64\.|\d+ bytes)/,
      );
    }
    expect(configError(() => parseKeyring(`k1:${stray}`)).message).toBe(
      "BEHALF_ENCRYPTION_KEYS: key 'k1' is not valid base64.",
    );
  });

  it('wipes the decoded key bytes once the key is made, and the bytes of a key it refuses', () => {
    const from = vi.spyOn(Buffer, 'from');
    try {
      const material = key();
      const keyring = parseKeyring(`k1:${material}`);
      const unpadded = key().replace(/=+$/, '');
      const stray = `${unpadded.slice(0, -1)}${unpadded.at(-1) === 'B' ? 'C' : 'B'}`;
      configError(() => parseKeyring(`k2:${stray}`));
      const decoded = (body: string) =>
        from.mock.results.filter((_, i) => from.mock.calls[i]![0] === body).map((r) => r.value as Buffer);
      expect(decoded(material.replace(/=+$/, ''))).toHaveLength(1);
      expect(decoded(material.replace(/=+$/, ''))[0]!.every((byte) => byte === 0)).toBe(true);
      expect(decoded(stray)).toHaveLength(1);
      expect(decoded(stray)[0]!.every((byte) => byte === 0)).toBe(true);
      // The key itself was copied before the wipe.
      expect(formatKeyring(keyring)).toBe(`k1:${material}`);
    } finally {
      from.mockRestore();
    }
  });

  it('generateKeyring wipes the random bytes it made the key from', () => {
    vi.mocked(randomBytes).mockClear();
    const keyring = generateKeyring('gen');
    const made = vi
      .mocked(randomBytes)
      .mock.results.map((r) => r.value as Buffer)
      .filter((b) => b.length === 32);
    expect(made).toHaveLength(1);
    expect(made[0]!.every((byte) => byte === 0)).toBe(true);
    expect(
      keyring
        .keyFor('gen')!
        .export()
        .every((byte) => byte === 0),
    ).toBe(false);
  });
});

describe('local-mode key file, exactly', () => {
  let dir: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'behalf-keyfile-'));
  });

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('writes two comment lines, the date it was made, and the keyring', async () => {
    const path = join(dir, 'dated', 'keys');
    const { keyring } = await loadOrCreateLocalKeyFile(path, Date.UTC(2026, 10, 25, 8, 30));
    expect(await readFile(path, 'utf8')).toBe(
      '# behalf local-mode encryption keys (BEHALF_ENCRYPTION_KEYS format: ID:BASE64, first is primary).\n' +
        '# Generated 2026-11-25T08:30:00.000Z. Keep this file private. Production takes its keys from BEHALF_ENCRYPTION_KEYS.\n' +
        `${formatKeyring(keyring)}\n`,
    );
    expect(keyring.ids).toEqual(['local1']);
  });

  it('reads a file with Windows line endings', async () => {
    const path = join(dir, 'crlf');
    const [a, b] = [key(), key()];
    await writeFile(path, `# keys\r\nnew:${a}\r\nold:${b}\r\n`, { mode: 0o600 });
    expect(formatKeyring((await loadOrCreateLocalKeyFile(path)).keyring)).toBe(`new:${a},old:${b}`);
  });

  it('reads a file with blank lines, comments and entries indented or followed by spaces', async () => {
    const path = join(dir, 'spaced');
    const [a, b] = [key(), key()];
    await writeFile(path, `# keys\n\n   new:${a}  \n\t\n  # old key below\nold:${b}\t\n\n`, { mode: 0o600 });
    expect(formatKeyring((await loadOrCreateLocalKeyFile(path)).keyring)).toBe(`new:${a},old:${b}`);
  });

  it('refuses a folder where the key file should be, saying so', async () => {
    const path = join(dir, 'a-folder');
    await mkdir(path, { mode: 0o700 });
    expect((await fileError(path)).message).toBe(`BEHALF_KEY_FILE: ${path} is not a regular file.`);
  });

  async function fileError(path: string): Promise<BehalfError> {
    const error = await loadOrCreateLocalKeyFile(path).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BehalfError);
    expect((error as BehalfError).code).toBe('CONFIG_INVALID');
    return error as BehalfError;
  }

  it('names the file, the step and the system error when it cannot be read, its folder made, or it written', async () => {
    const file = join(dir, 'a-file');
    await writeFile(file, 'not a folder');
    expect((await fileError(join(file, 'keys'))).message).toBe(
      `BEHALF_KEY_FILE: ${join(file, 'keys')} cannot be read (ENOTDIR).`,
    );

    vi.mocked(mkdir).mockRejectedValueOnce(errno('EACCES'));
    const unmade = join(dir, 'no-folder', 'keys');
    expect((await fileError(unmade)).message).toBe(
      `BEHALF_KEY_FILE: ${unmade} cannot create its folder (EACCES).`,
    );

    const actual = await vi.importActual<typeof fs>('node:fs/promises');
    vi.mocked(open).mockImplementation(async (path, flags, mode) =>
      flags === 'wx' ? Promise.reject(errno('ENOSPC')) : actual.open(path, flags, mode),
    );
    const full = join(dir, 'disk-full', 'keys');
    expect((await fileError(full)).message).toBe(`BEHALF_KEY_FILE: ${full} cannot be created (ENOSPC).`);
    expect(await readdir(join(dir, 'disk-full'))).toEqual([]);
  });

  it('without hard links, creates the file directly, still refusing to overwrite one', async () => {
    vi.mocked(link).mockRejectedValueOnce(errno('EPERM'));
    const path = join(dir, 'no-links', 'keys');
    const first = await loadOrCreateLocalKeyFile(path, Date.UTC(2026, 0, 1));
    expect(first.created).toBe(true);
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect(await readFile(path, 'utf8')).toContain(`# Generated 2026-01-01T00:00:00.000Z.`);
    expect(await readdir(join(dir, 'no-links'))).toEqual(['keys']);
    expect(formatKeyring((await loadOrCreateLocalKeyFile(path)).keyring)).toBe(formatKeyring(first.keyring));

    for (const code of ['ENOTSUP', 'EXDEV']) {
      vi.mocked(link).mockRejectedValueOnce(errno(code));
      expect((await loadOrCreateLocalKeyFile(join(dir, code, 'keys'))).created).toBe(true);
    }
    vi.mocked(link).mockRejectedValueOnce(errno('EIO'));
    const broken = join(dir, 'link-fails', 'keys');
    expect((await fileError(broken)).message).toBe(`BEHALF_KEY_FILE: ${broken} cannot be created (EIO).`);
    expect(await readdir(join(dir, 'link-fails'))).toEqual([]);
  });
});
