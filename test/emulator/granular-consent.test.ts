import { OAuth2Client } from 'google-auth-library';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DRIVE_APPDATA, startFixture, type EmulatorFixture } from './support.js';

const EMAIL = 'https://www.googleapis.com/auth/userinfo.email';

/** Issue 15, point 2: granular consent at the emulator (the consent page and app codes). */
describe('granular consent', () => {
  let f: EmulatorFixture;
  beforeAll(async () => {
    f = await startFixture();
  });
  afterAll(async () => {
    await f.close();
  });
  const drive = (accessToken: string) =>
    fetch(`${f.emulator.url}/drive/v3/files?spaces=appDataFolder`, {
      headers: { authorization: `Bearer ${accessToken}` },
    });

  it('the consent page has a box per non-basic scope; unticked, the token leaves it out and Drive refuses', async () => {
    const { sub } = await f.user();
    const { server } = f.emulator.clients;
    const oauth = new OAuth2Client({
      clientId: server.clientId,
      clientSecret: server.clientSecret,
      redirectUri: server.redirectUris[0]!,
      endpoints: {
        oauth2AuthBaseUrl: `${f.emulator.url}/o/oauth2/v2/auth`,
        oauth2TokenUrl: `${f.emulator.url}/token`,
      },
    });
    const url = oauth.generateAuthUrl({ access_type: 'offline', scope: ['openid', 'email', DRIVE_APPDATA] });
    const html = await (await fetch(url)).text();
    expect(html).toContain(`<input type="checkbox" name="granted_scope" value="${DRIVE_APPDATA}" checked>`);
    expect(html).not.toContain(`name="granted_scope" value="${EMAIL}"`);
    expect(html).not.toContain('name="granted_scope" value="openid"');

    // The browser posts the form with the box unticked: no granted_scope field at all.
    const response = await fetch(`${f.emulator.url}/o/oauth2/v2/auth/decision`, {
      method: 'POST',
      redirect: 'manual',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams([
        ...new URL(url).searchParams,
        ['granular', '1'],
        ['decision', 'allow'],
        ['sub', sub],
      ]).toString(),
    });
    const location = new URL(response.headers.get('location')!);
    expect(location.searchParams.get('scope')).toBe(`${EMAIL} openid`);
    const { tokens } = await oauth.getToken(location.searchParams.get('code')!);
    expect(tokens.scope).toBe(`${EMAIL} openid`);
    expect(tokens.refresh_token).toMatch(/^1\/\/0/);
    const refused = await drive(tokens.access_token!);
    expect(refused.status).toBe(403);
    expect(refused.headers.get('www-authenticate')).toContain('error="insufficient_scope"');
    // A refresh keeps to what was granted.
    expect((await f.refresh(tokens.refresh_token!)).body.scope).toBe(`${EMAIL} openid`);
  });

  it('app codes take granted_scopes: a subset of scope; basic scopes and earlier grants stay', async () => {
    const { sub } = await f.user();
    const first = await f.exchange(
      await f.code(sub, { scope: `openid email ${DRIVE_APPDATA}`, granted_scopes: 'openid' }),
    );
    // email is basic: it cannot be unticked.
    expect(first.body.scope).toBe(`${EMAIL} openid`);
    expect((await drive(first.body.access_token)).status).toBe(403);

    const granted = await f.exchange(await f.code(sub, { scope: `openid ${DRIVE_APPDATA}` }));
    expect(granted.body.scope).toBe(`${EMAIL} ${DRIVE_APPDATA} openid`);
    expect((await drive(granted.body.access_token)).status).toBe(200);

    // Unticking a scope granted earlier takes nothing away (it was not on the screen again).
    const again = await f.exchange(
      await f.code(sub, {
        scope: `openid ${DRIVE_APPDATA}`,
        granted_scopes: 'openid',
        include_granted_scopes: false,
      }),
    );
    expect(again.body.scope).toBe(`${DRIVE_APPDATA} openid`);

    const response = await fetch(`${f.emulator.url}/emulator/codes`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        sub,
        client_id: f.emulator.clients.apps.ios,
        scope: 'openid email',
        granted_scopes: `openid ${DRIVE_APPDATA}`,
      }),
    });
    expect(response.status).toBe(400);
    expect(JSON.stringify(await response.json())).toContain('granted_scopes: must be a subset of scope');
  });
});
