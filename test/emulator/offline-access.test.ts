import { OAuth2Client } from 'google-auth-library';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DRIVE_APPDATA, startFixture, type EmulatorFixture } from './support.js';

/**
 * Issue 15, point 1: offline access as Google decides it. The authorization URLs are built by
 * google-auth-library's generateAuthUrl; the browser's part (the consent page's Allow, the
 * redirect) is played with plain fetch (openid-client is not a dependency of this project).
 */
describe('access_type and prompt at the authorization endpoint', () => {
  let f: EmulatorFixture;
  let oauth: OAuth2Client;
  let redirectUri: string;
  beforeAll(async () => {
    f = await startFixture();
    const { server } = f.emulator.clients;
    redirectUri = server.redirectUris[0]!;
    oauth = new OAuth2Client({
      clientId: server.clientId,
      clientSecret: server.clientSecret,
      redirectUri,
      endpoints: {
        oauth2AuthBaseUrl: `${f.emulator.url}/o/oauth2/v2/auth`,
        oauth2TokenUrl: `${f.emulator.url}/token`,
      },
    });
  });
  afterAll(async () => {
    await f.close();
  });

  /** The consent page's Allow for `sub`, as the browser posts the page's form. */
  const allow = async (authUrl: string, sub: string, cookie?: string) => {
    const page = await fetch(authUrl, cookie === undefined ? {} : { headers: { cookie } });
    expect(page.status).toBe(200);
    const params = new URL(authUrl).searchParams;
    const response = await fetch(`${f.emulator.url}/o/oauth2/v2/auth/decision`, {
      method: 'POST',
      redirect: 'manual',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        ...(cookie === undefined ? {} : { cookie }),
      },
      body: new URLSearchParams([...params, ['decision', 'allow'], ['sub', sub]]).toString(),
    });
    expect(response.status).toBe(302);
    const location = new URL(response.headers.get('location')!);
    const setCookie = response.headers.get('set-cookie')!.split(';')[0]!;
    return { location, code: location.searchParams.get('code')!, cookie: setCookie };
  };
  /** A GET of the authorization URL with no page expected: the redirect it answers. */
  const silent = async (authUrl: string, cookie?: string) => {
    const response = await fetch(authUrl, {
      redirect: 'manual',
      ...(cookie === undefined ? {} : { headers: { cookie } }),
    });
    expect(response.status).toBe(302);
    return new URL(response.headers.get('location')!);
  };

  it('access_type defaults to online: no refresh token, as google-auth-library sees it', async () => {
    const { sub } = await f.user();
    const { code } = await allow(oauth.generateAuthUrl({ scope: ['openid', 'email'] }), sub);
    const { tokens } = await oauth.getToken(code);
    expect(tokens.access_token).toMatch(/^ya29\./);
    expect(tokens.refresh_token).toBeUndefined();
  });

  it('access_type=offline: a refresh token on first consent only; prompt=consent brings a new one', async () => {
    const { sub } = await f.user();
    const offline = (prompt?: string) =>
      oauth.generateAuthUrl({
        access_type: 'offline',
        scope: ['openid', 'email'],
        ...(prompt === undefined ? {} : { prompt }),
      });
    const first = await oauth.getToken((await allow(offline(), sub)).code);
    expect(first.tokens.refresh_token).toMatch(/^1\/\/0/);
    const repeat = await oauth.getToken((await allow(offline(), sub)).code);
    expect(repeat.tokens.refresh_token).toBeUndefined();
    const forced = await oauth.getToken((await allow(offline('consent'), sub)).code);
    expect(forced.tokens.refresh_token).toMatch(/^1\/\/0/);
  });

  it('the first offline consent after online ones brings a refresh token', async () => {
    const { sub } = await f.user();
    await oauth.getToken((await allow(oauth.generateAuthUrl({ scope: ['openid'] }), sub)).code);
    const offline = await allow(oauth.generateAuthUrl({ scope: ['openid'], access_type: 'offline' }), sub);
    expect((await oauth.getToken(offline.code)).tokens.refresh_token).toMatch(/^1\/\/0/);
  });

  it('prompt=none with no signed-in account: login_required at the redirect URI, state kept', async () => {
    const location = await silent(oauth.generateAuthUrl({ scope: ['openid'], prompt: 'none', state: 'xyz' }));
    expect(`${location.origin}${location.pathname}`).toBe(redirectUri);
    expect(Object.fromEntries(location.searchParams)).toEqual({ error: 'login_required', state: 'xyz' });
  });

  it('prompt=none for a signed-in account: a code without UI, or consent_required', async () => {
    const { sub, email } = await f.user();
    const { cookie } = await allow(oauth.generateAuthUrl({ scope: ['openid', 'email'] }), sub);

    const granted = await silent(
      oauth.generateAuthUrl({ scope: ['openid', 'email'], prompt: 'none', login_hint: email }),
      cookie,
    );
    expect(granted.searchParams.get('prompt')).toBe('none');
    const { tokens } = await oauth.getToken(granted.searchParams.get('code')!);
    expect(tokens.scope).toBe('https://www.googleapis.com/auth/userinfo.email openid');

    // A new scope, or offline access never granted: the consent screen would be needed.
    for (const options of [
      { scope: ['openid', 'email', DRIVE_APPDATA] },
      { scope: ['openid', 'email'], access_type: 'offline' },
    ]) {
      const location = await silent(oauth.generateAuthUrl({ ...options, prompt: 'none' }), cookie);
      expect(location.searchParams.get('error')).toBe('consent_required');
      expect(location.searchParams.get('code')).toBeNull();
    }
    // login_hint naming an account not signed in here.
    const other = await f.user();
    const location = await silent(
      oauth.generateAuthUrl({ scope: ['openid'], prompt: 'none', login_hint: other.email }),
      cookie,
    );
    expect(location.searchParams.get('error')).toBe('login_required');
  });

  it('refuses prompt=none combined with another value, an unknown prompt or access_type, and unknown scopes', async () => {
    for (const [url, error] of [
      [oauth.generateAuthUrl({ scope: ['openid'], prompt: 'none consent' }), 'invalid_request'],
      [oauth.generateAuthUrl({ scope: ['openid'], prompt: 'login' }), 'invalid_request'],
      [`${oauth.generateAuthUrl({ scope: ['openid'] })}&access_type=forever`, 'invalid_request'],
      [oauth.generateAuthUrl({ scope: ['openid', 'https://example.com/auth/x'] }), 'invalid_scope'],
    ] as const) {
      const response = await fetch(url, { redirect: 'manual' });
      expect(response.status).toBe(400);
      expect(await response.text()).toContain(`Error 400: ${error}`);
    }
  });

  it('include_granted_scopes: earlier grants come along only when it is true', async () => {
    const { sub } = await f.user();
    await oauth.getToken(
      (await allow(oauth.generateAuthUrl({ scope: ['openid', DRIVE_APPDATA] }), sub)).code,
    );
    const without = await oauth.getToken(
      (await allow(oauth.generateAuthUrl({ scope: ['openid', 'email'] }), sub)).code,
    );
    expect(without.tokens.scope).toBe('https://www.googleapis.com/auth/userinfo.email openid');
    const withEarlier = await oauth.getToken(
      (await allow(oauth.generateAuthUrl({ scope: ['openid'], include_granted_scopes: true }), sub)).code,
    );
    expect(withEarlier.tokens.scope?.split(' ').sort()).toEqual(
      [DRIVE_APPDATA, 'https://www.googleapis.com/auth/userinfo.email', 'openid'].sort(),
    );
  });
});

describe('app codes (POST /emulator/codes): access_type and include_granted_scopes', () => {
  let f: EmulatorFixture;
  beforeAll(async () => {
    f = await startFixture();
  });
  afterAll(async () => {
    await f.close();
  });

  it('default offline, as the Sign-In SDKs ask; online gives no refresh token', async () => {
    const { sub } = await f.user();
    expect((await f.exchange(await f.code(sub))).body.refresh_token).toMatch(/^1\/\/0/);
    const other = await f.user();
    const online = await f.exchange(await f.code(other.sub, { access_type: 'online' }));
    expect(online.status).toBe(200);
    expect(online.body.refresh_token).toBeUndefined();
  });

  it('include_granted_scopes defaults to true; false gives only the scopes of this code', async () => {
    const { sub } = await f.user();
    await f.exchange(await f.code(sub, { scope: `openid ${DRIVE_APPDATA}` }));
    const merged = await f.exchange(await f.code(sub, { scope: 'openid email' }));
    expect(merged.body.scope.split(' ')).toContain(DRIVE_APPDATA);
    const only = await f.exchange(
      await f.code(sub, { scope: 'openid email', include_granted_scopes: false }),
    );
    expect(only.body.scope).toBe('https://www.googleapis.com/auth/userinfo.email openid');
  });

  it('refuses unknown scopes and a bad access_type', async () => {
    const { sub } = await f.user();
    for (const body of [
      { scope: 'openid https://example.com/x' },
      { scope: 'openid', access_type: 'forever' },
    ]) {
      const response = await fetch(`${f.emulator.url}/emulator/codes`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ sub, client_id: f.emulator.clients.apps.ios, ...body }),
      });
      expect(response.status).toBe(400);
    }
  });
});
