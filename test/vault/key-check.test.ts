/**
 * Issue 11, point 6 ("Wrong key, clear stop"): each encryption key id leaves a check value in the
 * database; a key whose id is known but whose bytes differ stops start-up with one line naming the
 * id, and nothing is written with it. The same tests run on SQLite and on Postgres.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { BehalfError } from '../../src/errors.js';
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

async function errorOf(promise: Promise<unknown>): Promise<BehalfError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(BehalfError);
  return error as BehalfError;
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
    expect(verifyKeyCheckValue(keyring, 'k1', Buffer.concat([Buffer.from([2]), value.subarray(1)]))).toBe('unreadable');
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
      for (const check of checks) expect(verifyKeyCheckValue(keyring, check.keyId, check.checkValue)).toBe('match');
    });

    it('the same keys verify on the next start, and nothing is rewritten', async () => {
      const keys = `k1:${newKey()}`;
      await verifyKeyring(store, parseKeyring(keys), T0);
      const before = await store.listKeyChecks();
      expect(await verifyKeyring(store, parseKeyring(keys), T0 + 1000)).toEqual({ verified: ['k1'], recorded: [] });
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
      expect(error.message).toMatch(/^Encryption key id 'k1' has different bytes from the key this database was written with under that id; nothing was written\. Restore the original key under 'k1', or give a new key a new id/);
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
      expect(error.message).toMatch(/^Encryption key ids 'k2', 'k1' have different bytes from the keys this database was written with under those ids;/);
      expect(error.details).toEqual({ keyIds: ['k2', 'k1'] });
    });

    it('a new key id is recorded beside the verified ones; retired ids in the database are fine', async () => {
      const k1 = newKey();
      const k2 = newKey();
      await verifyKeyring(store, parseKeyring(`k1:${k1}`), T0);
      expect(await verifyKeyring(store, parseKeyring(`k2:${k2},k1:${k1}`), T0 + 1)).toEqual({ verified: ['k1'], recorded: ['k2'] });
      // k1 retired after `behalf keys rotate`: its check stays, and k2 alone verifies.
      expect(await verifyKeyring(store, parseKeyring(`k2:${k2}`), T0 + 2)).toEqual({ verified: ['k2'], recorded: [] });
      expect((await store.listKeyChecks()).map((c) => c.keyId)).toEqual(['k1', 'k2']);
    });

    it('a check recorded by a concurrent start is verified, not trusted', async () => {
      const mine = parseKeyring(`k1:${newKey()}`);
      const theirs = parseKeyring(`k1:${newKey()}`);
      // Another instance records its k1 between this one's read and its insert.
      const raced = withAddKeyCheck(store, async (record) => {
        await store.addKeyCheck({ keyId: 'k1', checkValue: createKeyCheckValue(theirs, 'k1'), createdAt: T0 });
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
        await store.addKeyCheck({ keyId: 'k1', checkValue: createKeyCheckValue(parseKeyring(keys), 'k1'), createdAt: T0 });
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
      expect(error.message).toMatch(/^The key check stored for encryption key id 'k1' is not one this behalf can read/);
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
        expect(await verifyKeyring(store, parseKeyring(`k2:${newKey()},k1:${k1}`), T0)).toEqual({ verified: [], recorded: ['k2', 'k1'] });
      });

      it('one damaged row does not make the right key look wrong', async () => {
        const keyring = parseKeyring(`k1:${newKey()}`);
        await signInUsers(store, keyring, 3);
        const first = (await store.getGrant('user-0', CLIENT))!;
        const damaged = Buffer.from(first.refreshTokenCiphertext!);
        damaged[damaged.length - 1]! ^= 1;
        expect(await store.replaceCiphertexts('user-0', CLIENT, { refreshToken: damaged, accessToken: null }, first.version)).toBe(true);
        expect(await verifyKeyring(store, keyring, T0)).toEqual({ verified: [], recorded: ['k1'] });
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
