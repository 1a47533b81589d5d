import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase, openPostgresDatabase, type Database } from '../../src/database/index.js';
import {
  countGrantsByStatus,
  migrateStore,
  PostgresStore,
  SqliteStore,
  type SignInWrite,
  type Store,
} from '../../src/vault/index.js';
import { createTestDatabase, postgresForTests, type TestDatabase } from '../support/postgres.js';
import { profile } from './store-contract.js';

/**
 * Issue 12, point 2: `behalf_grants{status}` reads counts that triggers keep, instead of counting
 * a million grants per scrape. They must equal a real count after every kind of change, on both
 * backends.
 */
const CLIENT = 'c.apps.googleusercontent.com';
const OTHER = 'o.apps.googleusercontent.com';
const T0 = 1_760_000_000_000;

function signIn(sub: string, clientId = CLIENT, refresh = true): SignInWrite {
  return {
    user: profile(sub),
    clientId,
    scopes: ['openid'],
    refreshTokenCiphertext: refresh ? randomBytes(40) : undefined,
    accessTokenCiphertext: randomBytes(40),
    accessTokenExpiresAt: T0 + 3_600_000,
    now: T0,
  };
}

async function realCounts(database: Database): Promise<Record<string, number>> {
  const sql = 'SELECT status, COUNT(*) AS n FROM grants GROUP BY status';
  const rows =
    database.kind === 'sqlite'
      ? (database.connection.prepare(sql).all() as Array<{ status: string; n: number }>)
      : (await database.query<{ status: string; n: number }>(sql)).rows;
  const counts: Record<string, number> = { active: 0, revoked: 0, needs_consent: 0 };
  for (const row of rows) counts[row.status] = Number(row.n);
  return counts;
}

function runGrantCounts(name: string, open: () => Promise<Database>): void {
  it(`${name}: counts follow sign-ins, status changes, revocations, deletions and concurrent writers`, async () => {
    const database = await open();
    const store: Store = database.kind === 'sqlite' ? new SqliteStore(database) : new PostgresStore(database);
    try {
      const expectCounts = async (expected: Record<string, number>) => {
        expect(await countGrantsByStatus(database)).toEqual(expected);
        expect(await realCounts(database)).toEqual(expected);
      };
      await expectCounts({ active: 0, revoked: 0, needs_consent: 0 });
      await Promise.all(Array.from({ length: 20 }, (_, i) => store.saveSignIn(signIn(`u${i}`))));
      await store.saveSignIn(signIn('u0', OTHER));
      await expectCounts({ active: 21, revoked: 0, needs_consent: 0 });
      await store.saveSignIn(signIn('u0')); // a repeat sign-in: no change of status
      await store.setGrantStatus('u1', CLIENT, 'needs_consent', T0);
      await store.setGrantStatus('u1', CLIENT, 'needs_consent', T0); // no change
      await store.revokeGrant('u2', CLIENT, T0);
      await store.revokeGrant('u3', CLIENT, T0);
      await store.saveSignIn(signIn('u3')); // a new refresh token restores it
      await store.saveAccessToken('u4', CLIENT, {
        accessTokenCiphertext: randomBytes(40),
        accessTokenExpiresAt: T0 + 1,
        now: T0,
      });
      await store.deleteUser('u0'); // two grants
      await store.deleteUser('u2');
      await expectCounts({ active: 17, revoked: 0, needs_consent: 1 });
      await Promise.all(Array.from({ length: 10 }, (_, i) => store.revokeGrant(`u${i + 5}`, CLIENT, T0)));
      await expectCounts({ active: 7, revoked: 10, needs_consent: 1 });
    } finally {
      await database.close();
    }
  });
}

describe('grant counts on SQLite', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'behalf-counts-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });
  runGrantCounts('sqlite', () => openDatabase(`sqlite:${join(dir, 'behalf.db')}`));
});

const server = await postgresForTests('grant counts on Postgres');

describe.runIf(server !== undefined)('grant counts on Postgres', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase(server!, 'counts');
  });
  afterAll(async () => {
    await db?.drop();
  });
  const migrated = async () => {
    const url = await db.freshSchema();
    await migrateStore(url);
    return url;
  };
  runGrantCounts('postgres', async () => openDatabase(await migrated(), { postgres: { poolMax: 8 } }));

  it('postgres: the counting rows of connections that ended are folded into one per status', async () => {
    const url = await db.freshSchema();
    await migrateStore(url);
    const first = await openPostgresDatabase(url);
    const store = new PostgresStore(first);
    await store.saveSignIn(signIn('a'));
    await store.saveSignIn(signIn('b'));
    await first.close(); // its connections end; their counting rows stay until folded
    const schema = new URL(url).searchParams.get('options')!.replace('-c search_path=', '');
    const slots = async () =>
      (await db.query(`SELECT slot FROM ${schema}.grant_counts WHERE slot <> 0`)).rows.length;
    expect(await slots()).toBeGreaterThan(0);
    const second = await openDatabase(url);
    try {
      expect(await countGrantsByStatus(second)).toEqual({ active: 2, revoked: 0, needs_consent: 0 });
      expect(await slots()).toBe(0);
    } finally {
      await second.close();
    }
  });
});
