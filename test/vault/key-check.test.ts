/**
 * Issue 11, point 6 ("Wrong key, clear stop"): each encryption key id leaves a check value in the
 * database; a key whose id is known but whose bytes differ stops start-up with one line naming the
 * id, and nothing is written with it. The same tests run on SQLite and on Postgres.
 */
import { createCipheriv, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { BehalfError } from '../../src/errors.js';
import { errorOf } from '../support/errors.js';
import {
  createKeyCheckValue,
  migrateStore,
  openSqliteStore,
  openStore,
  parseKeyring,
  Vault,
  verifyKeyCheckValue,
  verifyKeyring,
  type Keyring,
  type Store,
} from '../../src/vault/index.js';
import { createTestDatabase, postgresForTests, type TestDatabase } from '../support/postgres.js';
import { profile } from './store-contract.js';

const CLIENT = 'server.apps.googleusercontent.com';
const T0 = 1_760_000_000_000;

/** A fresh 32-byte key, base64: the tests look for it (and its other spellings) in every message. */
const newKey = () => randomBytes(32).toString('base64');

function spellings(base64: string): string[] {
  const raw = Buffer.from(base64, 'base64');
  return [base64, raw.toString('base64url'), raw.toString('hex'), base64.slice(0, 16)];
}

/** Everything the store holds that a start-up could write: grants and key checks. */
async function snapshot(store: Store): Promise<unknown> {
  return { grants: (await store.listGrants({ limit: 1000 })).grants, checks: await store.listKeyChecks() };
}

/** The store with addKeyCheck intercepted, to stage a concurrent start. */
function withAddKeyCheck(store: Store, addKeyCheck: Store['addKeyCheck']): Store {
  return new Proxy(store, {
    get: (target, property) => {
      if (property === 'addKeyCheck') return addKeyCheck;
      const value = Reflect.get(target, property, target) as unknown;
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
}

async function signInUsers(store: Store, keyring: Keyring, count: number): Promise<void> {
  const vault = new Vault(store, keyring);
  for (let i = 0; i < count; i++) {
    await vault.saveSignIn({
      user: profile(`user-${i}`),
      clientId: CLIENT,
      scopes: ['openid'],
      refreshToken: `1//0g${randomBytes(30).toString('base64url')}`,
      accessToken: `ya29.${randomBytes(30).toString('base64url')}`,
      accessTokenExpiresAt: T0 + 3_600_000,
      now: T0,
    });
  }
}

describe('key check values', () => {
  it('verify under the same key and id only', () => {
    const a = newKey();
    const keyring = parseKeyring(`k1:${a},k2:${a}`);
    const value = createKeyCheckValue(keyring, 'k1');
    expect(verifyKeyCheckValue(keyring, 'k1', value)).toBe('match');
    expect(verifyKeyCheckValue(parseKeyring(`k1:${newKey()}`), 'k1', value)).toBe('mismatch');
    // Same bytes, other id: the key id is bound in as associated data.
    expect(verifyKeyCheckValue(keyring, 'k2', value)).toBe('mismatch');
  });

  it('are fresh each time and hold nothing of the key', () => {
    const a = newKey();
    const keyring = parseKeyring(`k1:${a}`);
    const first = createKeyCheckValue(keyring, 'k1');
    const second = createKeyCheckValue(keyring, 'k1');
    expect(first.equals(second)).toBe(false);
    expect(first.length).toBe(45);
    const raw = Buffer.from(a, 'base64');
    expect(first.includes(raw)).toBe(false);
    expect(first.includes(raw.subarray(0, 8))).toBe(false);
  });

  it('a truncated value or an unknown version is unreadable, not a mismatch', () => {
    const keyring = parseKeyring(`k1:${newKey()}`);
    const value = createKeyCheckValue(keyring, 'k1');
    expect(verifyKeyCheckValue(keyring, 'k1', value.subarray(0, 40))).toBe('unreadable');
    expect(verifyKeyCheckValue(keyring, 'k1', Buffer.concat([Buffer.from([2]), value.subarray(1)]))).toBe(
      'unreadable',
    );
    expect(verifyKeyCheckValue(keyring, 'k1', Buffer.concat([value, Buffer.from([0])]))).toBe('unreadable');
  });

  // Written by behalf 0.1.0: check values stored by an earlier version must still verify, so the
  // layout, the plaintext and the associated data can never change without a new version byte.
  it('verify a check value written by an earlier behalf (version 1 test vector)', () => {
    const v1 = parseKeyring('v1-key:AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=');
    const vector = Buffer.from(
      '01fdde00ada6ddff8e25e5f87fd690245c3e9a8ec29894cd0f07039fad33400e2895be4786de8aca415999483a',
      'hex',
    );
    expect(verifyKeyCheckValue(v1, 'v1-key', vector)).toBe('match');
  });

  it('a value that authenticates under the key but holds another plaintext is a mismatch', () => {
    const material = Buffer.from(newKey(), 'base64');
    const keyring = parseKeyring(`k1:${material.toString('base64')}`);
    // Made as behalf makes one (same layout and associated data), over other 16 bytes.
    const lp = (field: Buffer) => Buffer.concat([Buffer.from([0, 0, 0, field.length]), field]);
    const nonce = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', material, nonce);
    cipher.setAAD(
      Buffer.concat([lp(Buffer.from('behalf/key-check/v1')), lp(Buffer.from('k1')), lp(Buffer.from([1]))]),
    );
    const forged = Buffer.concat([
      Buffer.from([1]),
      nonce,
      cipher.update('behalf key checK'),
      cipher.final(),
      cipher.getAuthTag(),
    ]);
    expect(verifyKeyCheckValue(keyring, 'k1', forged)).toBe('mismatch');
  });

  it('are only made and checked for a configured key id', () => {
    const keyring = parseKeyring(`k1:${newKey()}`);
    for (const run of [
      () => createKeyCheckValue(keyring, 'k2'),
      () => verifyKeyCheckValue(keyring, 'k2', createKeyCheckValue(keyring, 'k1')),
    ]) {
      expect(run).toThrow(
        expect.objectContaining({ code: 'INTERNAL', message: "No key with id 'k2' is configured." }),
      );
    }
  });
});

function runKeyCheckSuite(name: string, makeStore: () => Promise<Store>): void {
  describe(`verifyKeyring: ${name}`, () => {
    let store: Store;

    beforeEach(async () => {
      store = await makeStore();
    });

    afterEach(async () => {
      await store.close();
    });

    it('the first start records a check value for every configured key id', async () => {
      const keyring = parseKeyring(`k2:${newKey()},k1:${newKey()}`);
      expect(await verifyKeyring(store, keyring, T0)).toEqual({ verified: [], recorded: ['k2', 'k1'] });
      const checks = await store.listKeyChecks();
      expect(checks.map((c) => [c.keyId, c.createdAt])).toEqual([
        ['k1', T0],
        ['k2', T0],
      ]);
      for (const check of checks)
        expect(verifyKeyCheckValue(keyring, check.keyId, check.checkValue)).toBe('match');
    });

    it('the same keys verify on the next start, and nothing is rewritten', async () => {
      const keys = `k1:${newKey()}`;
      await verifyKeyring(store, parseKeyring(keys), T0);
      const before = await store.listKeyChecks();
      expect(await verifyKeyring(store, parseKeyring(keys), T0 + 1000)).toEqual({
        verified: ['k1'],
        recorded: [],
      });
      expect(await store.listKeyChecks()).toEqual(before);
    });

    it('different bytes under a known key id: CONFIG_INVALID naming the id, no key material, nothing written', async () => {
      const right = newKey();
      const wrong = newKey();
      const extra = newKey();
      await verifyKeyring(store, parseKeyring(`k1:${right}`), T0);
      await signInUsers(store, parseKeyring(`k1:${right}`), 3);
      const before = await snapshot(store);

      // A new primary k2 alongside the wrong k1: k2 is not recorded either.
      const error = await errorOf(verifyKeyring(store, parseKeyring(`k2:${extra},k1:${wrong}`), T0 + 1000));
      expect(error.code).toBe('CONFIG_INVALID');
      expect(error.exitCode).toBe(78);
      expect(error.reason).toBe('key_mismatch');
      expect(error.message).not.toContain('\n');
      expect(error.message).toMatch(
        /^Encryption key id 'k1' has different bytes from the key this database was written with under that id; nothing was written\. Restore the original key under 'k1', or give a new key a new id/,
      );
      expect(error.message).not.toContain("'k2'");
      const shown = `${error.message} ${JSON.stringify(error)} ${inspect(error)}`;
      for (const secret of [right, wrong, extra].flatMap(spellings)) expect(shown).not.toContain(secret);

      expect(await snapshot(store)).toEqual(before);
      // And the right key still opens every grant.
      const vault = new Vault(store, parseKeyring(`k1:${right}`));
      expect((await vault.getGrant('user-0', CLIENT))?.refreshToken).toMatch(/^1\/\/0g/);
    });

    it('names every key id whose bytes differ', async () => {
      await verifyKeyring(store, parseKeyring(`k2:${newKey()},k1:${newKey()}`), T0);
      const error = await errorOf(verifyKeyring(store, parseKeyring(`k2:${newKey()},k1:${newKey()}`), T0));
      expect(error.message).toMatch(
        /^Encryption key ids 'k2', 'k1' have different bytes from the keys this database was written with under those ids;/,
      );
      expect(error.details).toEqual({ keyIds: ['k2', 'k1'] });
    });

    it('a new key id is recorded beside the verified ones; retired ids in the database are fine', async () => {
      const k1 = newKey();
      const k2 = newKey();
      await verifyKeyring(store, parseKeyring(`k1:${k1}`), T0);
      expect(await verifyKeyring(store, parseKeyring(`k2:${k2},k1:${k1}`), T0 + 1)).toEqual({
        verified: ['k1'],
        recorded: ['k2'],
      });
      // k1 retired after `behalf keys rotate`: its check stays, and k2 alone verifies.
      expect(await verifyKeyring(store, parseKeyring(`k2:${k2}`), T0 + 2)).toEqual({
        verified: ['k2'],
        recorded: [],
      });
      expect((await store.listKeyChecks()).map((c) => c.keyId)).toEqual(['k1', 'k2']);
    });

    it('a check recorded by a concurrent start is verified, not trusted', async () => {
      const mine = parseKeyring(`k1:${newKey()}`);
      const theirs = parseKeyring(`k1:${newKey()}`);
      // Another instance records its k1 between this one's read and its insert.
      const raced = withAddKeyCheck(store, async (record) => {
        await store.addKeyCheck({
          keyId: 'k1',
          checkValue: createKeyCheckValue(theirs, 'k1'),
          createdAt: T0,
        });
        return store.addKeyCheck(record);
      });
      const error = await errorOf(verifyKeyring(raced, mine, T0));
      expect(error.code).toBe('CONFIG_INVALID');
      expect(error.message).toContain("'k1'");
      const checks = await store.listKeyChecks();
      expect(checks).toHaveLength(1);
      expect(verifyKeyCheckValue(theirs, 'k1', checks[0]!.checkValue)).toBe('match');
    });

    it('a check recorded by a concurrent start with the same key is accepted', async () => {
      const keys = `k1:${newKey()}`;
      const raced = withAddKeyCheck(store, async (record) => {
        await store.addKeyCheck({
          keyId: 'k1',
          checkValue: createKeyCheckValue(parseKeyring(keys), 'k1'),
          createdAt: T0,
        });
        return store.addKeyCheck(record);
      });
      expect(await verifyKeyring(raced, parseKeyring(keys), T0)).toEqual({ verified: [], recorded: ['k1'] });
    });

    it('two first starts at once with different bytes under one id: one wins, the other stops', async () => {
      const results = await Promise.allSettled([
        verifyKeyring(store, parseKeyring(`k1:${newKey()}`), T0),
        verifyKeyring(store, parseKeyring(`k1:${newKey()}`), T0),
      ]);
      expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
      const [rejected] = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
      expect((rejected!.reason as BehalfError).code).toBe('CONFIG_INVALID');
      expect(await store.listKeyChecks()).toHaveLength(1);
    });

    it('an unreadable stored check stops start-up with its own line', async () => {
      await store.addKeyCheck({ keyId: 'k1', checkValue: Buffer.from([9, 9, 9]), createdAt: T0 });
      const error = await errorOf(verifyKeyring(store, parseKeyring(`k1:${newKey()}`), T0));
      expect(error.code).toBe('CONFIG_INVALID');
      expect(error.reason).toBe('key_check_unreadable');
      expect(error.message).toMatch(
        /^The key check stored for encryption key id 'k1' is not one this behalf can read/,
      );
    });

    it('names every key id whose stored check is unreadable', async () => {
      for (const keyId of ['k1', 'k2'])
        await store.addKeyCheck({ keyId, checkValue: Buffer.from([9]), createdAt: T0 });
      const error = await errorOf(verifyKeyring(store, parseKeyring(`k2:${newKey()},k1:${newKey()}`), T0));
      expect(error.message).toBe(
        "The key check stored for encryption key ids 'k2', 'k1' is not one this behalf can read (truncated, or written by a newer behalf); nothing was written. Run the behalf version that wrote it.",
      );
      expect(error.details).toEqual({ keyIds: ['k2', 'k1'] });
    });

    it('gives up on a key id whose check keeps being added and removed, after three tries', async () => {
      let tries = 0;
      // Every insert loses to another start's, whose row is gone again when read back.
      const vanishing = withAddKeyCheck(store, async () => {
        tries++;
        return false;
      });
      const error = await errorOf(verifyKeyring(vanishing, parseKeyring(`k1:${newKey()}`), T0));
      expect(error.code).toBe('INTERNAL');
      expect(error.message).toBe(
        "The key check for key id 'k1' could not be recorded: it kept being added and removed.",
      );
      expect(tries).toBe(3);
    });

    describe('a database written before key checks (no check values yet)', () => {
      it('the wrong bytes for a key id that wrote tokens stop start-up, and no check is recorded', async () => {
        await signInUsers(store, parseKeyring(`k1:${newKey()}`), 4);
        const before = await snapshot(store);
        const error = await errorOf(verifyKeyring(store, parseKeyring(`k1:${newKey()}`), T0));
        expect(error.code).toBe('CONFIG_INVALID');
        expect(error.message).toMatch(/^Encryption key id 'k1' has different bytes/);
        expect(await snapshot(store)).toEqual(before);
      });

      it('the right bytes are recorded, also beside a new key id that wrote nothing yet', async () => {
        const k1 = newKey();
        await signInUsers(store, parseKeyring(`k1:${k1}`), 4);
        expect(await verifyKeyring(store, parseKeyring(`k2:${newKey()},k1:${k1}`), T0)).toEqual({
          verified: [],
          recorded: ['k2', 'k1'],
        });
      });

      it('one damaged row does not make the right key look wrong', async () => {
        const keyring = parseKeyring(`k1:${newKey()}`);
        await signInUsers(store, keyring, 3);
        const first = (await store.getGrant('user-0', CLIENT))!;
        const damaged = Buffer.from(first.refreshTokenCiphertext!);
        damaged[damaged.length - 1]! ^= 1;
        expect(
          await store.replaceCiphertexts(
            'user-0',
            CLIENT,
            { refreshToken: damaged, accessToken: null },
            first.version,
          ),
        ).toBe(true);
        expect(await verifyKeyring(store, keyring, T0)).toEqual({ verified: [], recorded: ['k1'] });
      });

      it('three stored tokens that do not open under a key id make it the wrong key, even if a fourth would', async () => {
        const keyring = parseKeyring(`k1:${newKey()}`);
        await signInUsers(store, keyring, 4);
        // Rows are walked in sub order: user-0, user-1, ... Damaged: the refresh token altered, no access token.
        const damage = async (i: number) => {
          const grant = (await store.getGrant(`user-${i}`, CLIENT))!;
          const damaged = Buffer.from(grant.refreshTokenCiphertext!);
          damaged[damaged.length - 1]! ^= 1;
          expect(
            await store.replaceCiphertexts(
              `user-${i}`,
              CLIENT,
              { refreshToken: damaged, accessToken: null },
              grant.version,
            ),
          ).toBe(true);
        };
        await damage(0);
        await damage(1);
        expect(
          await verifyKeyring(
            withAddKeyCheck(store, async () => true),
            keyring,
            T0,
          ),
        ).toEqual({ verified: [], recorded: ['k1'] });
        await damage(2);
        const error = await errorOf(verifyKeyring(store, keyring, T0));
        expect(error.reason).toBe('key_mismatch');
        expect(await store.listKeyChecks()).toEqual([]);
      });
    });
  });
}

let dir: string;
let counter = 0;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'behalf-key-check-'));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

runKeyCheckSuite('sqlite', () => openSqliteStore(join(dir, `store-${++counter}.db`)));

const server = await postgresForTests('key checks on Postgres');

describe.runIf(server !== undefined)('Postgres', () => {
  let db: TestDatabase;

  beforeAll(async () => {
    db = await createTestDatabase(server!, 'keycheck');
  });

  afterAll(async () => {
    await db?.drop();
  });

  runKeyCheckSuite('postgres', async () => {
    const url = await db.freshSchema();
    await migrateStore(url);
    return openStore(url);
  });
});
