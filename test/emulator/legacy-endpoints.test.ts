import { OAuth2Client } from 'google-auth-library';
import { google } from 'googleapis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFixture, type EmulatorFixture } from './support.js';

/**
 * Issue 15, point 6: the legacy userinfo / tokeninfo paths answer the legacy shapes (googleapis'
 * `oauth2('v2')` client reads them), the current paths keep the OpenID Connect ones, and the access
 * token may be the `access_token` parameter.
 */
describe('legacy userinfo and tokeninfo', () => {
  let f: EmulatorFixture;
  let sub: string;
  let email: string;
  let tokens: { access_token: string; id_token: string };

  beforeAll(async () => {
    f = await startFixture();
    await f.control('POST', '/emulator/users', {
      email: 'legacy@example.com',
      name: 'Ada Lovelace',
      given_name: 'Ada',
      family_name: 'Lovelace',
      picture: 'https://example.com/ada.png',
      locale: 'en',
      hd: 'example.com',
    });
    ({ sub, email } = await f.user('legacy@example.com'));
    const { body } = await f.exchange(await f.code(sub, { scope: 'openid email profile' }));
    tokens = body;
  });
  afterAll(async () => {
    await f.close();
  });

  function oauth2() {
    const auth = new OAuth2Client();
    auth.setCredentials({ access_token: tokens.access_token, expiry_date: Date.now() + 3_000_000 });
    return { auth, api: google.oauth2({ version: 'v2', auth, rootUrl: `${f.emulator.url}/` }) };
  }

  it('googleapis oauth2 v2: userinfo.get and userinfo.v2.me.get answer the legacy fields', async () => {
    const { api } = oauth2();
    const expected = {
      id: sub,
      email,
      verified_email: true,
      name: 'Ada Lovelace',
      given_name: 'Ada',
      family_name: 'Lovelace',
      picture: 'https://example.com/ada.png',
      locale: 'en',
      hd: 'example.com',
    };
    expect((await api.userinfo.get()).data).toEqual(expected);
    expect((await api.userinfo.v2.me.get()).data).toEqual(expected);
    const v1 = await fetch(
      `${f.emulator.url}/oauth2/v1/userinfo?access_token=${encodeURIComponent(tokens.access_token)}`,
    );
    expect(await v1.json()).toEqual(expected);
  });

  it('googleapis oauth2 v2: tokeninfo answers issued_to, audience, user_id, a numeric expires_in', async () => {
    const { api } = oauth2();
    const { server, apps } = f.emulator.clients;
    const info = await api.tokeninfo({ access_token: tokens.access_token });
    expect(info.data).toEqual({
      issued_to: apps.ios,
      audience: server.clientId,
      user_id: sub,
      scope: expect.stringContaining('https://www.googleapis.com/auth/userinfo.email'),
      expires_in: expect.any(Number),
      email,
      verified_email: true,
      access_type: expect.stringMatching(/^(offline|online)$/),
    });
    expect(info.data.expires_in).toBeGreaterThan(3000);

    const v1 = (await (
      await fetch(
        `${f.emulator.url}/oauth2/v1/tokeninfo?access_token=${encodeURIComponent(tokens.access_token)}`,
      )
    ).json()) as Record<string, unknown>;
    expect(v1).toEqual(info.data);

    const byIdToken = await api.tokeninfo({ id_token: tokens.id_token });
    expect(byIdToken.data).toMatchObject({
      issued_to: apps.ios,
      audience: server.clientId,
      user_id: sub,
      email,
      verified_email: true,
    });
  });

  it('the current paths keep the OpenID Connect shapes and take access_token in the query', async () => {
    const query = `access_token=${encodeURIComponent(tokens.access_token)}`;
    for (const path of ['/oauth2/v3/userinfo', '/v1/userinfo', '/openidconnect/v1/userinfo']) {
      const response = await fetch(`${f.emulator.url}${path}?${query}`);
      expect(response.status).toBe(200);
      expect(await response.json()).toMatchObject({ sub, email, email_verified: true, name: 'Ada Lovelace' });
    }
    const v3 = (await (await fetch(`${f.emulator.url}/oauth2/v3/tokeninfo?${query}`)).json()) as Record<
      string,
      unknown
    >;
    expect(v3).toMatchObject({ sub, aud: f.emulator.clients.server.clientId, email_verified: 'true' });
    expect(typeof v3.expires_in).toBe('string');
    expect(v3.user_id).toBeUndefined();
  });

  it('refuses a bad token on each legacy path in its own shape', async () => {
    const tokeninfo = await fetch(`${f.emulator.url}/oauth2/v1/tokeninfo?access_token=nope`);
    expect(tokeninfo.status).toBe(400);
    expect(await tokeninfo.json()).toEqual({ error: 'invalid_token', error_description: 'Invalid Value' });
    const { api, auth } = oauth2();
    auth.setCredentials({ access_token: 'ya29.nope', expiry_date: Date.now() + 3_000_000 });
    await expect(api.userinfo.get()).rejects.toMatchObject({
      status: 401,
      response: {
        data: { error: { code: 401, status: 'UNAUTHENTICATED', errors: [{ reason: 'authError' }] } },
      },
    });
    const missing = await fetch(`${f.emulator.url}/oauth2/v2/userinfo`);
    expect(missing.status).toBe(401);
  });
});
