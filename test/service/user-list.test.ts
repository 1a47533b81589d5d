import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHarness, TEST_BACKEND, type Harness } from '../support/harness.js';

const USERS = 10_000;
const T0 = Date.UTC(2025, 0, 1);

interface Seeded {
  sub: string;
  email: string | null;
  status: 'active' | 'revoked' | 'needs_consent' | null;
}

/** Seeded users: mixed-case emails, some without one, every status, some without a grant. */
function seededUsers(): Seeded[] {
  return Array.from({ length: USERS }, (_, i) => ({
    sub: `1${String(i).padStart(20, '0')}`,
    email: i % 17 === 0 ? null : `${i % 2 === 0 ? 'User' : 'user'}${i}@Example.com`,
    status: i % 13 === 0 ? null : i % 7 === 0 ? 'needs_consent' : i % 11 === 0 ? 'revoked' : 'active',
  }));
}

/** Written straight into the database: 10,000 sign-ins through the emulator would take minutes. */
async function seed(h: Harness, users: Seeded[]): Promise<void> {
  const { database } = h.runtime;
  const clientId = h.runtime.behalf.clientId;
  const withGrant = users.filter((u) => u.status !== null);
  if (database.kind === 'sqlite') {
    const db = database.connection;
    const user = db.prepare(
      `INSERT INTO users (sub, email, email_verified, name, given_name, family_name, picture, locale, hd,
        created_at, updated_at, last_sign_in_at) VALUES (?, ?, 1, 'Seeded', NULL, NULL, NULL, NULL, NULL, ?, ?, ?)`,
    );
    const grant = db.prepare(
      `INSERT INTO grants (sub, client_id, refresh_token, access_token, access_token_expires_at, scopes, status,
        version, refresh_token_issued_at, created_at, updated_at) VALUES (?, ?, NULL, NULL, NULL, 'openid email', ?, 1, NULL, ?, ?)`,
    );
    db.transaction(() => {
      for (const u of users) user.run(u.sub, u.email, T0, T0, T0);
      for (const u of withGrant) grant.run(u.sub, clientId, u.status, T0, T0);
    })();
    return;
  }
  await database.query(
    `INSERT INTO users (sub, email, email_verified, name, created_at, updated_at, last_sign_in_at)
      SELECT sub, email, true, 'Seeded', $3, $3, $3 FROM unnest($1::text[], $2::text[]) AS t(sub, email)`,
    [users.map((u) => u.sub), users.map((u) => u.email), T0],
  );
  await database.query(
    `INSERT INTO grants (sub, client_id, scopes, status, version, created_at, updated_at)
      SELECT sub, $3, ARRAY['openid', 'email'], status, 1, $4, $4 FROM unnest($1::text[], $2::text[]) AS t(sub, status)`,
    [withGrant.map((u) => u.sub), withGrant.map((u) => u.status), clientId, T0],
  );
  // Statistics for the new rows, as autovacuum would gather: without them the planner guesses.
  await database.query('ANALYZE users, grants');
}

/**
 * Issue 12, point 4: GET /v1/users pages through every user exactly once (keyset pages of the
 * admin console's search), on SQLite and, in the test:postgres pass, on Postgres.
 */
describe(`GET /v1/users over ${USERS} users (${TEST_BACKEND})`, () => {
  let h: Harness;
  let users: Seeded[];
  let real: string;
  beforeAll(async () => {
    h = await startHarness();
    real = await h.signedInUser();
    users = seededUsers();
    await seed(h, users);
  }, 120_000);
  afterAll(async () => {
    await h?.close();
  });

  async function page(query: string): Promise<{ status: number; body: any }> {
    const response = await h.service('GET', `/v1/users${query}`);
    return { status: response.status, body: await response.json() };
  }

  async function walk(filters: Record<string, string>, limit: number): Promise<string[]> {
    const subs: string[] = [];
    let cursor: string | null = null;
    do {
      const query = new URLSearchParams({ ...filters, limit: String(limit) });
      if (cursor !== null) query.set('cursor', cursor);
      const { status, body } = await page(`?${query}`);
      expect(status).toBe(200);
      expect(body.users.length).toBeLessThanOrEqual(limit);
      subs.push(...body.users.map((u: { user: { sub: string } }) => u.user.sub));
      cursor = body.next_cursor;
    } while (cursor !== null);
    return subs;
  }

  it('returns every user exactly once, in pages of up to 200', async () => {
    const subs = await walk({}, 200);
    expect(subs).toHaveLength(USERS + 1);
    expect(new Set(subs).size).toBe(USERS + 1);
    expect(new Set(subs)).toEqual(new Set([real, ...users.map((u) => u.sub)]));
  }, 120_000);

  it('filters by grant status and by email prefix (ASCII case ignored), each user once', async () => {
    const consent = await walk({ status: 'needs_consent' }, 137);
    const expected = users.filter((u) => u.status === 'needs_consent').map((u) => u.sub);
    expect(consent).toHaveLength(expected.length);
    expect(new Set(consent)).toEqual(new Set(expected));

    const prefixed = await walk({ email: 'USER12', status: 'active' }, 7);
    const expectedPrefixed = users
      .filter((u) => u.email?.toLowerCase().startsWith('user12') && u.status === 'active')
      .map((u) => u.sub);
    expect(expectedPrefixed.length).toBeGreaterThan(50);
    expect(prefixed.sort()).toEqual(expectedPrefixed.sort());
  }, 120_000);

  it('answers each user as GET /v1/users/{sub} does, never a token', async () => {
    const one = (await (await h.service('GET', `/v1/users/${real}`)).json()) as { user: { email: string } };
    const { body } = await page(`?email=${encodeURIComponent(one.user.email)}`);
    expect(body.users).toEqual([one]);
    expect(body.next_cursor).toBeNull();
    expect(JSON.stringify(body)).not.toMatch(/ya29\.|1\/\/|access_token|refresh_token/);
    const first = await page('');
    expect(first.body.users).toHaveLength(50);
  });

  it('refuses a bad limit or status, and a cursor that is altered or from another search', async () => {
    for (const query of [
      '?limit=0',
      '?limit=201',
      '?limit=abc',
      '?status=gone',
      `?email=${'a'.repeat(321)}`,
    ]) {
      expect(await page(query)).toMatchObject({
        status: 400,
        body: { error: 'INVALID_REQUEST', reason: 'bad_query' },
      });
    }
    const { body } = await page('?limit=2');
    const cursor: string = body.next_cursor;
    const flipped = `${cursor.slice(0, 5)}${cursor[5] === 'A' ? 'B' : 'A'}${cursor.slice(6)}`;
    for (const bad of [flipped, `${cursor}x`, cursor.split('.')[0]!, 'not a cursor', '.']) {
      expect(await page(`?limit=2&cursor=${encodeURIComponent(bad)}`)).toMatchObject({
        status: 400,
        body: { error: 'INVALID_REQUEST', reason: 'bad_cursor' },
      });
    }
    expect(await page(`?limit=2&status=active&cursor=${encodeURIComponent(cursor)}`)).toMatchObject({
      status: 400,
      body: { reason: 'bad_cursor' },
    });
    expect((await page(`?limit=2&cursor=${encodeURIComponent(cursor)}`)).status).toBe(200);
    expect((await fetch(`${h.url}/v1/users`)).status).toBe(401);
  });
});
