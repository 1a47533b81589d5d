import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { BehalfError } from '../../src/errors.js';
import {
  envelopeKeyId,
  openSqliteStore,
  parseKeyring,
  Vault,
  type SignInSave,
  type SqliteStore,
  type Store,
} from '../../src/vault/index.js';
import { errorOf } from '../support/errors.js';
import { profile } from './store-contract.js';

const CLIENT = 'server.apps.googleusercontent.com';
const T0 = 1_760_000_000_000;
const HOUR = 3_600_000;

const K1 = `k1:${randomBytes(32).toString('base64')}`;
const K2 = `k2:${randomBytes(32).toString('base64')}`;

/** Tokens shaped like Google's, unique per call so a leak scan can find each one. */
const refreshToken = () => `1//0g${randomBytes(60).toString('base64url')}`;
const accessToken = () => `ya29.a0${randomBytes(90).toString('base64url')}`;

function signIn(sub: string, overrides: Partial<SignInSave> = {}): SignInSave {
  return {
    user: profile(sub),
    clientId: CLIENT,
    scopes: ['openid', 'email', 'profile'],
    refreshToken: refreshToken(),
    accessToken: accessToken(),
    accessTokenExpiresAt: T0 + HOUR,
    now: T0,
    ...overrides,
  };
}

/** The store with replaceCiphertexts intercepted, to stage a concurrent writer. */
function withReplaceCiphertexts(store: Store, replaceCiphertexts: Store['replaceCiphertexts']): Store {
  return new Proxy(store, {
    get: (target, property) => {
      if (property === 'replaceCiphertexts') return replaceCiphertexts;
      const value = Reflect.get(target, property, target) as unknown;
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
}

let dir: string;
let counter = 0;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'behalf-vault-'));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('Vault over SqliteStore', () => {
  let path: string;
  let store: SqliteStore;
  let vault: Vault;

  beforeEach(async () => {
    path = join(dir, `vault-${++counter}`, 'behalf.db');
    store = await openSqliteStore(path);
    vault = new Vault(store, parseKeyring(K1));
  });

  afterEach(async () => {
    await store.close();
  });

  it('stores a sign-in and gives the tokens back decrypted', async () => {
    const write = signIn('1');
    const saved = await vault.saveSignIn(write);
    expect(saved.grant).toMatchObject({
      refreshToken: write.refreshToken,
      accessToken: write.accessToken,
      status: 'active',
      version: 1,
    });
    expect(await vault.getGrant('1', CLIENT)).toEqual(saved.grant);
    expect(await vault.getUser('1')).toEqual(saved.user);
    expect(vault.storeKind).toBe('sqlite');
  });

  it('getAccessGrant decrypts the access token only, and says whether there is a refresh token', async () => {
    const saved = await vault.saveSignIn(signIn('a1'));
    const { refreshToken: _sealed, ...rest } = saved.grant;
    expect(await vault.getAccessGrant('a1', CLIENT)).toEqual({ ...rest, hasRefreshToken: true });
    await vault.saveSignIn(signIn('a2', { refreshToken: undefined }));
    expect(await vault.getAccessGrant('a2', CLIENT)).toMatchObject({
      hasRefreshToken: false,
      status: 'needs_consent',
    });
    expect(await vault.getAccessGrant('nobody', CLIENT)).toBeNull();
    await vault.revokeGrant('a1', CLIENT, T0 + 1);
    expect(await vault.getAccessGrant('a1', CLIENT)).toMatchObject({
      accessToken: null,
      accessTokenExpiresAt: null,
      hasRefreshToken: false,
      status: 'revoked',
    });

    // The refresh token is not decrypted: a refresh token ciphertext that does not authenticate
    // fails getGrant but not getAccessGrant; an access token one fails both.
    await vault.saveSignIn(signIn('a4'));
    const victim = await vault.saveSignIn(signIn('a3'));
    const tamper = (sql: string) => {
      const db = new Database(path);
      try {
        db.prepare(sql).run();
      } finally {
        db.close();
      }
    };
    tamper(
      "UPDATE grants SET refresh_token = (SELECT refresh_token FROM grants WHERE sub = 'a4') WHERE sub = 'a3'",
    );
    expect((await errorOf(vault.getGrant('a3', CLIENT))).reason).toBe('ciphertext_invalid');
    expect((await vault.getAccessGrant('a3', CLIENT))?.accessToken).toBe(victim.grant.accessToken);
    tamper("UPDATE grants SET access_token = refresh_token WHERE sub = 'a3'");
    expect((await errorOf(vault.getAccessGrant('a3', CLIENT))).reason).toBe('ciphertext_invalid');
  });

  it('stores ciphertext, never the token, bound to the row', async () => {
    const write = signIn('2');
    await vault.saveSignIn(write);
    const row = await store.getGrant('2', CLIENT);
    expect(row!.refreshTokenCiphertext!.includes(Buffer.from(write.refreshToken!))).toBe(false);
    expect(envelopeKeyId(row!.refreshTokenCiphertext!)).toBe('k1');
    expect(envelopeKeyId(row!.accessTokenCiphertext!)).toBe('k1');
  });

  it('a repeat sign-in without a refresh token keeps the old one', async () => {
    const first = signIn('3');
    await vault.saveSignIn(first);
    const second = signIn('3', {
      refreshToken: undefined,
      now: T0 + HOUR,
      accessTokenExpiresAt: T0 + 2 * HOUR,
    });
    const saved = await vault.saveSignIn(second);
    expect(saved.grant.refreshToken).toBe(first.refreshToken);
    expect(saved.grant.accessToken).toBe(second.accessToken);
    expect((await vault.getGrant('3', CLIENT))!.refreshToken).toBe(first.refreshToken);
  });

  it('a new refresh token replaces the old one', async () => {
    await vault.saveSignIn(signIn('4'));
    const second = signIn('4', { now: T0 + HOUR });
    await vault.saveSignIn(second);
    expect((await vault.getGrant('4', CLIENT))!.refreshToken).toBe(second.refreshToken);
  });

  it('a first sign-in without a refresh token has none and needs consent', async () => {
    const saved = await vault.saveSignIn(signIn('5', { refreshToken: undefined }));
    expect(saved.grant).toMatchObject({ refreshToken: null, status: 'needs_consent' });
  });

  it('saveAccessToken is a compare-and-set: a stale version is refused and the newer token kept', async () => {
    await vault.saveSignIn(signIn('6'));
    const read = (await vault.getGrant('6', CLIENT))!;
    const winner = accessToken();
    expect(
      await vault.saveAccessToken(
        '6',
        CLIENT,
        { accessToken: winner, accessTokenExpiresAt: T0 + 2 * HOUR, now: T0 + 1 },
        read.version,
      ),
    ).toBe(true);
    const loser = accessToken();
    expect(
      await vault.saveAccessToken(
        '6',
        CLIENT,
        { accessToken: loser, accessTokenExpiresAt: T0 + 3 * HOUR, now: T0 + 2 },
        read.version,
      ),
    ).toBe(false);
    const grant = (await vault.getGrant('6', CLIENT))!;
    expect(grant.accessToken).toBe(winner);
    expect(grant.accessTokenExpiresAt).toBe(T0 + 2 * HOUR);
    expect(grant.version).toBe(read.version + 1);
  });

  it('passes status changes, deletion and listing through', async () => {
    await vault.saveSignIn(signIn('7'));
    await vault.saveSignIn(signIn('8'));
    await vault.setGrantStatus('7', CLIENT, 'needs_consent', T0 + 1);
    expect((await vault.getGrant('7', CLIENT))!).toMatchObject({
      status: 'needs_consent',
      accessToken: null,
    });
    expect((await vault.listGrants({ limit: 10, status: 'active' })).grants.map((g) => g.sub)).toEqual(['8']);
    expect(await vault.deleteUser('7')).toBe(true);
    expect(await vault.getUser('7')).toBeNull();
    expect(await vault.getGrant('7', CLIENT)).toBeNull();
  });

  it('saveAccessToken replaces the scopes only when given, and gives back the lease of releaseLeaseOf', async () => {
    await vault.saveSignIn(signIn('s1'));
    const write = { accessToken: accessToken(), accessTokenExpiresAt: T0 + 2 * HOUR, now: T0 + 1 };
    expect(await vault.saveAccessToken('s1', CLIENT, { ...write, scopes: ['openid', 'drive'] })).toBe(true);
    expect((await vault.getGrant('s1', CLIENT))!.scopes).toEqual(['openid', 'drive']);
    expect(await vault.saveAccessToken('s1', CLIENT, write)).toBe(true);
    expect((await vault.getGrant('s1', CLIENT))!.scopes).toEqual(['openid', 'drive']);
    expect(await vault.acquireRefreshLease('s1', CLIENT, 'a', 60_000)).toBe(true);
    expect(await vault.saveAccessToken('s1', CLIENT, { ...write, releaseLeaseOf: 'a' })).toBe(true);
    expect(await vault.acquireRefreshLease('s1', CLIENT, 'b', 60_000)).toBe(true);
  });

  it('eachGrant walks every grant, or those of one status, across pages', async () => {
    for (const sub of ['e1', 'e2', 'e3', 'e4']) await vault.saveSignIn(signIn(sub));
    await vault.setGrantStatus('e2', CLIENT, 'revoked', T0 + 1);
    await vault.setGrantStatus('e4', CLIENT, 'revoked', T0 + 1);
    const subs = async (options: Parameters<Vault['eachGrant']>[0]) => {
      const seen: string[] = [];
      for await (const grant of vault.eachGrant(options)) seen.push(grant.sub);
      return seen;
    };
    expect(await subs({ pageSize: 1 })).toEqual(['e1', 'e2', 'e3', 'e4']);
    expect(await subs({ status: 'revoked', pageSize: 1 })).toEqual(['e2', 'e4']);
    expect(await subs({ status: 'active' })).toEqual(['e1', 'e3']);
  });

  it('a ciphertext moved to another row or column in the database does not decrypt', async () => {
    await vault.saveSignIn(signIn('10'));
    const victim = signIn('11');
    await vault.saveSignIn(victim);
    const db = new Database(path);
    try {
      // An attacker with write access to the file copies user 10's refresh token over user 11's.
      db.prepare(
        "UPDATE grants SET refresh_token = (SELECT refresh_token FROM grants WHERE sub = '10') WHERE sub = '11'",
      ).run();
      // …and swaps user 10's columns.
      db.prepare(
        "UPDATE grants SET refresh_token = access_token, access_token = refresh_token WHERE sub = '10'",
      ).run();
    } finally {
      db.close();
    }
    for (const sub of ['10', '11']) {
      const error = (await vault.getGrant(sub, CLIENT).catch((e: unknown) => e)) as BehalfError;
      expect(error).toBeInstanceOf(BehalfError);
      expect(error.reason).toBe('ciphertext_invalid');
      expect(error.message).not.toContain(victim.refreshToken!);
    }
  });

  describe('rotateKeys', () => {
    async function seed(count: number): Promise<Map<string, SignInSave>> {
      const written = new Map<string, SignInSave>();
      for (let i = 0; i < count; i++) {
        const sub = String(100_000 + i);
        const write = signIn(sub, i % 5 === 0 ? { refreshToken: undefined } : {});
        await vault.saveSignIn(write);
        if (i % 7 === 0) await vault.setGrantStatus(sub, CLIENT, 'revoked', T0 + 1);
        written.set(sub, write);
      }
      return written;
    }

    it('re-encrypts every row under the new primary; every user stays readable and the old key can then be removed', async () => {
      const written = await seed(23);
      const rotating = new Vault(store, parseKeyring(`${K2},${K1}`));
      // Before rotation, both keys are needed: the new keyring reads old rows.
      expect((await rotating.getGrant('100001', CLIENT))!.refreshToken).toBe(
        written.get('100001')!.refreshToken,
      );

      const report = await rotating.rotateKeys({ pageSize: 4 });
      // User 100000 has no tokens at all (no refresh token, revoked): nothing to re-encrypt.
      expect(report).toEqual({
        primaryKey: 'k2',
        rows: 23,
        reencrypted: 22,
        alreadyCurrent: 1,
        retried: 0,
        vanished: 0,
      });

      const onlyNew = new Vault(store, parseKeyring(K2));
      for (const [sub, write] of written) {
        const grant = (await onlyNew.getGrant(sub, CLIENT))!;
        expect(grant.refreshToken).toBe(write.refreshToken ?? null);
        expect(grant.accessToken).toBe(grant.status === 'revoked' ? null : write.accessToken);
        const row = (await store.getGrant(sub, CLIENT))!;
        for (const ciphertext of [row.refreshTokenCiphertext, row.accessTokenCiphertext]) {
          if (ciphertext !== null) expect(envelopeKeyId(ciphertext)).toBe('k2');
        }
      }
      // The old key alone can no longer read anything that holds a token.
      const error = (await vault.getGrant('100001', CLIENT).catch((e: unknown) => e)) as BehalfError;
      expect(error.reason).toBe('unknown_key_id');

      // Running it again finds nothing to do.
      expect(await rotating.rotateKeys()).toMatchObject({ rows: 23, reencrypted: 0, alreadyCurrent: 23 });
    });

    it('a row written while it rotates is read again and rotated with the newer token', async () => {
      await seed(3);
      const concurrent = accessToken();
      let interfered = false;
      const racing = withReplaceCiphertexts(store, async (...args) => {
        if (!interfered && args[0] === '100001') {
          interfered = true;
          // Another instance refreshes this user's access token between our read and write.
          await vault.saveAccessToken('100001', CLIENT, {
            accessToken: concurrent,
            accessTokenExpiresAt: T0 + 5 * HOUR,
            now: T0 + 2,
          });
        }
        return store.replaceCiphertexts(...args);
      });
      const report = await new Vault(racing, parseKeyring(`${K2},${K1}`)).rotateKeys();
      expect(report).toMatchObject({ rows: 3, reencrypted: 2, alreadyCurrent: 1, retried: 1 });
      const grant = (await new Vault(store, parseKeyring(K2)).getGrant('100001', CLIENT))!;
      expect(grant.accessToken).toBe(concurrent);
      expect(grant.accessTokenExpiresAt).toBe(T0 + 5 * HOUR);
    });

    it('rows under a key that is not configured are reported at the end, the rest rotated', async () => {
      await seed(4);
      const K0 = `k0:${randomBytes(32).toString('base64')}`;
      await new Vault(store, parseKeyring(K0)).saveSignIn(signIn('099999'));
      const error = (await new Vault(store, parseKeyring(`${K2},${K1}`))
        .rotateKeys()
        .catch((e: unknown) => e)) as BehalfError;
      expect(error).toBeInstanceOf(BehalfError);
      expect(error.code).toBe('CONFIG_INVALID');
      expect(error.message).toMatch(/could not re-encrypt 1 of 5 grant\(s\): 099999 \(unknown_key_id\)/);
      expect(error.details).toMatchObject({
        report: { rows: 5, reencrypted: 3, alreadyCurrent: 1 },
        failed: [{ sub: '099999', reason: 'unknown_key_id' }],
      });
      for (const secret of [K0, K1, K2])
        expect(JSON.stringify(error.toJSON())).not.toContain(secret.slice(3));
    });

    /** Swap the two ciphertexts of each grant in the file: they no longer authenticate (bound to their column). */
    function swapColumns(subs: string[]): void {
      const db = new Database(path);
      try {
        const swap = db.prepare(
          'UPDATE grants SET refresh_token = access_token, access_token = refresh_token WHERE sub = ?',
        );
        for (const sub of subs) swap.run(sub);
      } finally {
        db.close();
      }
    }

    async function rotationError(rotating: Vault, options = {}): Promise<BehalfError> {
      const error = await rotating.rotateKeys(options).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(BehalfError);
      return error as BehalfError;
    }

    it('names the first five rows it could not rotate, then …, and is INTERNAL when no key is missing', async () => {
      const broken = ['c1', 'c2', 'c3', 'c4', 'c5', 'c6'];
      for (const sub of [...broken, 'ok1', 'ok2']) await vault.saveSignIn(signIn(sub));
      // A grant with no token left: nothing to re-encrypt, already current.
      await vault.saveSignIn(signIn('none', { refreshToken: undefined }));
      await vault.setGrantStatus('none', CLIENT, 'revoked', T0 + 1);
      swapColumns(broken);
      const error = await rotationError(new Vault(store, parseKeyring(`${K2},${K1}`)));
      expect(error.code).toBe('INTERNAL');
      expect(error.reason).toBe('rotation_incomplete');
      expect(error.message).toBe(
        'Key rotation could not re-encrypt 6 of 9 grant(s): c1 (ciphertext_invalid), c2 (ciphertext_invalid), ' +
          'c3 (ciphertext_invalid), c4 (ciphertext_invalid), c5 (ciphertext_invalid), …. ' +
          "The other 3 are under key 'k2'. Keep every old key in BEHALF_ENCRYPTION_KEYS until a rotation finishes without error.",
      );
      expect(error.details).toEqual({
        report: { primaryKey: 'k2', rows: 9, reencrypted: 2, alreadyCurrent: 1, retried: 0, vanished: 0 },
        failed: broken.map((sub) => ({ sub, clientId: CLIENT, reason: 'ciphertext_invalid' })),
      });
    });

    it('lists all of exactly five failed rows without …, and is CONFIG_INVALID when any of them needs a missing key', async () => {
      const K0 = `k0:${randomBytes(32).toString('base64')}`;
      await new Vault(store, parseKeyring(K0)).saveSignIn(signIn('b0'));
      for (const sub of ['b1', 'b2', 'b3', 'b4', 'ok']) await vault.saveSignIn(signIn(sub));
      swapColumns(['b1', 'b2', 'b3', 'b4']);
      const error = await rotationError(new Vault(store, parseKeyring(`${K2},${K1}`)));
      expect(error.code).toBe('CONFIG_INVALID');
      expect(error.message).toBe(
        'Key rotation could not re-encrypt 5 of 6 grant(s): b0 (unknown_key_id), b1 (ciphertext_invalid), ' +
          'b2 (ciphertext_invalid), b3 (ciphertext_invalid), b4 (ciphertext_invalid). ' +
          "The other 1 are under key 'k2'. Keep every old key in BEHALF_ENCRYPTION_KEYS until a rotation finishes without error.",
      );
    });

    it('gives up on a row that keeps changing after maxAttempts writes, and reports it as kept_changing', async () => {
      await vault.saveSignIn(signIn('busy'));
      // Every compare-and-set loses: another writer always got there first.
      const losing = withReplaceCiphertexts(store, () => Promise.resolve(false));
      const error = await rotationError(new Vault(losing, parseKeyring(`${K2},${K1}`)), { maxAttempts: 2 });
      expect(error.code).toBe('INTERNAL');
      expect(error.details).toEqual({
        report: { primaryKey: 'k2', rows: 1, reencrypted: 0, alreadyCurrent: 0, retried: 1, vanished: 0 },
        failed: [{ sub: 'busy', clientId: CLIENT, reason: 'kept_changing' }],
      });
    });

    it('reads the grants pageSize at a time', async () => {
      await seed(5);
      const limits: number[] = [];
      const paging = new Proxy(store, {
        get: (target, property) => {
          if (property === 'listGrants')
            return (options: Parameters<Store['listGrants']>[0]) => {
              limits.push(options.limit);
              return target.listGrants(options);
            };
          const value = Reflect.get(target, property, target) as unknown;
          return typeof value === 'function'
            ? (value as (...args: unknown[]) => unknown).bind(target)
            : value;
        },
      });
      expect(await new Vault(paging, parseKeyring(`${K2},${K1}`)).rotateKeys({ pageSize: 2 })).toMatchObject({
        rows: 5,
      });
      expect(limits).toEqual([2, 2, 2]);
    });

    it('a row deleted while it rotates is counted, not failed', async () => {
      await seed(2);
      const vanishing = withReplaceCiphertexts(store, async (...args) => {
        await store.deleteUser(args[0]);
        return store.replaceCiphertexts(...args);
      });
      expect(await new Vault(vanishing, parseKeyring(`${K2},${K1}`)).rotateKeys()).toMatchObject({
        rows: 2,
        vanished: 1,
        reencrypted: 0,
      });
    });
  });

  it('the raw refresh and access tokens never appear in the database files, -wal and -shm included', async () => {
    const secrets: string[] = [];
    const emails: string[] = [];
    for (let i = 0; i < 20; i++) {
      const write = signIn(`2000${i}`);
      secrets.push(write.refreshToken!, write.accessToken);
      emails.push(write.user.email!);
      await vault.saveSignIn(write);
      const refreshed = accessToken();
      secrets.push(refreshed);
      await vault.saveAccessToken(write.user.sub, CLIENT, {
        accessToken: refreshed,
        accessTokenExpiresAt: T0 + 2 * HOUR,
        now: T0 + 1,
      });
    }
    const rotated = new Vault(store, parseKeyring(`${K2},${K1}`));
    await rotated.rotateKeys();
    const keyMaterial = [K1, K2].map((entry) => entry.slice(3));
    const rawKeys = keyMaterial.map((b64) => Buffer.from(b64, 'base64'));

    const scan = async (expectWal: boolean) => {
      const files = (await readdir(join(path, '..'))).filter((name) => name.startsWith('behalf.db'));
      if (expectWal)
        expect(files).toEqual(expect.arrayContaining(['behalf.db', 'behalf.db-wal', 'behalf.db-shm']));
      const bytes = Buffer.concat(await Promise.all(files.map((name) => readFile(join(path, '..', name)))));
      // The scan does see plaintext that is stored as such: the profile's email.
      expect(emails.some((email) => bytes.includes(Buffer.from(email)))).toBe(true);
      for (const secret of secrets) {
        expect(bytes.includes(Buffer.from(secret))).toBe(false);
        // No recognisable fragment either.
        expect(bytes.includes(Buffer.from(secret.slice(8, 32)))).toBe(false);
      }
      for (const material of keyMaterial) expect(bytes.includes(Buffer.from(material))).toBe(false);
      for (const raw of rawKeys) expect(bytes.includes(raw)).toBe(false);
    };

    await scan(true);
    await store.close();
    await scan(false);
  });
});
