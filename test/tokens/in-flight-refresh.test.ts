import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitUntil } from '../support/deadline.js';
import { startHarness, TEST_BACKEND, type Harness } from '../support/harness.js';

/** Google holds the refresh until the test releases it (this is only the longest it could). */
const GOOGLE_HOLD_MS = 120_000;

interface Stats {
  token_requests: { refresh_token: number };
  faults_served: number;
}

/**
 * Issue 11, point 2: no resurrection. A refresh in flight when the user is deleted (or Google
 * says the account was purged) must not put the new token back: the caller gets an error, later
 * calls answer 404 like GET /v1/users/{sub}, the token is in neither memory nor the database, and
 * it is revoked at Google. Runs on SQLite, and on Postgres with BEHALF_TEST_BACKEND=postgres.
 */
describe(`a refresh in flight when the grant goes (${TEST_BACKEND})`, () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness();
  });
  afterAll(async () => {
    await h.close();
  });

  const stats = () => h.control<Stats>('GET', '/emulator/stats');
  const accessToken = (sub: string) => h.service('POST', `/v1/users/${sub}/access-token`);
  const accessTokensOf = async (sub: string) =>
    (
      await h.control<{ tokens: Array<{ type: string; value: string; sub: string }> }>(
        'GET',
        '/emulator/tokens',
      )
    ).tokens
      .filter((t) => t.sub === sub && t.type === 'access_token')
      .map((t) => t.value);
  const acceptedByGoogle = async (token: string) =>
    (await fetch(`${h.emulator.url}/tokeninfo?access_token=${token}`)).status === 200;

  /** A signed-in user whose stored access token is already due (issued for 60 s, inside the 5 min margin). */
  async function userWithDueToken(): Promise<string> {
    await h.control('POST', '/emulator/config', { access_token_lifetime_seconds: 60 });
    try {
      return await h.signedInUser();
    } finally {
      await h.control('POST', '/emulator/config', { access_token_lifetime_seconds: 3599 });
    }
  }

  /**
   * Start an access-token request that refreshes at Google, run `change` while Google holds the
   * refresh request, check that Google has not answered it, and only then let Google answer.
   */
  async function changeWhileRefreshing(sub: string, change: () => Promise<void>): Promise<Response> {
    const before = await stats();
    await h.control('POST', '/emulator/faults', { path: '/token', latency_ms: GOOGLE_HOLD_MS, count: 1 });
    const pending = accessToken(sub);
    await waitUntil(
      'the refresh reached Google',
      async () => (await stats()).faults_served > before.faults_served,
    );
    await change();
    // Google has not answered the refresh yet: the change really landed while it was in flight.
    expect((await stats()).token_requests.refresh_token).toBe(before.token_requests.refresh_token);
    expect(await h.control('POST', '/emulator/faults/release')).toEqual({ released: 1 });
    return pending;
  }

  async function expectGone(sub: string, failed: Response, tokensBefore: string[]): Promise<string[]> {
    // The caller whose refresh raced the change is refused, not handed the new token.
    expect([404, 409]).toContain(failed.status);
    expect(((await failed.json()) as { error: string }).error).toMatch(/^(USER_NOT_FOUND|NEEDS_CONSENT)$/);
    // Nothing answers for the user afterwards: not the token route (memory), not the user route.
    const later = await accessToken(sub);
    expect(later.status).toBe(404);
    expect(await later.json()).toMatchObject({ error: 'USER_NOT_FOUND' });
    expect((await h.service('GET', `/v1/users/${sub}`)).status).toBe(404);
    // Not in the database either.
    expect(await h.runtime.vault.getGrant(sub, h.runtime.behalf.clientId)).toBeNull();
    const { database } = h.runtime;
    const rows =
      database.kind === 'postgres'
        ? Number(
            (await database.query<{ n: string }>('SELECT count(*) AS n FROM grants WHERE sub = $1', [sub]))
              .rows[0]!.n,
          )
        : (
            database.connection.prepare('SELECT count(*) AS n FROM grants WHERE sub = ?').get(sub) as {
              n: number;
            }
          ).n;
    expect(rows).toBe(0);
    // Whatever Google minted in the race was revoked there (behalf revokes it best effort, after
    // answering: wait for it).
    const minted = (await accessTokensOf(sub)).filter((t) => !tokensBefore.includes(t));
    for (const token of minted)
      await waitUntil(
        'Google no longer accepts the raced token',
        async () => !(await acceptedByGoogle(token)),
      );
    return minted;
  }

  it('RISC account-purged while Google answers the refresh: the new token is thrown away and revoked', async () => {
    const sub = await userWithDueToken();
    const tokensBefore = await accessTokensOf(sub);
    const failed = await changeWhileRefreshing(sub, async () => {
      const pushed = await h.control<{ receiver_status: number }>('POST', '/emulator/risc/events', {
        receiver_url: `${h.url}/v1/google/risc`,
        event: 'account-purged',
        sub,
      });
      expect(pushed.receiver_status).toBe(202);
    });
    // A purge changes nothing at Google: its refresh succeeded and minted a token behalf must drop.
    const minted = await expectGone(sub, failed, tokensBefore);
    expect(minted).toHaveLength(1);
  });

  it('DELETE /v1/users/{sub} while Google answers the refresh: nothing comes back', async () => {
    const sub = await userWithDueToken();
    const tokensBefore = await accessTokensOf(sub);
    const failed = await changeWhileRefreshing(sub, async () => {
      expect((await h.service('DELETE', `/v1/users/${sub}`)).status).toBe(200);
    });
    // Deleting revoked the grant at Google first, so the refresh itself was refused there.
    expect(await expectGone(sub, failed, tokensBefore)).toEqual([]);
  });

  it('DELETE while the refresh is in flight and Google applies the revocation late: the token minted anyway is thrown away and revoked', async () => {
    const sub = await userWithDueToken();
    const tokensBefore = await accessTokensOf(sub);
    const failed = await changeWhileRefreshing(sub, async () => {
      // Google's revocation endpoint has not caught up with the grant yet (it answers as for a
      // token it does not know); behalf deletes the user all the same.
      await h.control('POST', '/emulator/faults', {
        path: '/revoke',
        status: 400,
        error: 'invalid_token',
        count: 1,
      });
      const deleted = await h.service('DELETE', `/v1/users/${sub}`);
      expect(deleted.status).toBe(200);
      expect(await deleted.json()).toMatchObject({ deleted: true, revoked_at_google: false });
    });
    const minted = await expectGone(sub, failed, tokensBefore);
    expect(minted).toHaveLength(1);
  });
});
