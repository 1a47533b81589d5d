import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeJwt, DRIVE_APPDATA, startFixture, type EmulatorFixture } from './support.js';

/** Issue 2: the semantics of Google's OAuth endpoints the emulator must reproduce, each with a test. */
describe('emulator: token endpoint semantics', () => {
  let f: EmulatorFixture;
  beforeAll(async () => {
    f = await startFixture();
  });
  afterAll(async () => {
    await f.close();
  });

  it('a code works once', async () => {
    const { sub } = await f.user();
    const code = await f.code(sub);
    expect(code).toMatch(/^4\/0A/);
    const first = await f.exchange(code);
    expect(first.status).toBe(200);
    expect(first.headers.get('cache-control')).toContain('no-store');
    const again = await f.exchange(code);
    expect(again).toMatchObject({
      status: 400,
      body: { error: 'invalid_grant', error_description: 'Bad Request' },
    });
  });

  it('a code expires after ten minutes', async () => {
    const { sub } = await f.user();
    const code = await f.code(sub);
    f.clock.advance(601);
    expect(await f.exchange(code)).toMatchObject({ status: 400, body: { error: 'invalid_grant' } });
  });

  it('an unknown or still percent-encoded code is "Malformed auth code."', async () => {
    const { sub } = await f.user();
    const code = await f.code(sub);
    for (const bad of ['garbage', encodeURIComponent(code), code.slice(0, -3)]) {
      expect(await f.exchange(bad)).toMatchObject({
        status: 400,
        body: { error: 'invalid_grant', error_description: 'Malformed auth code.' },
      });
    }
  });

  it('the redirect URI must match the one the code was issued for', async () => {
    const { sub } = await f.user();
    const mobile = await f.code(sub);
    expect(await f.exchange(mobile, { redirect_uri: 'postmessage' })).toMatchObject({
      status: 400,
      body: { error: 'redirect_uri_mismatch', error_description: 'Bad Request' },
    });
    const web = await f.code(sub, { client: 'server', redirect_uri: 'postmessage' });
    expect(await f.exchange(web)).toMatchObject({ status: 400, body: { error: 'redirect_uri_mismatch' } });
    expect((await f.exchange(web, { redirect_uri: 'postmessage' })).status).toBe(200);
  });

  it('a refresh token comes only on first consent, or when consent is forced', async () => {
    const { sub } = await f.user();
    const first = await f.exchange(await f.code(sub));
    expect(first.body.refresh_token).toMatch(/^1\/\/0/);
    const repeat = await f.exchange(await f.code(sub));
    expect(repeat.status).toBe(200);
    expect(repeat.body.refresh_token).toBeUndefined();
    const forced = await f.exchange(await f.code(sub, { prompt: 'consent' }));
    expect(forced.body.refresh_token).toMatch(/^1\/\/0/);
    expect(forced.body.refresh_token).not.toBe(first.body.refresh_token);
  });

  it("answers Google's success shape: scopes as full URLs with openid last, Bearer, 3599 s", async () => {
    const { sub } = await f.user();
    const { body } = await f.exchange(await f.code(sub, { scope: `openid email profile ${DRIVE_APPDATA}` }));
    expect(Object.keys(body)).toEqual([
      'access_token',
      'expires_in',
      'refresh_token',
      'scope',
      'token_type',
      'id_token',
    ]);
    expect(body).toMatchObject({ expires_in: 3599, token_type: 'Bearer' });
    expect(body.access_token).toMatch(/^ya29\./);
    expect(body.access_token.length).toBeLessThanOrEqual(2048);
    expect(body.refresh_token.length).toBeLessThanOrEqual(512);
    expect(body.scope).toBe(
      `https://www.googleapis.com/auth/userinfo.email https://www.googleapis.com/auth/userinfo.profile ${DRIVE_APPDATA} openid`,
    );
  });

  it('the ID token: RS256 with a kid, aud the server client, azp the app client, at_hash of the access token', async () => {
    const { sub, email } = await f.user();
    const { body } = await f.exchange(await f.code(sub, { client: 'android', nonce: 'n-123' }));
    const { header, payload } = decodeJwt(body.id_token);
    expect(header).toMatchObject({ alg: 'RS256', typ: 'JWT' });
    expect(header.kid).toMatch(/^[0-9a-f]{40}$/);
    expect(payload).toMatchObject({
      iss: 'https://accounts.google.com',
      aud: f.emulator.clients.server.clientId,
      azp: f.emulator.clients.apps.android,
      sub,
      email,
      email_verified: true,
      nonce: 'n-123',
      name: 'Test User',
    });
    expect(payload.exp - payload.iat).toBe(3600);
    const expected = createHash('sha256')
      .update(body.access_token)
      .digest()
      .subarray(0, 16)
      .toString('base64url');
    expect(payload.at_hash).toBe(expected);
  });

  it('access tokens expire after about an hour and are rejected after', async () => {
    const { sub } = await f.user();
    const { body } = await f.exchange(await f.code(sub));
    const info = await fetch(`${f.emulator.url}/tokeninfo?access_token=${body.access_token}`);
    expect(info.status).toBe(200);
    expect(await info.json()).toMatchObject({ sub, expires_in: expect.any(String), email_verified: 'true' });
    f.clock.advance(3600);
    expect((await fetch(`${f.emulator.url}/tokeninfo?access_token=${body.access_token}`)).status).toBe(400);
    const drive = await fetch(`${f.emulator.url}/drive/v3/files?spaces=appDataFolder`, {
      headers: { authorization: `Bearer ${body.access_token}` },
    });
    expect(drive.status).toBe(401);
    expect(drive.headers.get('www-authenticate')).toContain('invalid_token');
  });

  it('refresh works until the grant is revoked, then invalid_grant', async () => {
    const { sub } = await f.user();
    const { body } = await f.exchange(await f.code(sub));
    const refreshed = await f.refresh(body.refresh_token);
    expect(refreshed.status).toBe(200);
    expect(refreshed.body.refresh_token).toBeUndefined();
    expect(refreshed.body.access_token).not.toBe(body.access_token);
    await f.control('POST', '/emulator/grants/revoke', { sub });
    expect(await f.refresh(body.refresh_token)).toMatchObject({
      status: 400,
      body: { error: 'invalid_grant', error_description: 'Token has been expired or revoked.' },
    });
  });

  it('revoking either token of a grant revokes the grant', async () => {
    for (const which of ['access_token', 'refresh_token'] as const) {
      const { sub } = await f.user();
      const { body } = await f.exchange(await f.code(sub));
      expect((await f.form('/revoke', { token: body[which] })).status).toBe(200);
      expect((await f.refresh(body.refresh_token)).body.error).toBe('invalid_grant');
      const drive = await fetch(`${f.emulator.url}/drive/v3/files?spaces=appDataFolder`, {
        headers: { authorization: `Bearer ${body.access_token}` },
      });
      expect(drive.status).toBe(401);
      expect(await f.form('/revoke', { token: body[which] })).toMatchObject({
        status: 400,
        body: { error: 'invalid_token' },
      });
    }
  });

  it('a refresh token unused for six months stops working', async () => {
    const { sub } = await f.user();
    const { body } = await f.exchange(await f.code(sub));
    f.clock.advance(184 * 86_400);
    expect((await f.refresh(body.refresh_token)).body.error).toBe('invalid_grant');
  });

  it('at most 100 live refresh tokens per user per client: the oldest is invalidated', async () => {
    const { sub } = await f.user();
    const tokens: string[] = [];
    for (let i = 0; i < 101; i++)
      tokens.push((await f.exchange(await f.code(sub, { prompt: 'consent' }))).body.refresh_token);
    expect((await f.refresh(tokens[0]!)).body.error).toBe('invalid_grant');
    expect((await f.refresh(tokens[1]!)).status).toBe(200);
    expect((await f.refresh(tokens[100]!)).status).toBe(200);
  });

  it('client authentication: in the body or HTTP Basic; errors as Google words them', async () => {
    const { sub } = await f.user();
    const { server, apps } = f.emulator.clients;
    const basic = `Basic ${Buffer.from(`${server.clientId}:${server.clientSecret}`).toString('base64')}`;
    const viaBasic = await f.form(
      '/token',
      { grant_type: 'authorization_code', code: await f.code(sub), redirect_uri: '' },
      { authorization: basic },
    );
    expect(viaBasic.status).toBe(200);
    const code = await f.code(sub);
    expect(await f.exchange(code, { client_secret: 'wrong' })).toMatchObject({
      status: 401,
      body: { error: 'invalid_client', error_description: 'Unauthorized' },
    });
    expect(await f.exchange(code, { client_id: '1-unknown.apps.googleusercontent.com' })).toMatchObject({
      status: 401,
      body: { error: 'invalid_client', error_description: 'The OAuth client was not found.' },
    });
    expect(await f.exchange(code, { client_id: apps.ios })).toMatchObject({
      status: 401,
      body: { error: 'unauthorized_client' },
    });
    expect(await f.form('/token', { grant_type: 'password' })).toMatchObject({
      status: 400,
      body: { error: 'unsupported_grant_type', error_description: 'Invalid grant_type: password' },
    });
    expect(
      await f.form('/token', {
        grant_type: 'authorization_code',
        client_id: server.clientId,
        client_secret: server.clientSecret,
      }),
    ).toMatchObject({
      status: 400,
      body: { error: 'invalid_request', error_description: 'Missing required parameter: code' },
    });
    // The code was not used up by the failed attempts.
    expect((await f.exchange(code)).status).toBe(200);
  });

  it("PKCE: S256 and plain, with Google's error texts", async () => {
    const { sub } = await f.user();
    const verifier = 'v'.repeat(43);
    const challenge = createHash('sha256').update(verifier).digest('base64url');
    const s256 = await f.code(sub, {
      client: 'server',
      redirect_uri: 'postmessage',
      code_challenge: challenge,
      code_challenge_method: 'S256',
    });
    expect(await f.exchange(s256, { redirect_uri: 'postmessage' })).toMatchObject({
      body: { error: 'invalid_grant', error_description: 'Missing code verifier.' },
    });
    expect(
      await f.exchange(s256, { redirect_uri: 'postmessage', code_verifier: 'w'.repeat(43) }),
    ).toMatchObject({
      body: { error: 'invalid_grant', error_description: 'Invalid code verifier.' },
    });
    expect((await f.exchange(s256, { redirect_uri: 'postmessage', code_verifier: verifier })).status).toBe(
      200,
    );
    const plain = await f.code(sub, {
      client: 'server',
      redirect_uri: 'postmessage',
      code_challenge: verifier,
    });
    expect((await f.exchange(plain, { redirect_uri: 'postmessage', code_verifier: verifier })).status).toBe(
      200,
    );
    const none = await f.code(sub);
    expect(await f.exchange(none, { code_verifier: verifier })).toMatchObject({
      body: { error: 'invalid_grant', error_description: 'code_verifier or verifier is not needed' },
    });
  });

  it("discovery points at the emulator; keys are published as JWKS and PEM with Google's caching", async () => {
    const discovery = (await (
      await fetch(`${f.emulator.url}/.well-known/openid-configuration`)
    ).json()) as Record<string, string>;
    expect(discovery.token_endpoint).toBe(`${f.emulator.url}/token`);
    expect(discovery.jwks_uri).toBe(`${f.emulator.url}/oauth2/v3/certs`);
    expect(discovery.issuer).toBe('https://accounts.google.com');
    const jwks = await fetch(`${f.emulator.url}/oauth2/v3/certs`);
    expect(jwks.headers.get('cache-control')).toMatch(/^public, max-age=\d+, must-revalidate, no-transform$/);
    const keys = ((await jwks.json()) as { keys: Array<Record<string, string>> }).keys;
    expect(keys).toHaveLength(2);
    expect(keys[0]).toMatchObject({ kty: 'RSA', alg: 'RS256', use: 'sig', e: 'AQAB' });
    const pems = (await (await fetch(`${f.emulator.url}/oauth2/v1/certs`)).json()) as Record<string, string>;
    expect(Object.keys(pems).sort()).toEqual(keys.map((k) => k.kid).sort());
    expect(Object.values(pems)[0]).toMatch(/^-----BEGIN CERTIFICATE-----/);
  });

  it('key rotation: the new key signs, the old one stays published', async () => {
    const before = (
      (await (await fetch(`${f.emulator.url}/oauth2/v3/certs`)).json()) as { keys: Array<{ kid: string }> }
    ).keys.map((k) => k.kid);
    const rotated = await f.control('POST', '/emulator/keys/rotate');
    const after = (
      (await (await fetch(`${f.emulator.url}/oauth2/v3/certs`)).json()) as { keys: Array<{ kid: string }> }
    ).keys.map((k) => k.kid);
    expect(after).toContain(rotated.kid);
    for (const kid of before) expect(after).toContain(kid);
    const { sub } = await f.user();
    const { id_token } = await f.control('POST', '/emulator/id-tokens', { sub });
    expect(decodeJwt(id_token).header.kid).toBe(rotated.kid);
  });

  it('userinfo and tokeninfo for ID tokens', async () => {
    const { sub, email } = await f.user();
    const { body } = await f.exchange(await f.code(sub));
    const userinfo = await fetch(`${f.emulator.url}/v1/userinfo`, {
      headers: { authorization: `Bearer ${body.access_token}` },
    });
    expect(await userinfo.json()).toMatchObject({ sub, email, email_verified: true, name: 'Test User' });
    const bad = await fetch(`${f.emulator.url}/v1/userinfo`, { headers: { authorization: 'Bearer nope' } });
    expect(bad.status).toBe(401);
    const info = (await (
      await fetch(`${f.emulator.url}/tokeninfo?id_token=${body.id_token}`)
    ).json()) as Record<string, unknown>;
    expect(info).toMatchObject({ sub, email_verified: 'true', aud: f.emulator.clients.server.clientId });
  });
});

describe('emulator: control API', () => {
  let f: EmulatorFixture;
  beforeAll(async () => {
    f = await startFixture();
  });
  afterAll(async () => {
    await f.close();
  });

  it('lists the clients in the contract shape', async () => {
    const clients = await f.control('GET', '/emulator/clients');
    expect(clients.server_client.client_id).toMatch(/^\d{12}-[a-z0-9]{32}\.apps\.googleusercontent\.com$/);
    expect(typeof clients.server_client.client_secret).toBe('string');
    expect(clients.app_clients.map((c: { platform: string }) => c.platform)).toEqual([
      'ios',
      'android',
      'web',
    ]);
  });

  it('creates users, counts calls in stats, lists issued tokens, and moves the clock', async () => {
    const user = await f.control('POST', '/emulator/users', {
      email: 'Stats@Example.com',
      hd: 'example.com',
    });
    expect(user).toMatchObject({ email: 'stats@example.com', email_verified: true, hd: 'example.com' });
    expect(user.sub).toMatch(/^\d{21}$/);
    await f.control('POST', '/emulator/stats/reset');
    const { body } = await f.exchange(await f.code(user.sub));
    await f.refresh(body.refresh_token);
    const stats = await f.control('GET', '/emulator/stats');
    expect(stats).toMatchObject({
      token_requests: { authorization_code: 1, refresh_token: 1 },
      refreshes_by_sub: { [user.sub]: 1 },
    });
    const issued = await f.control('GET', '/emulator/tokens');
    const values = issued.tokens.map((t: { value: string }) => t.value);
    expect(values).toContain(body.access_token);
    expect(values).toContain(body.refresh_token);
    const before = (await f.control('GET', '/emulator/clock')).now_seconds;
    const { now_seconds } = await f.control('POST', '/emulator/clock', { advance_seconds: 120 });
    expect(now_seconds - before).toBeGreaterThanOrEqual(120);
  });

  it('faults: a status for the next N calls, then normal service', async () => {
    const { sub } = await f.user();
    const { body } = await f.exchange(await f.code(sub));
    await f.control('POST', '/emulator/faults', { path: '/token', status: 503, count: 2 });
    expect((await f.refresh(body.refresh_token)).status).toBe(503);
    const second = await f.refresh(body.refresh_token);
    expect(second.status).toBe(503);
    expect(second.headers.get('retry-after')).toBe('1');
    expect((await f.refresh(body.refresh_token)).status).toBe(200);
    await f.control('POST', '/emulator/faults', { path: '/drive/*', status: 429, count: 1 });
    const limited = await fetch(`${f.emulator.url}/drive/v3/files?spaces=appDataFolder`, {
      headers: { authorization: `Bearer ${body.access_token}` },
    });
    expect(limited.status).toBe(429);
    expect(await limited.json()).toMatchObject({
      error: { code: 429, errors: [{ reason: 'rateLimitExceeded' }] },
    });
    await f.control('DELETE', '/emulator/faults');
  });

  it("the client secret file has Google's download shape", () => {
    const json = f.emulator.clientSecretJson() as { web: Record<string, unknown> };
    expect(Object.keys(json.web).sort()).toEqual(
      [
        'auth_provider_x509_cert_url',
        'auth_uri',
        'client_id',
        'client_secret',
        'javascript_origins',
        'project_id',
        'redirect_uris',
        'token_uri',
      ].sort(),
    );
  });
});
