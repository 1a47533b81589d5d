import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { warnAboutExpiringGrants } from '../../src/tokens/index.js';
import { SIGNIN_SCOPES, startHarness, type Harness } from '../support/harness.js';

const WEEK_S = 604_799;

/**
 * Issue 15, point 3, end to end: a Testing-mode client's grants and time-based access expire.
 * behalf stores the expiry, shows it, lists it in the sweep, warns at start-up, and once it has
 * passed answers NEEDS_CONSENT (grant_expired) without asking Google.
 */
describe('expiring grants through behalf', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness();
  });
  afterAll(async () => {
    await h.close();
  });

  const refreshes = async (sub: string) =>
    (await h.control<{ refreshes_by_sub: Record<string, number> }>('GET', '/emulator/stats'))
      .refreshes_by_sub[sub] ?? 0;
  const userGrant = async (sub: string) =>
    ((await (await h.service('GET', `/v1/users/${sub}`)).json()) as { grant: Record<string, any> }).grant;

  it('a Testing-mode grant: expiry stored and shown, swept, warned about; after 7 days NEEDS_CONSENT without a call to Google', async () => {
    await h.control('POST', '/emulator/config', { publishing_status: 'testing' });
    const signedInAt = h.clock.now();
    const sub = await h.signedInUser();
    await h.control('POST', '/emulator/config', { publishing_status: 'production' });

    const grant = await userGrant(sub);
    expect(grant.status).toBe('active');
    const expiresAt = Date.parse(grant.offline_access_expires_at);
    expect(expiresAt).toBeGreaterThanOrEqual(signedInAt + WEEK_S * 1000 - 1000);
    expect(expiresAt).toBeLessThanOrEqual(h.clock.now() + WEEK_S * 1000);

    // The list shows it too.
    const list = (await (await h.service('GET', '/v1/users?limit=100')).json()) as {
      users: Array<{ user: { sub: string }; grant: Record<string, unknown> }>;
    };
    expect(list.users.find((u) => u.user.sub === sub)?.grant.offline_access_expires_at).toBe(
      grant.offline_access_expires_at,
    );

    // Start-up in production says how many grants expire within 7 days.
    const warnings: Array<{ fields: Record<string, unknown>; message: string }> = [];
    const count = await warnAboutExpiringGrants({
      store: h.runtime.store,
      clientId: h.config.google.clientId,
      clock: h.clock,
      logger: { warn: (fields, message) => warnings.push({ fields, message }) },
    });
    expect(count).toBeGreaterThanOrEqual(1);
    expect(warnings[0]?.message).toMatch(/Testing/);

    // The sweep lists it among the grants that expire.
    const report = await h.runtime.behalf.sweep();
    expect(report.expiring).toContainEqual({ sub, refreshTokenExpiresAt: expiresAt });

    // 7 days later: behalf does not ask Google, and says why.
    h.clock.advance(WEEK_S + 1);
    const before = await refreshes(sub);
    const response = await h.service('POST', `/v1/users/${sub}/access-token`);
    expect(response.status).toBe(409);
    expect(await response.json()).toMatchObject({ error: 'NEEDS_CONSENT', reason: 'grant_expired' });
    expect(await refreshes(sub)).toBe(before);
    expect((await userGrant(sub)).status).toBe('needs_consent');
  });

  it('time-based access: the sweep marks the grant needs_consent once it passes, without a refresh attempt', async () => {
    const { sub } = await h.control<{ sub: string }>('POST', '/emulator/users', {
      email: `timed-${Date.now()}@example.com`,
    });
    const { code } = await h.control<{ code: string }>('POST', '/emulator/codes', {
      sub,
      client_id: h.emulator.clients.apps.android,
      scope: SIGNIN_SCOPES,
      refresh_token_lifetime_seconds: 1800,
    });
    expect((await h.signIn(code)).status).toBe(201);
    expect(Date.parse((await userGrant(sub)).offline_access_expires_at)).toBeLessThanOrEqual(
      h.clock.now() + 1_800_000,
    );

    h.clock.advance(1800);
    const before = await refreshes(sub);
    const report = await h.runtime.behalf.sweep();
    expect(report.needsConsent).toContain(sub);
    expect(report.expiring.map((e) => e.sub)).not.toContain(sub);
    expect(await refreshes(sub)).toBe(before);
    expect((await userGrant(sub)).status).toBe('needs_consent');
  });
});
