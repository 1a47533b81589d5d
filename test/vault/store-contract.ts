/**
 * The storage contract suite: every Store backend runs exactly these tests, unchanged
 * (`runStoreContract('postgres', …)` beside `runStoreContract('sqlite', …)`), as better-auth runs
 * one adapter suite against each of its adapters.
 *
 * `makeStore` must return an open, empty store (a fresh database, or a fresh schema) each call;
 * the suite closes it after each test. Ciphertexts here are opaque bytes: the store never sees
 * plaintext, so this suite needs no keys.
 *
 * Ordering note for backends: listGrants pages in (sub, clientId) order compared byte-wise
 * (SQLite's BINARY collation; on Postgres use COLLATE "C").
 */
import { randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BehalfError } from '../../src/errors.js';
import type {
  GrantStatus,
  SignInWrite,
  Store,
  StoredGrant,
  UserProfile,
  PostgresStore,
  SqliteStore,
  UserSearch,
} from '../../src/vault/index.js';
import { userStates } from '../../src/vault/index.js';

const CLIENT = 'server-client.apps.googleusercontent.com';
const OTHER_CLIENT = 'other-client.apps.googleusercontent.com';
const T0 = 1_760_000_000_000;
const HOUR = 3_600_000;

export function profile(sub: string, overrides: Partial<UserProfile> = {}): UserProfile {
  return {
    sub,
    email: `${sub}@example.com`,
    emailVerified: true,
    name: 'Ada Lovelace',
    givenName: 'Ada',
    familyName: 'Lovelace',
    picture: 'https://lh3.googleusercontent.com/a/photo',
    locale: 'en',
    hd: null,
    ...overrides,
  };
}

/** Opaque bytes standing in for an envelope; a leading zero byte checks binary safety. */
function ciphertext(): Buffer {
  return Buffer.concat([Buffer.from([0, 1, 255]), randomBytes(40)]);
}

function signIn(sub: string, overrides: Partial<SignInWrite> = {}): SignInWrite {
  return {
    user: profile(sub),
    clientId: CLIENT,
    scopes: ['openid', 'email', 'profile'],
    refreshTokenCiphertext: ciphertext(),
    accessTokenCiphertext: ciphertext(),
    accessTokenExpiresAt: T0 + HOUR,
    now: T0,
    ...overrides,
  };
}

export function runStoreContract(name: string, makeStore: () => Promise<Store>): void {
  describe(`Store contract: ${name}`, () => {
    let store: Store;

    beforeEach(async () => {
      store = await makeStore();
    });

    afterEach(async () => {
      await store.close();
    });

    async function grant(sub: string, clientId = CLIENT): Promise<StoredGrant> {
      const row = await store.getGrant(sub, clientId);
      expect(row).not.toBeNull();
      return row!;
    }

    it('names its backend', () => {
      expect(['sqlite', 'postgres']).toContain(store.kind);
    });

    it('answers null for a user and grant it does not hold', async () => {
      expect(await store.getUser('nobody')).toBeNull();
      expect(await store.getGrant('nobody', CLIENT)).toBeNull();
    });

    describe('saveSignIn', () => {
      it('stores a first sign-in: the user, and an active grant at version 1 with the ciphertexts byte for byte', async () => {
        const write = signIn('100');
        const saved = await store.saveSignIn(write);
        expect(saved.user).toEqual({ ...write.user, createdAt: T0, updatedAt: T0, lastSignInAt: T0 });
        expect(saved.grant).toEqual({
          sub: '100',
          clientId: CLIENT,
          refreshTokenCiphertext: write.refreshTokenCiphertext,
          accessTokenCiphertext: write.accessTokenCiphertext,
          accessTokenExpiresAt: T0 + HOUR,
          scopes: ['openid', 'email', 'profile'],
          status: 'active',
          version: 1,
          refreshTokenIssuedAt: T0,
          refreshTokenExpiresAt: null,
          createdAt: T0,
          updatedAt: T0,
        });
        expect(await store.getUser('100')).toEqual(saved.user);
        expect(await store.getGrant('100', CLIENT)).toEqual(saved.grant);
        expect(Buffer.isBuffer((await grant('100')).refreshTokenCiphertext)).toBe(true);
      });

      it('keeps null profile fields, non-ASCII text and an empty scope list as given', async () => {
        const user = profile('101', {
          email: null,
          emailVerified: false,
          name: 'Zoë Ñúñez 山田',
          givenName: null,
          familyName: null,
          picture: null,
          locale: null,
          hd: 'example.com',
        });
        const saved = await store.saveSignIn(signIn('101', { user, scopes: [] }));
        expect(saved.user).toMatchObject(user);
        expect(saved.grant.scopes).toEqual([]);
        expect(await store.getUser('101')).toMatchObject(user);
      });

      it('a first sign-in without a refresh token stores a grant that needs consent', async () => {
        const saved = await store.saveSignIn(signIn('102', { refreshTokenCiphertext: undefined }));
        expect(saved.grant.refreshTokenCiphertext).toBeNull();
        expect(saved.grant.refreshTokenIssuedAt).toBeNull();
        expect(saved.grant.status).toBe('needs_consent');
        expect(saved.grant.accessTokenCiphertext).not.toBeNull();
      });

      it('a repeat sign-in without a refresh token keeps the stored one and replaces the rest', async () => {
        const first = signIn('103');
        await store.saveSignIn(first);
        const again = signIn('103', {
          user: profile('103', { name: 'Ada King', email: 'ada@example.org' }),
          refreshTokenCiphertext: undefined,
          scopes: ['openid', 'email', 'profile', 'https://www.googleapis.com/auth/drive.appdata'],
          accessTokenExpiresAt: T0 + 3 * HOUR,
          now: T0 + 2 * HOUR,
        });
        const saved = await store.saveSignIn(again);
        expect(saved.grant.refreshTokenCiphertext).toEqual(first.refreshTokenCiphertext);
        expect(saved.grant.refreshTokenIssuedAt).toBe(T0);
        expect(saved.grant.accessTokenCiphertext).toEqual(again.accessTokenCiphertext);
        expect(saved.grant.accessTokenExpiresAt).toBe(T0 + 3 * HOUR);
        expect(saved.grant.scopes).toEqual(again.scopes);
        expect(saved.grant.status).toBe('active');
        expect(saved.grant.version).toBe(2);
        expect(saved.grant.createdAt).toBe(T0);
        expect(saved.grant.updatedAt).toBe(T0 + 2 * HOUR);
        expect(saved.user).toMatchObject({
          name: 'Ada King',
          email: 'ada@example.org',
          createdAt: T0,
          updatedAt: T0 + 2 * HOUR,
          lastSignInAt: T0 + 2 * HOUR,
        });
        expect(await store.getGrant('103', CLIENT)).toEqual(saved.grant);
      });

      it('a new refresh token replaces the stored one', async () => {
        await store.saveSignIn(signIn('104'));
        const again = signIn('104', { now: T0 + HOUR });
        const saved = await store.saveSignIn(again);
        expect(saved.grant.refreshTokenCiphertext).toEqual(again.refreshTokenCiphertext);
        expect(saved.grant.refreshTokenIssuedAt).toBe(T0 + HOUR);
      });

      it('a new refresh token sets a revoked or needs-consent grant back to active', async () => {
        for (const status of ['revoked', 'needs_consent'] as const) {
          const sub = `105-${status}`;
          await store.saveSignIn(signIn(sub));
          await store.setGrantStatus(sub, CLIENT, status, T0 + 1);
          const saved = await store.saveSignIn(signIn(sub, { now: T0 + HOUR }));
          expect(saved.grant.status).toBe('active');
        }
      });

      it('a repeat sign-in without a refresh token does not revive a revoked or needs-consent grant', async () => {
        for (const status of ['revoked', 'needs_consent'] as const) {
          const sub = `106-${status}`;
          await store.saveSignIn(signIn(sub));
          await store.setGrantStatus(sub, CLIENT, status, T0 + 1);
          const saved = await store.saveSignIn(
            signIn(sub, { refreshTokenCiphertext: undefined, now: T0 + HOUR }),
          );
          expect(saved.grant.status).toBe(status);
          expect(saved.grant.refreshTokenCiphertext).not.toBeNull();
        }
      });

      it('a refresh token older than the stored one does not replace it (racing sign-ins)', async () => {
        const newer = signIn('107', { now: T0 + HOUR });
        await store.saveSignIn(newer);
        const saved = await store.saveSignIn(signIn('107', { now: T0 }));
        expect(saved.grant.refreshTokenCiphertext).toEqual(newer.refreshTokenCiphertext);
        expect(saved.grant.refreshTokenIssuedAt).toBe(T0 + HOUR);
      });

      it('keeps one grant per (user, client)', async () => {
        const a = signIn('108');
        const b = signIn('108', { clientId: OTHER_CLIENT });
        await store.saveSignIn(a);
        await store.saveSignIn(b);
        expect((await grant('108', CLIENT)).refreshTokenCiphertext).toEqual(a.refreshTokenCiphertext);
        expect((await grant('108', OTHER_CLIENT)).refreshTokenCiphertext).toEqual(b.refreshTokenCiphertext);
        expect((await grant('108', OTHER_CLIENT)).version).toBe(1);
      });

      it('concurrent sign-ins carrying refresh tokens, arriving in any order, leave the newest one (and its time)', async () => {
        const writes = Array.from({ length: 20 }, (_, i) => signIn('110', { now: T0 + i * 1000 }));
        // A fixed shuffle: the newest write is neither first nor last to start.
        const order = [7, 19, 3, 12, 0, 15, 9, 1, 18, 5, 11, 2, 16, 8, 13, 4, 17, 6, 14, 10];
        await Promise.all(order.map((i) => store.saveSignIn(writes[i]!)));
        const row = await grant('110');
        expect(row.refreshTokenCiphertext).toEqual(writes[19]!.refreshTokenCiphertext);
        expect(row.refreshTokenIssuedAt).toBe(T0 + 19_000);
        expect(row.version).toBe(20);
        expect(row.status).toBe('active');
      });

      it('concurrent sign-ins of one user all land, each bumping the version once', async () => {
        await Promise.all(
          Array.from({ length: 20 }, (_, i) => store.saveSignIn(signIn('109', { now: T0 + i }))),
        );
        const row = await grant('109');
        expect(row.version).toBe(20);
        expect(row.status).toBe('active');
      });
    });

    describe('refresh token expiry (issue 15, point 3)', () => {
      it('is stored with a new refresh token, kept by a repeat sign-in, replaced by the next new one', async () => {
        await store.saveSignIn(signIn('exp-1', { refreshTokenExpiresAt: T0 + 7 * 24 * HOUR }));
        expect((await grant('exp-1')).refreshTokenExpiresAt).toBe(T0 + 7 * 24 * HOUR);
        await store.saveSignIn(
          signIn('exp-1', { refreshTokenCiphertext: undefined, refreshTokenExpiresAt: null, now: T0 + HOUR }),
        );
        expect((await grant('exp-1')).refreshTokenExpiresAt).toBe(T0 + 7 * 24 * HOUR);
        await store.saveSignIn(signIn('exp-1', { refreshTokenExpiresAt: null, now: T0 + 2 * HOUR }));
        expect((await grant('exp-1')).refreshTokenExpiresAt).toBeNull();
        await store.saveSignIn(signIn('exp-2'));
        expect((await grant('exp-2')).refreshTokenExpiresAt).toBeNull();
      });

      it('counts active grants of the client whose refresh token expires before a time', async () => {
        await store.saveSignIn(signIn('soon', { refreshTokenExpiresAt: T0 + 24 * HOUR }));
        await store.saveSignIn(signIn('later', { refreshTokenExpiresAt: T0 + 30 * 24 * HOUR }));
        await store.saveSignIn(signIn('never'));
        await store.saveSignIn(signIn('other', { clientId: OTHER_CLIENT, refreshTokenExpiresAt: T0 + HOUR }));
        await store.saveSignIn(signIn('dead', { refreshTokenExpiresAt: T0 + HOUR }));
        await store.setGrantStatus('dead', CLIENT, 'needs_consent', T0);
        expect(await store.countExpiringGrants(CLIENT, T0 + 7 * 24 * HOUR)).toBe(1);
        expect(await store.countExpiringGrants(CLIENT, T0 + 31 * 24 * HOUR)).toBe(2);
        expect(await store.countExpiringGrants(CLIENT, T0)).toBe(0);
      });
    });

    describe('saveAccessToken', () => {
      it('caches a new access token and bumps the version', async () => {
        await store.saveSignIn(signIn('200'));
        const token = ciphertext();
        expect(
          await store.saveAccessToken('200', CLIENT, {
            accessTokenCiphertext: token,
            accessTokenExpiresAt: T0 + 2 * HOUR,
            now: T0 + HOUR,
          }),
        ).toBe(true);
        const row = await grant('200');
        expect(row.accessTokenCiphertext).toEqual(token);
        expect(row.accessTokenExpiresAt).toBe(T0 + 2 * HOUR);
        expect(row.version).toBe(2);
        expect(row.updatedAt).toBe(T0 + HOUR);
        expect(row.scopes).toEqual(['openid', 'email', 'profile']);
      });

      it('replaces the scopes only when given', async () => {
        await store.saveSignIn(signIn('201'));
        await store.saveAccessToken('201', CLIENT, {
          accessTokenCiphertext: ciphertext(),
          accessTokenExpiresAt: T0 + HOUR,
          scopes: ['openid'],
          now: T0 + 1,
        });
        expect((await grant('201')).scopes).toEqual(['openid']);
      });

      it('is a compare-and-set with expectedVersion: the current version writes, a stale one does not', async () => {
        await store.saveSignIn(signIn('202'));
        const before = await grant('202');
        const first = ciphertext();
        expect(
          await store.saveAccessToken(
            '202',
            CLIENT,
            { accessTokenCiphertext: first, accessTokenExpiresAt: T0 + 2 * HOUR, now: T0 + 1 },
            before.version,
          ),
        ).toBe(true);
        const stale = ciphertext();
        expect(
          await store.saveAccessToken(
            '202',
            CLIENT,
            { accessTokenCiphertext: stale, accessTokenExpiresAt: T0 + 9 * HOUR, now: T0 + 2 },
            before.version,
          ),
        ).toBe(false);
        const after = await grant('202');
        expect(after.accessTokenCiphertext).toEqual(first);
        expect(after.accessTokenExpiresAt).toBe(T0 + 2 * HOUR);
        expect(after.version).toBe(before.version + 1);
      });

      it('refuses a grant that does not exist or is not active', async () => {
        const write = { accessTokenCiphertext: ciphertext(), accessTokenExpiresAt: T0 + HOUR, now: T0 };
        expect(await store.saveAccessToken('nobody', CLIENT, write)).toBe(false);
        await store.saveSignIn(signIn('203'));
        await store.setGrantStatus('203', CLIENT, 'revoked', T0 + 1);
        expect(await store.saveAccessToken('203', CLIENT, write)).toBe(false);
        expect((await grant('203')).accessTokenCiphertext).toBeNull();
      });
    });

    describe('setGrantStatus', () => {
      it('revoked and needs_consent drop the cached access token but keep the refresh token', async () => {
        for (const status of ['revoked', 'needs_consent'] as const) {
          const sub = `300-${status}`;
          const write = signIn(sub);
          await store.saveSignIn(write);
          await store.setGrantStatus(sub, CLIENT, status, T0 + 5);
          const row = await grant(sub);
          expect(row).toMatchObject({
            status,
            accessTokenCiphertext: null,
            accessTokenExpiresAt: null,
            version: 2,
            updatedAt: T0 + 5,
          });
          expect(row.refreshTokenCiphertext).toEqual(write.refreshTokenCiphertext);
        }
      });

      it('active keeps the cached access token', async () => {
        const write = signIn('301');
        await store.saveSignIn(write);
        await store.setGrantStatus('301', CLIENT, 'active', T0 + 5);
        expect((await grant('301')).accessTokenCiphertext).toEqual(write.accessTokenCiphertext);
      });

      it('does nothing for a grant that does not exist, and only touches the named client', async () => {
        await expect(store.setGrantStatus('nobody', CLIENT, 'revoked', T0)).resolves.toBeUndefined();
        await store.saveSignIn(signIn('302'));
        await store.saveSignIn(signIn('302', { clientId: OTHER_CLIENT }));
        await store.setGrantStatus('302', OTHER_CLIENT, 'revoked', T0 + 1);
        expect((await grant('302', CLIENT)).status).toBe('active');
      });

      it('rejects an unknown status', async () => {
        await store.saveSignIn(signIn('303'));
        await expect(store.setGrantStatus('303', CLIENT, 'paused' as never, T0)).rejects.toMatchObject({
          code: 'INVALID_REQUEST',
          message: 'Unknown grant status; expected one of active, revoked, needs_consent.',
        });
        expect((await grant('303')).status).toBe('active');
      });
    });

    describe('replaceCiphertexts', () => {
      it('rewrites both ciphertexts at the expected version and bumps it', async () => {
        await store.saveSignIn(signIn('400'));
        const refreshToken = ciphertext();
        const accessToken = ciphertext();
        expect(await store.replaceCiphertexts('400', CLIENT, { refreshToken, accessToken }, 1)).toBe(true);
        const row = await grant('400');
        expect(row).toMatchObject({
          refreshTokenCiphertext: refreshToken,
          accessTokenCiphertext: accessToken,
          accessTokenExpiresAt: T0 + HOUR,
          version: 2,
          status: 'active',
        });
      });

      it('refuses a stale version and leaves the row alone', async () => {
        const write = signIn('401');
        await store.saveSignIn(write);
        await store.saveAccessToken('401', CLIENT, {
          accessTokenCiphertext: ciphertext(),
          accessTokenExpiresAt: T0 + HOUR,
          now: T0 + 1,
        });
        expect(
          await store.replaceCiphertexts('401', CLIENT, { refreshToken: ciphertext(), accessToken: null }, 1),
        ).toBe(false);
        const row = await grant('401');
        expect(row.refreshTokenCiphertext).toEqual(write.refreshTokenCiphertext);
        expect(row.version).toBe(2);
      });

      it('a null access token also clears its expiry; a missing grant answers false', async () => {
        await store.saveSignIn(signIn('402'));
        expect(
          await store.replaceCiphertexts('402', CLIENT, { refreshToken: ciphertext(), accessToken: null }, 1),
        ).toBe(true);
        expect(await grant('402')).toMatchObject({ accessTokenCiphertext: null, accessTokenExpiresAt: null });
        expect(
          await store.replaceCiphertexts('nobody', CLIENT, { refreshToken: null, accessToken: null }, 1),
        ).toBe(false);
      });
    });

    describe('deleteUser', () => {
      it('deletes the user and every grant of theirs, and nobody else', async () => {
        await store.saveSignIn(signIn('500'));
        await store.saveSignIn(signIn('500', { clientId: OTHER_CLIENT }));
        await store.saveSignIn(signIn('501'));
        expect(await store.deleteUser('500')).toBe(true);
        expect(await store.getUser('500')).toBeNull();
        expect(await store.getGrant('500', CLIENT)).toBeNull();
        expect(await store.getGrant('500', OTHER_CLIENT)).toBeNull();
        expect(await store.getUser('501')).not.toBeNull();
        expect(await store.getGrant('501', CLIENT)).not.toBeNull();
        expect((await store.listGrants({ limit: 10 })).grants.map((g) => g.sub)).toEqual(['501']);
      });

      it('answers false when there was no such user', async () => {
        expect(await store.deleteUser('nobody')).toBe(false);
      });

      it('a user signed in again after deletion starts afresh', async () => {
        await store.saveSignIn(signIn('502'));
        await store.deleteUser('502');
        const saved = await store.saveSignIn(signIn('502', { now: T0 + HOUR }));
        expect(saved.grant.version).toBe(1);
        expect(saved.user.createdAt).toBe(T0 + HOUR);
      });
    });

    describe('listGrants', () => {
      const keys = [
        ['1001', CLIENT],
        ['1001', OTHER_CLIENT],
        ['1002', CLIENT],
        ['1003', CLIENT],
        ['1004', OTHER_CLIENT],
        ['1005', CLIENT],
        ['1006', CLIENT],
      ] as const;

      beforeEach(async () => {
        // Inserted out of order: the order comes from the store.
        for (const [sub, clientId] of [...keys].reverse()) await store.saveSignIn(signIn(sub, { clientId }));
        await store.setGrantStatus('1002', CLIENT, 'needs_consent', T0 + 1);
        await store.setGrantStatus('1005', CLIENT, 'revoked', T0 + 1);
      });

      it('walks every grant once, in (sub, clientId) order, a page at a time', async () => {
        const seen: string[] = [];
        const sizes: number[] = [];
        let after: { sub: string; clientId: string } | undefined;
        for (let pages = 0; pages < 10; pages++) {
          const page = await store.listGrants({ limit: 3, ...(after === undefined ? {} : { after }) });
          sizes.push(page.grants.length);
          seen.push(...page.grants.map((g) => `${g.sub} ${g.clientId}`));
          if (page.next === null) break;
          after = page.next;
        }
        const expected = [...keys]
          .map(([sub, clientId]) => `${sub} ${clientId}`)
          .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
        expect(seen).toEqual(expected);
        expect(sizes).toEqual([3, 3, 1]);
      });

      it('says there is no next page when the last page is exactly full', async () => {
        const page = await store.listGrants({ limit: keys.length });
        expect(page.grants).toHaveLength(keys.length);
        expect(page.next).toBeNull();
        const first = await store.listGrants({ limit: 6 });
        expect(first.next).toEqual({ sub: '1005', clientId: CLIENT });
        const last = await store.listGrants({ limit: 6, after: first.next! });
        expect(last.grants.map((g) => g.sub)).toEqual(['1006']);
        expect(last.next).toBeNull();
      });

      it('filters by status, across pages', async () => {
        const active = await store.listGrants({ limit: 2, status: 'active' });
        expect(active.grants.every((g) => g.status === 'active')).toBe(true);
        const rest = await store.listGrants({ limit: 10, status: 'active', after: active.next! });
        expect([...active.grants, ...rest.grants].map((g) => g.sub)).toEqual([
          '1001',
          '1001',
          '1003',
          '1004',
          '1006',
        ]);
        expect((await store.listGrants({ limit: 10, status: 'revoked' })).grants.map((g) => g.sub)).toEqual([
          '1005',
        ]);
        expect(
          (await store.listGrants({ limit: 10, status: 'needs_consent' })).grants.map((g) => g.sub),
        ).toEqual(['1002']);
      });

      it('returns the rows as stored, ciphertexts included', async () => {
        const page = await store.listGrants({ limit: 1 });
        expect(page.grants[0]).toEqual(await store.getGrant('1001', OTHER_CLIENT));
      });

      it('an `after` past the end gives an empty last page', async () => {
        expect(await store.listGrants({ limit: 5, after: { sub: '9999', clientId: CLIENT } })).toEqual({
          grants: [],
          next: null,
        });
      });

      it('rejects a limit below 1', async () => {
        await expect(store.listGrants({ limit: 0 })).rejects.toMatchObject({
          code: 'INVALID_REQUEST',
          message: 'listGrants: limit must be a whole number of at least 1.',
        });
      });

      it('rejects an unknown status filter, naming the statuses', async () => {
        await expect(store.listGrants({ limit: 1, status: 'paused' as never })).rejects.toMatchObject({
          code: 'INVALID_REQUEST',
          message: 'listGrants: unknown status; expected one of active, revoked, needs_consent.',
        });
      });
    });

    describe('listGrants order', () => {
      it('is byte order, whatever the locale: digits, upper case, punctuation, lower case, then non-ASCII', async () => {
        const subs = ['a', 'ä', 'B', '_x', 'Z1', '10', '9', 'b', 'A'];
        for (const sub of subs) await store.saveSignIn(signIn(sub));
        const walked: string[] = [];
        let after: { sub: string; clientId: string } | undefined;
        for (;;) {
          const page = await store.listGrants({ limit: 2, ...(after === undefined ? {} : { after }) });
          walked.push(...page.grants.map((g) => g.sub));
          if (page.next === null) break;
          after = page.next;
        }
        expect(walked).toEqual(['10', '9', 'A', 'B', 'Z1', '_x', 'a', 'b', 'ä']);
      });
    });

    describe('API keys', () => {
      it('stores a record and finds it by id, hash byte for byte', async () => {
        const record = { id: 'abc123def456', hash: randomBytes(32), name: 'backend', createdAt: T0 };
        await store.createApiKey(record);
        expect(await store.findApiKey('abc123def456')).toEqual(record);
        expect(await store.findApiKey('000000000000')).toBeNull();
      });

      it('refuses a second key with the same id, keeping the first', async () => {
        const record = { id: 'abc123def457', hash: randomBytes(32), name: 'one', createdAt: T0 };
        await store.createApiKey(record);
        const error = await store
          .createApiKey({ ...record, hash: randomBytes(32), name: 'two' })
          .catch((e: unknown) => e);
        expect(error).toBeInstanceOf(BehalfError);
        expect(error).toMatchObject({
          code: 'INVALID_REQUEST',
          reason: 'duplicate_id',
          message: 'An API key with this id already exists.',
        });
        expect(await store.findApiKey(record.id)).toEqual(record);
      });

      it('lists keys oldest first without their hashes, and deletes one by id', async () => {
        await store.createApiKey({
          id: 'bbbbbbbbbbbb',
          hash: randomBytes(32),
          name: 'second',
          createdAt: T0 + 1,
        });
        await store.createApiKey({ id: 'aaaaaaaaaaaa', hash: randomBytes(32), name: 'first', createdAt: T0 });
        await store.createApiKey({
          id: 'cccccccccccc',
          hash: randomBytes(32),
          name: 'third',
          createdAt: T0 + 1,
        });
        expect(await store.listApiKeys()).toEqual([
          { id: 'aaaaaaaaaaaa', name: 'first', createdAt: T0, lastUsedAt: null },
          { id: 'bbbbbbbbbbbb', name: 'second', createdAt: T0 + 1, lastUsedAt: null },
          { id: 'cccccccccccc', name: 'third', createdAt: T0 + 1, lastUsedAt: null },
        ]);
        expect(await store.deleteApiKey('bbbbbbbbbbbb')).toBe(true);
        expect(await store.deleteApiKey('bbbbbbbbbbbb')).toBe(false);
        expect(await store.findApiKey('bbbbbbbbbbbb')).toBeNull();
        expect((await store.listApiKeys()).map((k) => k.id)).toEqual(['aaaaaaaaaaaa', 'cccccccccccc']);
      });

      it('records when a key was last used, never moving it back', async () => {
        await store.createApiKey({ id: 'aaaaaaaaaaaa', hash: randomBytes(32), name: 'used', createdAt: T0 });
        await store.recordApiKeyUse('aaaaaaaaaaaa', T0 + 5_000);
        await store.recordApiKeyUse('aaaaaaaaaaaa', T0 + 1_000);
        await store.recordApiKeyUse('000000000000', T0 + 9_000);
        expect(await store.listApiKeys()).toEqual([
          { id: 'aaaaaaaaaaaa', name: 'used', createdAt: T0, lastUsedAt: T0 + 5_000 },
        ]);
      });
    });

    describe('searchUsers (admin console, issue 13)', () => {
      const emails: Array<[string, string | null]> = [
        ['u01', 'alice@example.com'],
        ['u02', 'Alice.Smith@Example.com'],
        ['u03', 'alicia@example.org'],
        ['u04', 'bob@example.com'],
        ['u05', null],
        ['u06', 'ALBERT@example.com'],
        ['u07', 'zoe@example.com'],
        ['u08', 'ålice@example.com'],
        ['u09', 'alice@example.com'],
      ];

      async function seed(): Promise<void> {
        for (const [sub, email] of emails)
          await store.saveSignIn(signIn(sub, { user: profile(sub, { email }) }));
        await store.setGrantStatus('u02', CLIENT, 'needs_consent', T0 + 1);
        await store.revokeGrant('u04', CLIENT, T0 + 1);
        await store.setGrantStatus('u09', CLIENT, 'needs_consent', T0 + 1);
        // A grant for another client neither shows nor filters.
        await store.saveSignIn(
          signIn('u07', { clientId: OTHER_CLIENT, user: profile('u07', { email: 'zoe@example.com' }) }),
        );
        await store.setGrantStatus('u07', OTHER_CLIENT, 'revoked', T0 + 1);
      }

      async function walk(
        search: Omit<UserSearch, 'after' | 'limit' | 'clientId'>,
        limit: number,
      ): Promise<string[]> {
        const subs: string[] = [];
        let after: string | undefined;
        for (let pages = 0; pages < 50; pages++) {
          const page = await store.searchUsers({
            clientId: CLIENT,
            limit,
            ...search,
            ...(after === undefined ? {} : { after }),
          });
          expect(page.users.length).toBeLessThanOrEqual(limit);
          subs.push(...page.users.map((u) => u.user.sub));
          if (page.next === null) return subs;
          after = page.next;
        }
        throw new Error('the pages never ended');
      }

      it('lists every user by email (ASCII case folded, no email first, then sub), in keyset pages of any size', async () => {
        await seed();
        // Byte order: '.' (0x2e) sorts before '@' (0x40), and 'å' after every ASCII letter.
        const all = ['u05', 'u06', 'u02', 'u01', 'u09', 'u03', 'u04', 'u07', 'u08'];
        for (const limit of [1, 2, 4, 100]) expect(await walk({}, limit)).toEqual(all);
      });

      it('finds users by email prefix, in any ASCII case, and pages within the prefix', async () => {
        await seed();
        expect(await walk({ emailPrefix: 'ALICE' }, 1)).toEqual(['u02', 'u01', 'u09']);
        expect(await walk({ emailPrefix: 'ali' }, 2)).toEqual(['u02', 'u01', 'u09', 'u03']);
        expect(await walk({ emailPrefix: 'alice.smith@example.com' }, 5)).toEqual(['u02']);
        expect(await walk({ emailPrefix: 'å' }, 5)).toEqual(['u08']);
        expect(await walk({ emailPrefix: 'nobody' }, 5)).toEqual([]);
        // A prefix is a prefix: not a substring, and no pattern characters.
        expect(await walk({ emailPrefix: 'example' }, 5)).toEqual([]);
        expect(await walk({ emailPrefix: 'a%' }, 5)).toEqual([]);
        expect(await walk({ emailPrefix: 'a_ice' }, 5)).toEqual([]);
      });

      it("filters by the grant's status for the client, alone or with a prefix", async () => {
        await seed();
        expect(await walk({ status: 'needs_consent' }, 1)).toEqual(['u02', 'u09']);
        expect(await walk({ status: 'revoked' }, 1)).toEqual(['u04']);
        expect((await walk({ status: 'active' }, 3)).sort()).toEqual([
          'u01',
          'u03',
          'u05',
          'u06',
          'u07',
          'u08',
        ]);
        expect(await walk({ emailPrefix: 'alice', status: 'needs_consent' }, 1)).toEqual(['u02', 'u09']);
        expect(await walk({ emailPrefix: 'alice', status: 'revoked' }, 1)).toEqual([]);
      });

      it("answers each user's profile and grant status and scopes, and null for a user without a grant for the client", async () => {
        await seed();
        await store.saveSignIn(
          signIn('u10', { clientId: OTHER_CLIENT, user: profile('u10', { email: 'other@example.com' }) }),
        );
        const page = await store.searchUsers({ clientId: CLIENT, limit: 10, emailPrefix: 'other@' });
        expect(page).toEqual({ users: [{ user: await store.getUser('u10'), grant: null }], next: null });
        const [entry] = (await store.searchUsers({ clientId: CLIENT, limit: 1, emailPrefix: 'alice.smith' }))
          .users;
        expect(entry).toEqual({
          user: await store.getUser('u02'),
          grant: { status: 'needs_consent', scopes: ['openid', 'email', 'profile'] },
        });
      });

      it('refuses a malformed cursor, or one from another search, and bad options', async () => {
        await seed();
        const first = await store.searchUsers({ clientId: CLIENT, limit: 1, emailPrefix: 'ali' });
        const byStatus = await store.searchUsers({ clientId: CLIENT, limit: 1, status: 'needs_consent' });
        const refusals = [
          store.searchUsers({ clientId: CLIENT, limit: 1, after: 'not a cursor' }),
          store.searchUsers({
            clientId: CLIENT,
            limit: 1,
            after: Buffer.from('["e",1,2]').toString('base64url'),
          }),
          store.searchUsers({ clientId: CLIENT, limit: 1, after: Buffer.from('{').toString('base64url') }),
          store.searchUsers({ clientId: CLIENT, limit: 1, emailPrefix: 'bob', after: first.next! }),
          store.searchUsers({ clientId: CLIENT, limit: 1, after: byStatus.next! }),
          store.searchUsers({ clientId: CLIENT, limit: 0 }),
          store.searchUsers({ clientId: CLIENT, limit: 1, status: 'gone' as GrantStatus }),
          store.searchUsers({ clientId: CLIENT, limit: 1, emailPrefix: 'a'.repeat(321) }),
        ];
        for (const refused of refusals)
          await expect(refused).rejects.toMatchObject({ code: 'INVALID_REQUEST' });
      });

      /** A cursor as the store writes them: base64url of a JSON array. */
      const cursorOf = (json: string) => Buffer.from(json, 'utf8').toString('base64url');
      const BAD_CURSOR = {
        code: 'INVALID_REQUEST',
        reason: 'bad_cursor',
        message: 'The page cursor is malformed, or belongs to another search.',
      };

      it('refuses every malformed or foreign cursor as bad_cursor with one message, never another error', async () => {
        await seed();
        const valid = (await store.searchUsers({ clientId: CLIENT, limit: 1 })).next!;
        // 2055 characters that decode to a well-formed cursor (a 320-character key spelt with JSON escapes).
        const long = cursorOf(`["e","${'\\u0061'.repeat(241)}${'a'.repeat(79)}","zzzzz"]`);
        expect(long.length).toBeGreaterThan(2048);
        const byEmail = [
          'not a cursor',
          // Characters outside base64url around a valid cursor: the decoder would skip them.
          ` ${valid}`,
          `${valid}.`,
          long,
          cursorOf('{'),
          cursorOf('"e"'),
          cursorOf('["e",null,"u01"]'),
          cursorOf('["e",["a"],"u01"]'),
          cursorOf(`["e","${'a'.repeat(321)}","u01"]`),
          cursorOf('["e","a","u01","x"]'),
          cursorOf('["e","a",""]'),
          cursorOf('["x","a","u01"]'),
          // A status-order cursor in an email-order search.
          cursorOf('["s","u01"]'),
        ];
        for (const after of byEmail)
          await expect(store.searchUsers({ clientId: CLIENT, limit: 1, after }), after).rejects.toMatchObject(
            BAD_CURSOR,
          );
        const byStatus = [
          cursorOf('["s","u01","x"]'),
          cursorOf('["s",""]'),
          cursorOf('["x","u01"]'),
          cursorOf('["e","a",""]'),
          cursorOf('["e","a","u01"]'),
        ];
        for (const after of byStatus)
          await expect(
            store.searchUsers({ clientId: CLIENT, limit: 1, status: 'active', after }),
            after,
          ).rejects.toMatchObject(BAD_CURSOR);
      });

      it('takes a cursor of up to 2048 characters whose parts are up to 320 characters', async () => {
        await seed();
        // Exactly 2048 characters (1536 bytes of JSON), with a key of exactly 320 characters.
        const longest = cursorOf(`["e","${'\\u0061'.repeat(240)}${'a'.repeat(80)}","zzzzz"]`);
        expect(longest.length).toBe(2048);
        // Every user whose lower-cased email sorts after 'aaa…a' (everyone but the one without an email).
        const after = ['u06', 'u02', 'u01', 'u09', 'u03', 'u04', 'u07', 'u08'];
        const page = await store.searchUsers({ clientId: CLIENT, limit: 20, after: longest });
        expect(page.users.map((u) => u.user.sub)).toEqual(after);
        const plain = cursorOf(`["e","${'a'.repeat(320)}","u01"]`);
        expect(
          (await store.searchUsers({ clientId: CLIENT, limit: 20, after: plain })).users.map(
            (u) => u.user.sub,
          ),
        ).toEqual(after);
        // A status-order cursor: the users after its sub.
        expect(
          (
            await store.searchUsers({
              clientId: CLIENT,
              limit: 20,
              status: 'active',
              after: cursorOf('["s","u05"]'),
            })
          ).users.map((u) => u.user.sub),
        ).toEqual(['u06', 'u07', 'u08']);
      });

      it('refuses bad options with messages naming the limit, the statuses and the prefix length', async () => {
        await expect(store.searchUsers({ clientId: CLIENT, limit: 0 })).rejects.toMatchObject({
          code: 'INVALID_REQUEST',
          message: 'searchUsers: limit must be a whole number of at least 1.',
        });
        await expect(
          store.searchUsers({ clientId: CLIENT, limit: 1, status: 'gone' as GrantStatus }),
        ).rejects.toMatchObject({
          code: 'INVALID_REQUEST',
          message: 'searchUsers: unknown status; expected one of active, revoked, needs_consent.',
        });
        await expect(
          store.searchUsers({ clientId: CLIENT, limit: 1, emailPrefix: 'a'.repeat(321) }),
        ).rejects.toMatchObject({
          code: 'INVALID_REQUEST',
          message: 'An email prefix is at most 320 characters.',
        });
        // 320 characters is still a prefix.
        expect(await store.searchUsers({ clientId: CLIENT, limit: 1, emailPrefix: 'a'.repeat(320) })).toEqual(
          {
            users: [],
            next: null,
          },
        );
      });

      it('says there is no next page when the last page is exactly full', async () => {
        await seed();
        const all = await store.searchUsers({ clientId: CLIENT, limit: 9 });
        expect(all.users).toHaveLength(9);
        expect(all.next).toBeNull();
        const alice = await store.searchUsers({ clientId: CLIENT, limit: 3, emailPrefix: 'alice' });
        expect(alice.users.map((u) => u.user.sub)).toEqual(['u02', 'u01', 'u09']);
        expect(alice.next).toBeNull();
        const consent = await store.searchUsers({ clientId: CLIENT, limit: 2, status: 'needs_consent' });
        expect(consent.users.map((u) => u.user.sub)).toEqual(['u02', 'u09']);
        expect(consent.next).toBeNull();
      });

      it('takes %, _ and \\ in a prefix literally, as the characters they are', async () => {
        for (const [sub, email] of [
          ['w1', '50%_off\\deal@example.com'],
          ['w2', '50percent@example.com'],
          ['w3', '50x_off@example.com'],
          ['w4', '5_@example.com'],
        ] as const)
          await store.saveSignIn(signIn(sub, { user: profile(sub, { email }) }));
        expect(await walk({ emailPrefix: '50%' }, 5)).toEqual(['w1']);
        expect(await walk({ emailPrefix: '50%_off\\' }, 5)).toEqual(['w1']);
        expect(await walk({ emailPrefix: '5_' }, 5)).toEqual(['w4']);
        expect(await walk({ emailPrefix: '50' }, 5)).toEqual(['w1', 'w2', 'w3']);
      });

      it('answers an empty scope list as empty', async () => {
        await store.saveSignIn(
          signIn('s0', { scopes: [], user: profile('s0', { email: 'noscope@example.com' }) }),
        );
        expect(
          (await store.searchUsers({ clientId: CLIENT, limit: 1, emailPrefix: 'noscope' })).users,
        ).toEqual([{ user: await store.getUser('s0'), grant: { status: 'active', scopes: [] } }]);
      });
    });

    describe('userStates (admin console, issue 13)', () => {
      /** Write a Cross-Account Protection state the way the RISC receiver keeps it. */
      async function setSecurity(sub: string, state: string, at: number): Promise<void> {
        const sql = 'INSERT INTO user_security (sub, state, at) VALUES ($1, $2, $3)';
        const backend = store as SqliteStore | PostgresStore;
        if (backend.kind === 'postgres') await backend.database.query(sql, [sub, state, at]);
        else backend.database.connection.prepare(sql.replace(/\$\d/g, '?')).run(sub, state, at);
      }

      it("answers each listed user's offline access, refresh-token expiry and security state, leaving out unknown users", async () => {
        await store.saveSignIn(signIn('st1', { refreshTokenExpiresAt: T0 + 7 * 24 * HOUR }));
        await store.saveSignIn(signIn('st2'));
        await store.setGrantStatus('st2', CLIENT, 'needs_consent', T0 + 1);
        await store.saveSignIn(signIn('st3', { clientId: OTHER_CLIENT }));
        await store.saveSignIn(signIn('st4', { refreshTokenCiphertext: undefined }));
        await setSecurity('st1', 'account_disabled', T0 + 5);
        await setSecurity('st3', 'sessions_revoked', T0 + 6);
        const database = (store as SqliteStore | PostgresStore).database;
        const states = await userStates(database, CLIENT, ['st1', 'st2', 'st3', 'st4', 'nobody']);
        expect(new Map([...states].sort(([a], [b]) => (a < b ? -1 : 1)))).toEqual(
          new Map([
            [
              'st1',
              {
                offlineAccess: true,
                refreshTokenExpiresAt: T0 + 7 * 24 * HOUR,
                security: { state: 'account_disabled', at: T0 + 5 },
              },
            ],
            ['st2', { offlineAccess: false, refreshTokenExpiresAt: null, security: null }],
            // No grant for this client: no offline access, but the account's state still shows.
            [
              'st3',
              {
                offlineAccess: false,
                refreshTokenExpiresAt: null,
                security: { state: 'sessions_revoked', at: T0 + 6 },
              },
            ],
            ['st4', { offlineAccess: false, refreshTokenExpiresAt: null, security: null }],
          ]),
        );
        expect(await userStates(database, CLIENT, [])).toEqual(new Map());
      });
    });

    describe('refresh records (admin console, issue 13)', () => {
      it('keeps the last refresh of a grant and how it ended; an older record never replaces a newer one', async () => {
        await store.saveSignIn(signIn('r1'));
        expect(await store.getLastRefresh('r1', CLIENT)).toBeNull();
        await store.recordRefresh('r1', CLIENT, { at: T0 + 10, outcome: 'ok', reason: null });
        await store.recordRefresh('r1', CLIENT, {
          at: T0 + 20,
          outcome: 'NEEDS_CONSENT',
          reason: 'invalid_grant',
        });
        await store.recordRefresh('r1', CLIENT, { at: T0 + 15, outcome: 'ok', reason: null });
        expect(await store.getLastRefresh('r1', CLIENT)).toEqual({
          at: T0 + 20,
          outcome: 'NEEDS_CONSENT',
          reason: 'invalid_grant',
        });
        expect(await store.getLastRefresh('r1', OTHER_CLIENT)).toBeNull();
      });

      it('records nothing for a grant that does not exist, and forgets the record with the grant', async () => {
        await store.recordRefresh('nobody', CLIENT, { at: T0, outcome: 'ok', reason: null });
        expect(await store.getLastRefresh('nobody', CLIENT)).toBeNull();
        await store.saveSignIn(signIn('r2'));
        await store.recordRefresh('r2', CLIENT, { at: T0 + 10, outcome: 'ok', reason: null });
        expect(await store.deleteUser('r2')).toBe(true);
        await store.saveSignIn(signIn('r2', { now: T0 + 100 }));
        expect(await store.getLastRefresh('r2', CLIENT)).toBeNull();
      });

      it('saveAccessToken records the refresh that got the token in the same write, whether or not the token is stored', async () => {
        await store.saveSignIn(signIn('r4'));
        const { version } = (await store.getGrant('r4', CLIENT))!;
        expect(await store.acquireRefreshLease('r4', CLIENT, 'me', 10_000)).toBe(true);
        const write = {
          accessTokenCiphertext: randomBytes(40),
          accessTokenExpiresAt: T0 + 3_600_000,
          now: T0 + 10,
          releaseLeaseOf: 'me',
          refreshed: { at: T0 + 10, outcome: 'ok', reason: null },
        };
        // A stale version: the token is not stored, the lease is given back, the refresh recorded.
        expect(await store.saveAccessToken('r4', CLIENT, write, version + 1)).toBe(false);
        expect(await store.getLastRefresh('r4', CLIENT)).toEqual({
          at: T0 + 10,
          outcome: 'ok',
          reason: null,
        });
        expect(await store.acquireRefreshLease('r4', CLIENT, 'other', 10_000)).toBe(true);
        await store.releaseRefreshLease('r4', CLIENT, 'other');

        const later = { ...write, now: T0 + 20, refreshed: { at: T0 + 20, outcome: 'ok', reason: null } };
        expect(await store.saveAccessToken('r4', CLIENT, later, version)).toBe(true);
        expect(await store.getLastRefresh('r4', CLIENT)).toEqual({
          at: T0 + 20,
          outcome: 'ok',
          reason: null,
        });
        // An older record never replaces a newer one, here as in recordRefresh; nor without a lease to give back.
        const { releaseLeaseOf: _none, ...withoutLease } = write;
        expect(await store.saveAccessToken('r4', CLIENT, withoutLease)).toBe(true);
        expect(await store.getLastRefresh('r4', CLIENT)).toEqual({
          at: T0 + 20,
          outcome: 'ok',
          reason: null,
        });
        // No record for a grant that does not exist.
        expect(await store.saveAccessToken('nobody', CLIENT, write)).toBe(false);
        expect(await store.getLastRefresh('nobody', CLIENT)).toBeNull();
      });

      it('a sign-out keeps the record (the grant stays, revoked)', async () => {
        await store.saveSignIn(signIn('r3'));
        await store.recordRefresh('r3', CLIENT, { at: T0 + 10, outcome: 'ok', reason: null });
        await store.revokeGrant('r3', CLIENT, T0 + 20);
        expect(await store.getLastRefresh('r3', CLIENT)).toEqual({
          at: T0 + 10,
          outcome: 'ok',
          reason: null,
        });
      });
    });

    describe('refresh leases (cross-process single-flight)', () => {
      it('are exclusive: of many concurrent takers exactly one wins', async () => {
        await store.saveSignIn(signIn('300'));
        const results = await Promise.all(
          Array.from({ length: 50 }, (_, i) =>
            store.acquireRefreshLease('300', CLIENT, `holder-${i}`, 10_000),
          ),
        );
        expect(results.filter(Boolean)).toHaveLength(1);
      });

      it('are per grant, need a grant, and are released only by their holder', async () => {
        await store.saveSignIn(signIn('301'));
        await store.saveSignIn(signIn('302'));
        expect(await store.acquireRefreshLease('301', CLIENT, 'a', 10_000)).toBe(true);
        expect(await store.acquireRefreshLease('302', CLIENT, 'b', 10_000)).toBe(true);
        expect(await store.acquireRefreshLease('nobody', CLIENT, 'c', 10_000)).toBe(false);
        await store.releaseRefreshLease('301', CLIENT, 'b');
        expect(await store.acquireRefreshLease('301', CLIENT, 'b', 10_000)).toBe(false);
        await store.releaseRefreshLease('301', CLIENT, 'a');
        expect(await store.acquireRefreshLease('301', CLIENT, 'b', 10_000)).toBe(true);
      });

      it('run out: an expired lease can be taken over', async () => {
        await store.saveSignIn(signIn('303'));
        // Long enough that a busy machine still asks again inside it.
        expect(await store.acquireRefreshLease('303', CLIENT, 'crashed', 1_000)).toBe(true);
        expect(await store.acquireRefreshLease('303', CLIENT, 'waiter', 10_000)).toBe(false);
        await new Promise((resolve) => setTimeout(resolve, 1_100));
        expect(await store.acquireRefreshLease('303', CLIENT, 'waiter', 10_000)).toBe(true);
      });

      it('an expired lease is taken over by exactly one of many concurrent takers', async () => {
        await store.saveSignIn(signIn('304'));
        expect(await store.acquireRefreshLease('304', CLIENT, 'crashed', 50)).toBe(true);
        await new Promise((resolve) => setTimeout(resolve, 120));
        const results = await Promise.all(
          Array.from({ length: 50 }, (_, i) =>
            store.acquireRefreshLease('304', CLIENT, `waiter-${i}`, 10_000),
          ),
        );
        expect(results.filter(Boolean)).toHaveLength(1);
      });

      it('are given back by the access-token write of their holder, even when its version check fails', async () => {
        await store.saveSignIn(signIn('309'));
        const version = (await store.getGrant('309', CLIENT))!.version;
        const write = {
          accessTokenCiphertext: ciphertext(),
          accessTokenExpiresAt: T0 + 2 * HOUR,
          now: T0 + 1,
        };
        expect(await store.acquireRefreshLease('309', CLIENT, 'a', 10_000)).toBe(true);
        // Another holder's write leaves a's lease alone.
        expect(await store.saveAccessToken('309', CLIENT, { ...write, releaseLeaseOf: 'b' }, version)).toBe(
          true,
        );
        expect(await store.acquireRefreshLease('309', CLIENT, 'b', 10_000)).toBe(false);
        // a's write, stale by now, is refused but still gives the lease back.
        expect(await store.saveAccessToken('309', CLIENT, { ...write, releaseLeaseOf: 'a' }, version)).toBe(
          false,
        );
        expect(await store.acquireRefreshLease('309', CLIENT, 'b', 10_000)).toBe(true);
        expect(
          await store.saveAccessToken('309', CLIENT, { ...write, releaseLeaseOf: 'b' }, version + 1),
        ).toBe(true);
        expect(await store.getGrant('309', CLIENT)).toMatchObject({ version: version + 2 });
        expect(await store.acquireRefreshLease('309', CLIENT, 'c', 10_000)).toBe(true);
      });

      it('are not re-entrant: a holder with a live lease does not get it again until released', async () => {
        await store.saveSignIn(signIn('306'));
        expect(await store.acquireRefreshLease('306', CLIENT, 'a', 10_000)).toBe(true);
        expect(await store.acquireRefreshLease('306', CLIENT, 'a', 10_000)).toBe(false);
        await store.releaseRefreshLease('306', CLIENT, 'a');
        await store.releaseRefreshLease('306', CLIENT, 'a');
        expect(await store.acquireRefreshLease('306', CLIENT, 'a', 10_000)).toBe(true);
      });

      it('are per (user, client)', async () => {
        await store.saveSignIn(signIn('307'));
        await store.saveSignIn(signIn('307', { clientId: OTHER_CLIENT }));
        expect(await store.acquireRefreshLease('307', CLIENT, 'a', 10_000)).toBe(true);
        expect(await store.acquireRefreshLease('307', OTHER_CLIENT, 'b', 10_000)).toBe(true);
        expect(await store.acquireRefreshLease('307', 'unknown-client', 'c', 10_000)).toBe(false);
      });

      it('go with a deleted user: after signing in again, a new lease can be taken at once', async () => {
        await store.saveSignIn(signIn('308'));
        expect(await store.acquireRefreshLease('308', CLIENT, 'a', 60_000)).toBe(true);
        expect(await store.deleteUser('308')).toBe(true);
        expect(await store.acquireRefreshLease('308', CLIENT, 'b', 60_000)).toBe(false);
        await store.saveSignIn(signIn('308'));
        expect(await store.acquireRefreshLease('308', CLIENT, 'b', 60_000)).toBe(true);
      });

      it('are renewed only by their holder, for ttl from now', async () => {
        await store.saveSignIn(signIn('311'));
        expect(await store.renewRefreshLease('311', CLIENT, 'a', 60_000)).toBe(false);
        expect(await store.acquireRefreshLease('311', CLIENT, 'a', 10_000)).toBe(true);
        expect(await store.renewRefreshLease('311', CLIENT, 'b', 60_000)).toBe(false);
        expect(await store.renewRefreshLease('311', CLIENT, 'a', 60_000)).toBe(true);
        // The renewed lease is still held: nobody else takes it.
        expect(await store.acquireRefreshLease('311', CLIENT, 'b', 10_000)).toBe(false);
        await store.releaseRefreshLease('311', CLIENT, 'a');
        expect(await store.renewRefreshLease('311', CLIENT, 'a', 60_000)).toBe(false);
      });

      it('need a whole, positive number of milliseconds', async () => {
        await store.saveSignIn(signIn('309'));
        for (const ttl of [0, -5, 1.5, Number.NaN]) {
          await expect(store.acquireRefreshLease('309', CLIENT, 'a', ttl)).rejects.toMatchObject({
            code: 'INVALID_REQUEST',
            message: 'A refresh lease needs a whole number of milliseconds of at least 1.',
          });
        }
        expect(await store.acquireRefreshLease('309', CLIENT, 'a', 10_000)).toBe(true);
        // One millisecond is the least lease there is.
        await store.saveSignIn(signIn('310'));
        expect(await store.acquireRefreshLease('310', CLIENT, 'a', 1)).toBe(true);
      });
    });

    describe('close', () => {
      it('can be called twice, and later calls reject rather than throw', async () => {
        await store.close();
        await store.close();
        const pending = store.getUser('100');
        expect(pending).toBeInstanceOf(Promise);
        await expect(pending).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
      });
    });
  });
}
