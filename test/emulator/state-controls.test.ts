import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { waitUntil } from '../support/deadline.js';
import { decodeJwt, startFixture, type EmulatorFixture } from './support.js';

/** An answer as status and parsed JSON, for calls that are meant to fail. */
async function call(
  f: EmulatorFixture,
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
) {
  const response = await fetch(`${f.emulator.url}${path}`, {
    method,
    headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
    ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
  });
  const text = await response.text();
  let json: any = text;
  try {
    json = JSON.parse(text);
  } catch {
    // not JSON
  }
  return { status: response.status, body: json, headers: response.headers };
}

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
const drive = (f: EmulatorFixture, token: string) =>
  call(f, 'GET', '/drive/v3/files?spaces=appDataFolder', undefined, bearer(token));
const userinfo = (f: EmulatorFixture, token: string) =>
  call(f, 'GET', '/v1/userinfo', undefined, bearer(token));
const tokeninfo = (f: EmulatorFixture, token: string) =>
  call(f, 'GET', `/tokeninfo?access_token=${encodeURIComponent(token)}`);

/** A user who signed in: the exchange's access and refresh tokens. */
async function signedIn(
  f: EmulatorFixture,
): Promise<{ sub: string; email: string; accessToken: string; refreshToken: string }> {
  const { sub, email } = await f.user();
  const { status, body } = await f.exchange(await f.code(sub));
  expect(status).toBe(200);
  return { sub, email, accessToken: body.access_token, refreshToken: body.refresh_token };
}

describe('emulator: access token lifetime (GET/POST /emulator/config)', () => {
  let f: EmulatorFixture;
  beforeAll(async () => {
    f = await startFixture();
  });
  afterEach(async () => {
    await f.control('POST', '/emulator/config', { access_token_lifetime_seconds: 3599 });
  });
  afterAll(async () => {
    await f.close();
  });

  it('starts at 3599 s, and GET answers the settings', async () => {
    expect(await f.control('GET', '/emulator/config')).toEqual({
      access_token_lifetime_seconds: 3599,
      publishing_status: 'production',
      key_rotation_seconds: null,
    });
    const { sub } = await f.user();
    expect((await f.exchange(await f.code(sub))).body.expires_in).toBe(3599);
  });

  it('tokens issued after the change last the new lifetime, at the token endpoint, tokeninfo and Drive', async () => {
    const before = await signedIn(f);
    expect(await f.control('POST', '/emulator/config', { access_token_lifetime_seconds: 5 })).toEqual({
      access_token_lifetime_seconds: 5,
      publishing_status: 'production',
      key_rotation_seconds: null,
    });
    expect(await f.control('GET', '/emulator/config')).toEqual({
      access_token_lifetime_seconds: 5,
      publishing_status: 'production',
      key_rotation_seconds: null,
    });

    const { sub } = await f.user();
    const exchanged = await f.exchange(await f.code(sub));
    expect(exchanged.body.expires_in).toBe(5);
    const refreshed = await f.refresh(exchanged.body.refresh_token);
    expect(refreshed.body.expires_in).toBe(5);
    expect((await tokeninfo(f, refreshed.body.access_token)).body.expires_in).toBe('5');
    // The ID token keeps its own hour.
    const { payload } = decodeJwt(exchanged.body.id_token);
    expect(payload.exp - payload.iat).toBe(3600);

    expect((await drive(f, refreshed.body.access_token)).status).toBe(200);
    f.clock.advance(5);
    expect((await drive(f, refreshed.body.access_token)).status).toBe(401);
    expect((await drive(f, exchanged.body.access_token)).status).toBe(401);
    // A token issued before the change keeps the lifetime it was issued with.
    expect((await drive(f, before.accessToken)).status).toBe(200);
  });

  it('accepts the bounds, 1 and 86400', async () => {
    for (const seconds of [1, 86_400]) {
      expect(await f.control('POST', '/emulator/config', { access_token_lifetime_seconds: seconds })).toEqual(
        {
          access_token_lifetime_seconds: seconds,
          publishing_status: 'production',
          key_rotation_seconds: null,
        },
      );
      const { sub } = await f.user();
      expect((await f.exchange(await f.code(sub))).body.expires_in).toBe(seconds);
    }
  });

  it('an empty body changes nothing and answers the settings', async () => {
    await f.control('POST', '/emulator/config', { access_token_lifetime_seconds: 42 });
    expect(await f.control('POST', '/emulator/config', {})).toEqual({
      access_token_lifetime_seconds: 42,
      publishing_status: 'production',
      key_rotation_seconds: null,
    });
  });

  it("refuses anything but a whole number from 1 to 86400, and unknown keys, with a 400 in the control API's shape", async () => {
    await f.control('POST', '/emulator/config', { access_token_lifetime_seconds: 60 });
    const refused: Array<[unknown, RegExp]> = [
      [
        { access_token_lifetime_seconds: 0 },
        /^access_token_lifetime_seconds: must be a whole number of seconds from 1 to 86400$/,
      ],
      [{ access_token_lifetime_seconds: -5 }, /^access_token_lifetime_seconds: must be a whole number/],
      [{ access_token_lifetime_seconds: 86_401 }, /^access_token_lifetime_seconds: must be a whole number/],
      [{ access_token_lifetime_seconds: 1.5 }, /^access_token_lifetime_seconds: must be a whole number/],
      [{ access_token_lifetime_seconds: '60' }, /^access_token_lifetime_seconds: must be a whole number/],
      [{ access_token_lifetime_seconds: null }, /^access_token_lifetime_seconds: must be a whole number/],
      [{ access_token_lifetime_seconds: 1e300 }, /^access_token_lifetime_seconds: must be a whole number/],
      [{ access_token_lifetime_seconds: 30, id_token_lifetime_seconds: 30 }, /id_token_lifetime_seconds/],
      [{ lifetime: 30 }, /lifetime/],
      [[30], /^body: /],
    ];
    for (const [body, message] of refused) {
      const answer = await call(f, 'POST', '/emulator/config', body);
      expect(answer.status, JSON.stringify(body)).toBe(400);
      expect(answer.body).toMatchObject({
        error: { code: 400, status: 'INVALID_ARGUMENT', errors: [{ reason: 'invalid' }] },
      });
      expect(answer.body.error.message).toMatch(message);
    }
    expect((await call(f, 'POST', '/emulator/config', '{not json')).status).toBe(400);
    // Nothing was changed by the refused calls.
    expect(await f.control('GET', '/emulator/config')).toEqual({
      access_token_lifetime_seconds: 60,
      publishing_status: 'production',
      key_rotation_seconds: null,
    });
  });
});

describe('emulator: POST /emulator/access-tokens/expire', () => {
  let f: EmulatorFixture;
  beforeAll(async () => {
    f = await startFixture();
  });
  afterAll(async () => {
    await f.close();
  });

  it('every live access token of the user answers as an expired one would; refresh still works', async () => {
    // A token that ran out the ordinary way, to compare with.
    await f.control('POST', '/emulator/config', { access_token_lifetime_seconds: 1 });
    const natural = await signedIn(f);
    await f.control('POST', '/emulator/config', { access_token_lifetime_seconds: 3599 });
    f.clock.advance(2);

    const alice = await signedIn(f);
    const second = (await f.refresh(alice.refreshToken)).body.access_token as string;
    const bob = await signedIn(f);
    for (const token of [alice.accessToken, second]) expect((await drive(f, token)).status).toBe(200);

    expect(await f.control('POST', '/emulator/access-tokens/expire', { sub: alice.sub })).toEqual({
      expired: 2,
    });

    for (const token of [alice.accessToken, second]) {
      const [d, u, t] = [await drive(f, token), await userinfo(f, token), await tokeninfo(f, token)];
      expect(d.status).toBe(401);
      expect(d.headers.get('www-authenticate')).toContain('error="invalid_token"');
      expect(d.body).toMatchObject({ error: { code: 401, errors: [{ reason: 'authError' }] } });
      expect(u.status).toBe(401);
      // The same answers as for the token that expired by itself.
      expect({ status: d.status, body: d.body }).toEqual({
        status: 401,
        body: (await drive(f, natural.accessToken)).body,
      });
      expect({ status: u.status, body: u.body }).toEqual({
        status: 401,
        body: (await userinfo(f, natural.accessToken)).body,
      });
      const naturalInfo = await tokeninfo(f, natural.accessToken);
      expect({ status: t.status, body: t.body }).toEqual({
        status: naturalInfo.status,
        body: naturalInfo.body,
      });
      expect(t.body).toEqual({ error: 'invalid_token', error_description: 'Invalid Value' });
    }

    // Another user's token is untouched.
    expect((await drive(f, bob.accessToken)).status).toBe(200);

    // The refresh token is unaffected: a refresh gives a new access token that works.
    const refreshed = await f.refresh(alice.refreshToken);
    expect(refreshed.status).toBe(200);
    expect(refreshed.body.expires_in).toBe(3599);
    expect((await drive(f, refreshed.body.access_token)).status).toBe(200);
    expect((await userinfo(f, refreshed.body.access_token)).body).toMatchObject({ sub: alice.sub });
  });

  it('finds the user by email, and counts only tokens still live', async () => {
    const carol = await signedIn(f);
    expect(
      await f.control('POST', '/emulator/access-tokens/expire', { email: carol.email.toUpperCase() }),
    ).toEqual({ expired: 1 });
    expect(await f.control('POST', '/emulator/access-tokens/expire', { email: carol.email })).toEqual({
      expired: 0,
    });
    // Tokens of a revoked grant are dead already and not counted.
    const dave = await signedIn(f);
    await f.control('POST', '/emulator/grants/revoke', { sub: dave.sub });
    expect(await f.control('POST', '/emulator/access-tokens/expire', { sub: dave.sub })).toEqual({
      expired: 0,
    });
    // A user who never signed in has none.
    const { sub } = await f.user();
    expect(await f.control('POST', '/emulator/access-tokens/expire', { sub })).toEqual({ expired: 0 });
  });

  it('an unknown user is a 404, as everywhere in the control API; bad bodies are 400', async () => {
    const unknown = await call(f, 'POST', '/emulator/access-tokens/expire', { sub: '999999999999999999999' });
    expect(unknown).toMatchObject({
      status: 404,
      body: { error: { code: 404, status: 'NOT_FOUND', errors: [{ reason: 'notFound' }] } },
    });
    expect(
      (await call(f, 'POST', '/emulator/access-tokens/expire', { email: 'nobody@example.com' })).status,
    ).toBe(404);
    const empty = await call(f, 'POST', '/emulator/access-tokens/expire', {});
    expect(empty).toMatchObject({ status: 400, body: { error: { message: 'give sub or email' } } });
    const { sub } = await f.user();
    const extra = await call(f, 'POST', '/emulator/access-tokens/expire', { sub, client_id: 'x' });
    expect(extra.status).toBe(400);
    expect(extra.body.error.message).toContain('client_id');
  });
});

describe("emulator: pushed security events change Google's own state", () => {
  let f: EmulatorFixture;
  let receiver: Server;
  let receiverUrl: string;
  const received: Array<{ path: string; contentType: string | undefined }> = [];

  beforeAll(async () => {
    f = await startFixture();
    // The relying party's receiver: 202 for every event, or 500 on /broken.
    receiver = createServer((request: IncomingMessage, response) => {
      request.resume();
      request.on('end', () => {
        received.push({ path: request.url ?? '', contentType: request.headers['content-type'] });
        response.statusCode = request.url === '/broken' ? 500 : 202;
        response.end();
      });
    });
    await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
    receiverUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await new Promise<void>((resolve) => receiver.close(() => resolve()));
    await f.close();
  });

  const push = (event: string, body: Record<string, unknown>, path = '/risc') =>
    f.control<{ delivered: boolean; receiver_status: number; jti: string }>('POST', '/emulator/risc/events', {
      receiver_url: `${receiverUrl}${path}`,
      event,
      ...body,
    });
  const expectDead = async (user: { accessToken: string; refreshToken: string }) => {
    expect(await f.refresh(user.refreshToken)).toMatchObject({
      status: 400,
      body: { error: 'invalid_grant', error_description: 'Token has been expired or revoked.' },
    });
    expect((await drive(f, user.accessToken)).status).toBe(401);
    expect((await userinfo(f, user.accessToken)).status).toBe(401);
    expect((await tokeninfo(f, user.accessToken)).status).toBe(400);
  };
  /** The consent screen's Allow, as the browser posts it. */
  const allow = (sub: string) =>
    fetch(`${f.emulator.url}/o/oauth2/v2/auth/decision`, {
      method: 'POST',
      redirect: 'manual',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        client_id: f.emulator.clients.server.clientId,
        redirect_uri: f.emulator.clients.server.redirectUris[0]!,
        scope: 'openid email',
        decision: 'allow',
        sub,
      }).toString(),
    });

  it('tokens-revoked: the refresh token answers invalid_grant, the access token 401; a new sign-in works', async () => {
    const alice = await signedIn(f);
    const bob = await signedIn(f);
    expect(await push('tokens-revoked', { sub: alice.sub })).toMatchObject({
      delivered: true,
      receiver_status: 202,
    });
    await expectDead(alice);
    // Only that user.
    expect((await f.refresh(bob.refreshToken)).status).toBe(200);
    expect((await drive(f, bob.accessToken)).status).toBe(200);
    // Signing in again is a new consent: a new refresh token that works.
    const again = await f.exchange(await f.code(alice.sub));
    expect(again.status).toBe(200);
    expect(again.body.refresh_token).toMatch(/^1\/\/0/);
    expect((await f.refresh(again.body.refresh_token)).status).toBe(200);
    expect(await f.control('GET', '/emulator/stats')).toMatchObject({ revocations: 1 });
  });

  it('account-disabled: every token dies and sign-ins fail until account-enabled', async () => {
    const alice = await signedIn(f);
    const pending = await f.code(alice.sub);
    expect(await push('account-disabled', { sub: alice.sub, reason: 'hijacking' })).toMatchObject({
      delivered: true,
    });
    await expectDead(alice);

    // The SDK hands out no code; a code from before the event cannot be redeemed; the consent screen stops.
    const refused = await call(f, 'POST', '/emulator/codes', {
      sub: alice.sub,
      client_id: f.emulator.clients.apps.ios,
      scope: 'openid email',
    });
    expect(refused).toMatchObject({
      status: 403,
      body: { error: { code: 403, status: 'PERMISSION_DENIED', errors: [{ reason: 'accountDisabled' }] } },
    });
    expect(await f.exchange(pending)).toMatchObject({ status: 400, body: { error: 'invalid_grant' } });
    const consent = await allow(alice.sub);
    expect(consent.status).toBe(403);
    expect(consent.headers.get('location')).toBeNull();
    expect(await consent.text()).toContain('account_disabled');

    expect(await push('account-enabled', { sub: alice.sub })).toMatchObject({ delivered: true });
    // Tokens revoked while disabled stay revoked; a new sign-in works and gets a new refresh token.
    expect((await f.refresh(alice.refreshToken)).body.error).toBe('invalid_grant');
    const again = await f.exchange(await f.code(alice.sub));
    expect(again.status).toBe(200);
    expect(again.body.refresh_token).toMatch(/^1\/\/0/);
    expect((await drive(f, again.body.access_token)).status).toBe(200);
    expect((await allow(alice.sub)).status).toBe(302);
  });

  it('account-disabled without a reason, named by email, does the same', async () => {
    const carol = await signedIn(f);
    await push('account-disabled', { email: carol.email });
    await expectDead(carol);
    expect(
      (
        await call(f, 'POST', '/emulator/codes', {
          email: carol.email,
          client_id: f.emulator.clients.apps.android,
          scope: 'openid',
        })
      ).status,
    ).toBe(403);
    await push('account-enabled', { email: carol.email });
    expect((await f.exchange(await f.code(carol.sub))).status).toBe(200);
  });

  it("Google's state changes even when the receiver fails to take the event", async () => {
    const dave = await signedIn(f);
    expect(await push('tokens-revoked', { sub: dave.sub }, '/broken')).toMatchObject({
      delivered: false,
      receiver_status: 500,
    });
    await expectDead(dave);
  });

  it("other events leave the user's tokens and sign-ins alone", async () => {
    const erin = await signedIn(f);
    for (const event of ['account-credential-change-required', 'account-enabled'])
      await push(event, { sub: erin.sub });
    expect((await f.refresh(erin.refreshToken)).status).toBe(200);
    expect((await drive(f, erin.accessToken)).status).toBe(200);
    expect((await f.exchange(await f.code(erin.sub))).status).toBe(200);
  });

  it('an unknown user is a 404, and nothing is pushed', async () => {
    const pushed = received.length;
    const unknown = await call(f, 'POST', '/emulator/risc/events', {
      receiver_url: `${receiverUrl}/risc`,
      event: 'account-disabled',
      sub: '999999999999999999999',
    });
    expect(unknown).toMatchObject({ status: 404, body: { error: { errors: [{ reason: 'notFound' }] } } });
    expect(received).toHaveLength(pushed);
    expect(received.every((r) => r.contentType === 'application/secevent+jwt')).toBe(true);
  });
});

describe('emulator: a fault with id_token_claims', () => {
  let f: EmulatorFixture;
  beforeAll(async () => {
    f = await startFixture();
  });
  afterAll(async () => {
    await f.close();
  });

  it('the next token answer is served normally, its ID token with those claims replaced (null removes one); the one after is untouched', async () => {
    const { sub } = await f.user();
    const other = 'AAAAAAAAAAAAAAAAAAAAAA';
    await f.control('POST', '/emulator/faults', {
      path: '/token',
      id_token_claims: { at_hash: other, name: null },
    });
    const faulted = await f.exchange(await f.code(sub));
    expect(faulted.status).toBe(200);
    const claims = decodeJwt(faulted.body.id_token).payload;
    expect(claims.at_hash).toBe(other);
    expect(claims).not.toHaveProperty('name');
    expect(claims).toMatchObject({ sub, email_verified: true, given_name: 'Test' });
    // Still validly signed: Google's tokeninfo accepts it.
    expect((await call(f, 'GET', `/tokeninfo?id_token=${faulted.body.id_token}`)).status).toBe(200);
    expect((await f.control('GET', '/emulator/stats')).faults_served).toBe(1);

    // count defaults to 1: the refresh that follows gets an ID token bound to its access token.
    const refreshed = await f.refresh(faulted.body.refresh_token);
    expect(refreshed.status).toBe(200);
    const after = decodeJwt(refreshed.body.id_token).payload;
    expect(after.at_hash).toBe(
      createHash('sha256').update(refreshed.body.access_token).digest().subarray(0, 16).toString('base64url'),
    );
    expect(after.name).toBe('Test User');
  });
});

describe('emulator: Retry-After on faulted 429/503', () => {
  let f: EmulatorFixture;
  beforeAll(async () => {
    f = await startFixture();
  });
  afterAll(async () => {
    await f.close();
  });

  it.each([
    [{ status: 503 }, '1'],
    [{ status: 429, retry_after: 7 }, '7'],
    [{ status: 503, retry_after: null }, null],
    [{ status: 500 }, null],
  ])('%o answers Retry-After %s', async (fault, header) => {
    await f.control('POST', '/emulator/faults', { path: '/drive/v3/files', ...fault });
    const answer = await call(f, 'GET', '/drive/v3/files?spaces=appDataFolder');
    expect(answer.status).toBe(fault.status);
    expect(answer.headers.get('retry-after')).toBe(header);
  });
});

describe('emulator: POST /emulator/faults/release', () => {
  it('lets a request held by latency_ms go on at once; closing the emulator drops any still held instead of waiting', async () => {
    const f = await startFixture();
    let closed = false;
    try {
      const { sub } = await f.user();
      const { body } = await f.exchange(await f.code(sub));
      await f.control('POST', '/emulator/faults', { path: '/token', latency_ms: 120_000, count: 2 });
      const held = f.refresh(body.refresh_token);
      await waitUntil(
        'the refresh is held',
        async () => (await f.control('GET', '/emulator/stats')).faults_served === 1,
      );
      expect((await f.control('GET', '/emulator/stats')).token_requests.refresh_token).toBe(0);
      expect(await f.control('POST', '/emulator/faults/release')).toEqual({ released: 1 });
      expect((await held).status).toBe(200);
      expect(await f.control('POST', '/emulator/faults/release')).toEqual({ released: 0 });

      // A request still held when the emulator closes does not keep it open for two minutes: it is cut.
      const stillHeld = f.refresh(body.refresh_token).then(
        () => 'answered',
        () => 'cut',
      );
      await waitUntil(
        'the second refresh is held',
        async () => (await f.control('GET', '/emulator/stats')).faults_served === 2,
      );
      await f.close();
      closed = true;
      expect(await stillHeld).toBe('cut');
    } finally {
      if (!closed) await f.close();
    }
  });
});
