/**
 * The admin console's repositories (sessions, sweep runs), one contract suite run unchanged on
 * SQLite and Postgres (./admin-stores.test.ts), as the vault's.
 */
import { createHash, randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { AdminSessionStore, SweepRun, SweepRunStore } from '../../src/admin/index.js';
import type { Store } from '../../src/vault/index.js';

export interface AdminStoresWorld {
  sessions: AdminSessionStore;
  sweeps: SweepRunStore;
  /** The vault's store on the same database (API keys, grants). */
  store: Store;
  close(): Promise<void>;
}

const T0 = 1_760_000_000_000;
const CLIENT = 'server-client.apps.googleusercontent.com';
const hash = (label: string) => createHash('sha256').update(label).digest();

export function runAdminStoresContract(name: string, makeWorld: () => Promise<AdminStoresWorld>): void {
  describe(`admin console stores: ${name}`, () => {
    let world: AdminStoresWorld;

    beforeEach(async () => {
      world = await makeWorld();
      await world.store.createApiKey({ id: 'aaaaaaaaaaaa', hash: hash('key a'), name: 'ops', createdAt: T0 });
      await world.store.createApiKey({
        id: 'bbbbbbbbbbbb',
        hash: hash('key b'),
        name: 'billing',
        createdAt: T0,
      });
    });

    afterEach(async () => {
      await world.close();
    });

    describe('sessions', () => {
      it('stores a session under its hash, with its key id and label, and answers null for any other hash', async () => {
        expect(await world.sessions.create(hash('s1'), 'aaaaaaaaaaaa', T0)).toBe(true);
        expect(await world.sessions.get(hash('s1'))).toEqual({
          apiKeyId: 'aaaaaaaaaaaa',
          apiKeyName: 'ops',
          createdAt: T0,
          lastSeenAt: T0,
        });
        expect(await world.sessions.get(hash('s2'))).toBeNull();
      });

      it('opens no session for a key that does not exist (revoked meanwhile)', async () => {
        expect(await world.sessions.create(hash('s1'), 'cccccccccccc', T0)).toBe(false);
        expect(await world.sessions.get(hash('s1'))).toBeNull();
      });

      it('slides last use forward, never back', async () => {
        await world.sessions.create(hash('s1'), 'aaaaaaaaaaaa', T0);
        await world.sessions.touch(hash('s1'), T0 + 5_000);
        await world.sessions.touch(hash('s1'), T0 + 1_000);
        expect(await world.sessions.get(hash('s1'))).toMatchObject({ createdAt: T0, lastSeenAt: T0 + 5_000 });
      });

      it('deletes one session, leaving the others', async () => {
        await world.sessions.create(hash('s1'), 'aaaaaaaaaaaa', T0);
        await world.sessions.create(hash('s2'), 'aaaaaaaaaaaa', T0);
        await world.sessions.delete(hash('s1'));
        expect(await world.sessions.get(hash('s1'))).toBeNull();
        expect(await world.sessions.get(hash('s2'))).not.toBeNull();
      });

      it('deleting an API key deletes its sessions, and only its own', async () => {
        await world.sessions.create(hash('s1'), 'aaaaaaaaaaaa', T0);
        await world.sessions.create(hash('s2'), 'aaaaaaaaaaaa', T0);
        await world.sessions.create(hash('s3'), 'bbbbbbbbbbbb', T0);
        expect(await world.store.deleteApiKey('aaaaaaaaaaaa')).toBe(true);
        expect(await world.sessions.get(hash('s1'))).toBeNull();
        expect(await world.sessions.get(hash('s2'))).toBeNull();
        expect(await world.sessions.get(hash('s3'))).toMatchObject({ apiKeyId: 'bbbbbbbbbbbb' });
        // Gone from the table, not merely hidden: a key created again under the id opens nothing old.
        await world.store.createApiKey({
          id: 'aaaaaaaaaaaa',
          hash: hash('key a2'),
          name: 'ops again',
          createdAt: T0 + 1,
        });
        expect(await world.sessions.get(hash('s1'))).toBeNull();
      });

      it('prunes sessions idle or opened too long ago, and counts them', async () => {
        await world.sessions.create(hash('idle'), 'aaaaaaaaaaaa', T0);
        await world.sessions.create(hash('old'), 'aaaaaaaaaaaa', T0 - 10_000);
        await world.sessions.touch(hash('old'), T0 + 900);
        await world.sessions.create(hash('fresh'), 'aaaaaaaaaaaa', T0 + 500);
        // Idle since before T0 + 100, or opened before T0 - 5_000.
        expect(await world.sessions.prune(T0 + 100, T0 - 5_000)).toBe(2);
        expect(await world.sessions.get(hash('idle'))).toBeNull();
        expect(await world.sessions.get(hash('old'))).toBeNull();
        expect(await world.sessions.get(hash('fresh'))).not.toBeNull();
      });
    });

    describe('sweep runs', () => {
      const run = (startedAt: number, overrides: Partial<SweepRun> = {}): SweepRun => ({
        id: randomUUID(),
        forced: false,
        startedBy: 'aaaaaaaaaaaa',
        total: 10,
        checked: 0,
        healthy: 0,
        refreshed: 0,
        needsConsent: 0,
        unavailable: 0,
        status: 'running',
        startedAt,
        updatedAt: startedAt,
        finishedAt: null,
        ...overrides,
      });

      it('records a sweep and its progress, and lists the latest first', async () => {
        const first = run(T0, { forced: true });
        const second = run(T0 + 1_000);
        await world.sweeps.insert(first);
        await world.sweeps.insert(second);
        const finished: SweepRun = {
          ...first,
          checked: 10,
          healthy: 7,
          refreshed: 3,
          needsConsent: 2,
          unavailable: 1,
          status: 'done',
          updatedAt: T0 + 500,
          finishedAt: T0 + 500,
        };
        await world.sweeps.update(finished);
        expect(await world.sweeps.recent(5)).toEqual([second, finished]);
        expect(await world.sweeps.recent(1)).toEqual([second]);
      });

      it('counts the grants of one client only', async () => {
        expect(await world.sweeps.countGrants(CLIENT)).toBe(0);
        for (const [sub, clientId] of [
          ['u1', CLIENT],
          ['u2', CLIENT],
          ['u3', 'other.apps.googleusercontent.com'],
        ] as const) {
          await world.store.saveSignIn({
            user: {
              sub,
              email: `${sub}@example.com`,
              emailVerified: true,
              name: null,
              givenName: null,
              familyName: null,
              picture: null,
              locale: null,
              hd: null,
            },
            clientId,
            scopes: ['openid'],
            refreshTokenCiphertext: Buffer.from([1, 2, 3]),
            accessTokenCiphertext: Buffer.from([4, 5, 6]),
            accessTokenExpiresAt: T0 + 3_600_000,
            now: T0,
          });
        }
        expect(await world.sweeps.countGrants(CLIENT)).toBe(2);
      });
    });
  });
}
