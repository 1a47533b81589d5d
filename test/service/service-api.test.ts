import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHarness, type Harness } from '../support/harness.js';

/** Issue 3: the service API for the app's own backend. */
describe('service API', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness();
  });
  afterAll(async () => {
    await h.close();
  });

  const signedIn = () => h.signedInUser();

  it('refuses requests without a valid API key', async () => {
    const sub = await signedIn();
    const none = await fetch(`${h.url}/v1/users/${sub}`);
    expect(none.status).toBe(401);
    expect(await none.json()).toMatchObject({ error: 'UNAUTHENTICATED' });
    const wrong = await fetch(`${h.url}/v1/users/${sub}`, {
      headers: { authorization: `Bearer ${h.apiKey.slice(0, -2)}xx` },
    });
    expect(wrong.status).toBe(401);
  });

  it('GET /v1/users/{sub} answers the profile, scopes and grant status', async () => {
    const sub = await signedIn();
    const response = await h.service('GET', `/v1/users/${sub}`);
    expect(response.status).toBe(200);
    const body = (await response.json()) as Record<string, any>;
    expect(body.user.sub).toBe(sub);
    expect(body.grant).toMatchObject({ status: 'active', offline_access: true });
    expect(body.grant.scopes).toContain('openid');
    expect((await h.service('GET', '/v1/users/nobody')).status).toBe(404);
  });

  it('POST /v1/users/{sub}/access-token refreshes after the clock advances', async () => {
    const sub = await signedIn();
    const first = (await (await h.service('POST', `/v1/users/${sub}/access-token`)).json()) as Record<
      string,
      any
    >;
    expect(first.token_type).toBe('Bearer');
    const before = await h.control<{ refreshes_by_sub: Record<string, number> }>('GET', '/emulator/stats');
    expect(before.refreshes_by_sub[sub] ?? 0).toBe(0);

    h.clock.advance(3600);
    const second = (await (await h.service('POST', `/v1/users/${sub}/access-token`)).json()) as Record<
      string,
      any
    >;
    expect(second.access_token).not.toBe(first.access_token);
    expect(second.expires_in).toBeGreaterThan(3000);
    const after = await h.control<{ refreshes_by_sub: Record<string, number> }>('GET', '/emulator/stats');
    expect(after.refreshes_by_sub[sub]).toBe(1);

    // The new token works at Google.
    const drive = await fetch(`${h.emulator.url}/drive/v3/files?spaces=appDataFolder`, {
      headers: { authorization: `Bearer ${second.access_token}` },
    });
    expect(drive.status).toBe(200);
  });

  it('a grant revoked at Google gives NEEDS_CONSENT (409) and is marked needs_consent', async () => {
    const sub = await signedIn();
    await h.control('POST', '/emulator/grants/revoke', { sub });
    h.clock.advance(3600);
    const response = await h.service('POST', `/v1/users/${sub}/access-token`);
    expect(response.status).toBe(409);
    expect(await response.json()).toMatchObject({ error: 'NEEDS_CONSENT' });
    const user = (await (await h.service('GET', `/v1/users/${sub}`)).json()) as Record<string, any>;
    expect(user.grant.status).toBe('needs_consent');
    // Not retried again at Google: the grant is not used any more.
    const stats = await h.control<{ refreshes_by_sub: Record<string, number> }>('GET', '/emulator/stats');
    const refreshes = stats.refreshes_by_sub[sub];
    expect((await h.service('POST', `/v1/users/${sub}/access-token`)).status).toBe(409);
    const later = await h.control<{ refreshes_by_sub: Record<string, number> }>('GET', '/emulator/stats');
    expect(later.refreshes_by_sub[sub]).toBe(refreshes);

    // Signing in again with consent brings the grant back.
    const code = await h.mintCode(sub, { prompt: 'consent' });
    const again = (await (await h.signIn(code)).json()) as Record<string, any>;
    expect(again.grant).toMatchObject({
      status: 'active',
      offline_access: true,
      refresh_token_received: true,
    });
    expect((await h.service('POST', `/v1/users/${sub}/access-token`)).status).toBe(200);
  });

  it('DELETE /v1/users/{sub} revokes at Google and deletes what is stored', async () => {
    const sub = await signedIn();
    const issued = await h.control<{ tokens: Array<{ type: string; value: string; sub?: string }> }>(
      'GET',
      '/emulator/tokens',
    );
    const refreshToken = issued.tokens.find((t) => t.sub === sub && t.type === 'refresh_token')?.value;
    expect(refreshToken).toBeDefined();

    const response = await h.service('DELETE', `/v1/users/${sub}`);
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ deleted: true, revoked_at_google: true });
    expect((await h.service('GET', `/v1/users/${sub}`)).status).toBe(404);
    expect((await h.service('DELETE', `/v1/users/${sub}`)).status).toBe(404);

    const { clientId, clientSecret } = h.emulator.clients.server;
    const refresh = await fetch(`${h.emulator.url}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'refresh_token',
        refresh_token: refreshToken!,
        client_id: clientId,
        client_secret: clientSecret,
      }),
    });
    expect(refresh.status).toBe(400);
    expect(await refresh.json()).toMatchObject({ error: 'invalid_grant' });
  });

  it('POST /v1/users/{sub}/sign-out revokes at Google and erases the tokens, keeping the profile', async () => {
    const sub = await signedIn();
    const response = await h.service('POST', `/v1/users/${sub}/sign-out`);
    expect(await response.json()).toEqual({ signed_out: true, revoked_at_google: true });
    const user = (await (await h.service('GET', `/v1/users/${sub}`)).json()) as Record<string, any>;
    expect(user.grant).toMatchObject({ status: 'revoked', offline_access: false });
    expect((await h.service('POST', `/v1/users/${sub}/access-token`)).status).toBe(409);
    const grant = await h.runtime.vault.getGrant(sub, h.emulator.clients.server.clientId);
    expect(grant).toMatchObject({ refreshToken: null, accessToken: null });
  });

  it('POST /v1/id-tokens/verify answers verified claims and grant status, or 401 with a reason', async () => {
    const sub = await signedIn();
    const { id_token: good } = await h.control<{ id_token: string }>('POST', '/emulator/id-tokens', {
      sub,
      azp: h.emulator.clients.apps.ios,
    });
    const ok = await h.service('POST', '/v1/id-tokens/verify', { id_token: good });
    expect(ok.status).toBe(200);
    const body = (await ok.json()) as Record<string, any>;
    expect(body.claims).toMatchObject({
      sub,
      aud: h.emulator.clients.server.clientId,
      azp: h.emulator.clients.apps.ios,
    });
    expect(body.grant).toMatchObject({ status: 'active' });

    const { id_token: otherAud } = await h.control<{ id_token: string }>('POST', '/emulator/id-tokens', {
      sub,
      aud: h.emulator.clients.apps.android,
    });
    const wrongAud = await h.service('POST', '/v1/id-tokens/verify', { id_token: otherAud });
    expect(wrongAud.status).toBe(401);
    expect(await wrongAud.json()).toMatchObject({ error: 'ID_TOKEN_INVALID', reason: 'bad_audience' });

    h.clock.advance(2 * 3600);
    const expired = await h.service('POST', '/v1/id-tokens/verify', { id_token: good });
    expect(expired.status).toBe(401);
    expect(await expired.json()).toMatchObject({ error: 'ID_TOKEN_INVALID', reason: 'expired' });
  });

  // Issue 16: the route must pass the nonce on to the verifier; nothing failed when it dropped it.
  it('POST /v1/id-tokens/verify with a nonce: only an ID token carrying that nonce passes', async () => {
    const sub = await signedIn();
    const mint = async (nonce?: string) =>
      (
        await h.control<{ id_token: string }>('POST', '/emulator/id-tokens', {
          sub,
          ...(nonce === undefined ? {} : { nonce }),
        })
      ).id_token;
    const verify = (idToken: string, nonce?: string) =>
      h.service('POST', '/v1/id-tokens/verify', {
        id_token: idToken,
        ...(nonce === undefined ? {} : { nonce }),
      });
    const withNonce = await mint('n-0S6_WzA2Mj');

    const matching = await verify(withNonce, 'n-0S6_WzA2Mj');
    expect(matching.status).toBe(200);
    expect(((await matching.json()) as { claims: { sub: string } }).claims.sub).toBe(sub);

    const wrong = await verify(withNonce, 'n-another-request');
    expect(wrong.status).toBe(401);
    expect(await wrong.json()).toMatchObject({ error: 'ID_TOKEN_INVALID', reason: 'nonce_mismatch' });

    const missing = await verify(await mint(), 'n-0S6_WzA2Mj');
    expect(missing.status).toBe(401);
    expect(await missing.json()).toMatchObject({ error: 'ID_TOKEN_INVALID', reason: 'nonce_mismatch' });
  });
});

describe('azp policy', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness();
  });
  afterAll(async () => {
    await h.close();
  });

  it('a code from an app client that is not allowed is refused (wrong azp)', async () => {
    await h.close();
    h = await startHarness({
      env: { BEHALF_APP_CLIENT_IDS: 'only-this-one-123.apps.googleusercontent.com' },
    });
    const { sub, code } = await h.newUserWithCode({ platform: 'android' });
    const response = await h.signIn(code);
    expect(response.status).toBe(401);
    expect(await response.json()).toMatchObject({ error: 'ID_TOKEN_INVALID', reason: 'azp_not_allowed' });
    expect((await h.service('GET', `/v1/users/${sub}`)).status).toBe(404);
  });
});
