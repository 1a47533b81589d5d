import { OAuth2Client } from 'google-auth-library';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { DRIVE_APPDATA, startFixture, type EmulatorFixture } from './support.js';

const WEEK = 604_799;

/** Issue 15, point 3: Testing-mode 7-day refresh tokens and time-based access at the emulator. */
describe('expiring refresh tokens', () => {
  let f: EmulatorFixture;
  beforeAll(async () => {
    f = await startFixture();
  });
  afterAll(async () => {
    await f.close();
  });
  beforeEach(async () => {
    await f.control('POST', '/emulator/config', { publishing_status: 'production' });
  });

  it('in production, refresh tokens carry no expiry', async () => {
    expect(await f.control('GET', '/emulator/config')).toMatchObject({ publishing_status: 'production' });
    const { sub } = await f.user();
    const { body } = await f.exchange(await f.code(sub));
    expect(body.refresh_token).toMatch(/^1\/\/0/);
    expect(body).not.toHaveProperty('refresh_token_expires_in');
  });

  it('in testing, refresh_token_expires_in is 604799 and the refresh token dies after 7 days (google-auth-library)', async () => {
    expect(await f.control('POST', '/emulator/config', { publishing_status: 'testing' })).toMatchObject({
      publishing_status: 'testing',
    });
    const { sub } = await f.user();
    const { server } = f.emulator.clients;
    const oauth = new OAuth2Client({
      clientId: server.clientId,
      clientSecret: server.clientSecret,
      endpoints: { oauth2TokenUrl: `${f.emulator.url}/token` },
    });
    const issued = Date.now();
    const { res, tokens } = await oauth.getToken({ code: await f.code(sub), redirect_uri: '' });
    expect(res?.data).toMatchObject({ refresh_token_expires_in: WEEK });
    // Google's field order: refresh_token_expires_in last.
    const raw = await f.exchange(await f.code(sub, { prompt: 'consent' }));
    expect(Object.keys(raw.body as object).at(-1)).toBe('refresh_token_expires_in');

    f.clock.advance(86_400);
    const refreshed = await f.refresh(tokens.refresh_token!);
    expect(refreshed.status).toBe(200);
    // The time left, in whole seconds: less the real time that passed since the code was
    // redeemed (the emulator's clock runs on; a second boundary may fall in between).
    const passed = Math.ceil((Date.now() - issued) / 1000);
    expect(refreshed.body.refresh_token_expires_in).toBeLessThanOrEqual(WEEK - 86_400);
    expect(refreshed.body.refresh_token_expires_in).toBeGreaterThanOrEqual(WEEK - 86_400 - passed);

    f.clock.advance(WEEK - 86_400);
    expect(await f.refresh(tokens.refresh_token!)).toMatchObject({
      status: 400,
      body: { error: 'invalid_grant', error_description: 'Token has been expired or revoked.' },
    });
  });

  it('in testing, a grant of sign-in scopes only does not expire', async () => {
    await f.control('POST', '/emulator/config', { publishing_status: 'testing' });
    const { sub } = await f.user();
    const { body } = await f.exchange(await f.code(sub, { scope: 'openid email profile' }));
    expect(body.refresh_token).toMatch(/^1\/\/0/);
    expect(body).not.toHaveProperty('refresh_token_expires_in');
    const drive = await f.exchange(
      await f.code(sub, { scope: `openid ${DRIVE_APPDATA}`, prompt: 'consent' }),
    );
    expect(drive.body.refresh_token_expires_in).toBe(WEEK);
  });

  it('time-based access: refresh_token_lifetime_seconds sets the expiry, in production too', async () => {
    const { sub } = await f.user();
    const { body } = await f.exchange(await f.code(sub, { refresh_token_lifetime_seconds: 3600 }));
    expect(body.refresh_token_expires_in).toBe(3600);
    f.clock.advance(3599);
    expect((await f.refresh(body.refresh_token)).status).toBe(200);
    f.clock.advance(1);
    expect((await f.refresh(body.refresh_token)).status).toBe(400);
  });

  it('refuses an unknown publishing status and a lifetime that is not a positive whole number', async () => {
    const post = (path: string, body: unknown) =>
      fetch(`${f.emulator.url}${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
    expect((await post('/emulator/config', { publishing_status: 'staging' })).status).toBe(400);
    const { sub } = await f.user();
    for (const lifetime of [0, 1.5, '3600']) {
      const response = await post('/emulator/codes', {
        sub,
        client_id: f.emulator.clients.apps.ios,
        scope: 'openid',
        refresh_token_lifetime_seconds: lifetime,
      });
      expect(response.status).toBe(400);
    }
  });
});
