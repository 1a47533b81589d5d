import { OAuth2Client } from 'google-auth-library';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DRIVE_APPDATA, startFixture, type EmulatorFixture } from './support.js';

/**
 * Issue 15, point 4: errors as Google sends them. Faults carry any Google error body, and the token
 * endpoint's client-authentication answers are Google's.
 */
describe('Google error bodies', () => {
  let f: EmulatorFixture;
  beforeAll(async () => {
    f = await startFixture();
  });
  afterAll(async () => {
    await f.close();
  });

  const client = () => {
    const { server } = f.emulator.clients;
    return new OAuth2Client({
      clientId: server.clientId,
      clientSecret: server.clientSecret,
      endpoints: { oauth2TokenUrl: `${f.emulator.url}/token` },
    });
  };

  const refreshToken = async () => {
    const { sub } = await f.user();
    const { body } = await f.exchange(await f.code(sub, { access_type: 'offline' }));
    return body.refresh_token as string;
  };

  it('a token-endpoint fault carries error_subtype (invalid_rapt), as google-auth-library sees it', async () => {
    const token = await refreshToken();
    await f.control('POST', '/emulator/faults', {
      path: '/token',
      status: 400,
      error: 'invalid_grant',
      error_description: 'reauth related error (invalid_rapt)',
      error_subtype: 'invalid_rapt',
    });
    const oauth = client();
    oauth.setCredentials({ refresh_token: token });
    const failure = await oauth.refreshAccessToken().then(
      () => undefined,
      (error: { response?: { status: number; data: unknown } }) => error,
    );
    expect(failure?.response?.status).toBe(400);
    expect(failure?.response?.data).toEqual({
      error: 'invalid_grant',
      error_description: 'reauth related error (invalid_rapt)',
      error_subtype: 'invalid_rapt',
    });
    // The fault was used up: the next refresh works.
    expect((await f.refresh(token)).status).toBe(200);
  });

  it('deleted_client and admin_policy_enforced come as Google words them', async () => {
    const token = await refreshToken();
    await f.control('POST', '/emulator/faults', {
      path: '/token',
      status: 401,
      error: 'deleted_client',
      error_description: 'The OAuth client was deleted.',
    });
    const deleted = await f.refresh(token);
    expect(deleted).toMatchObject({
      status: 401,
      body: { error: 'deleted_client', error_description: 'The OAuth client was deleted.' },
    });
    expect(deleted.headers.get('cache-control')).toContain('no-store');
  });

  it('a fault may send any JSON body whole', async () => {
    const token = await refreshToken();
    const body = { error: 'admin_policy_enforced', error_description: 'Restricted by your admin', extra: 1 };
    await f.control('POST', '/emulator/faults', { path: '/token', status: 400, body });
    const answer = await f.refresh(token);
    expect(answer).toMatchObject({ status: 400, body });
    expect(answer.headers.get('cache-control')).toContain('no-store');
  });

  it('an API fault carries the details block and its domain; 429 and 403 quota reasons default to usageLimits', async () => {
    const { sub } = await f.user();
    const { body } = await f.exchange(await f.code(sub));
    const details = [
      {
        '@type': 'type.googleapis.com/google.rpc.ErrorInfo',
        reason: 'ACCESS_TOKEN_SCOPE_INSUFFICIENT',
        domain: 'googleapis.com',
        metadata: { service: 'drive.googleapis.com', method: 'google.apps.drive.v3.DriveFiles.List' },
      },
    ];
    await f.control('POST', '/emulator/faults', {
      path: '/drive/v3/files',
      status: 403,
      error: 'insufficientPermissions',
      error_description: 'Request had insufficient authentication scopes.',
      details,
    });
    const call = () =>
      fetch(`${f.emulator.url}/drive/v3/files?spaces=appDataFolder`, {
        headers: { authorization: `Bearer ${body.access_token}` },
      });
    const forbidden = await call();
    expect(forbidden.status).toBe(403);
    expect(await forbidden.json()).toEqual({
      error: {
        code: 403,
        message: 'Request had insufficient authentication scopes.',
        errors: [
          {
            domain: 'global',
            message: 'Request had insufficient authentication scopes.',
            reason: 'insufficientPermissions',
          },
        ],
        status: 'PERMISSION_DENIED',
        details,
      },
    });

    await f.control('POST', '/emulator/faults', { path: '/drive/v3/files', status: 429 });
    const limited = await call();
    expect(limited.status).toBe(429);
    const limitedBody = (await limited.json()) as {
      error: { errors: Array<{ domain: string; reason: string }> };
    };
    expect(limitedBody.error.errors[0]).toMatchObject({ domain: 'usageLimits', reason: 'rateLimitExceeded' });

    // A 403 with a quota reason is a rate limit too: usageLimits, as Drive's error guide shows.
    await f.control('POST', '/emulator/faults', {
      path: '/drive/v3/files',
      status: 403,
      error: 'userRateLimitExceeded',
    });
    const userLimited = await call();
    expect(userLimited.status).toBe(403);
    expect(((await userLimited.json()) as typeof limitedBody).error.errors[0]).toMatchObject({
      domain: 'usageLimits',
      reason: 'userRateLimitExceeded',
    });
  });

  it('refuses error_subtype, details or body without a status', async () => {
    for (const extra of [{ error_subtype: 'invalid_rapt' }, { details: [] }, { body: {} }]) {
      const response = await fetch(`${f.emulator.url}/emulator/faults`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ path: '/token', ...extra }),
      });
      expect(response.status).toBe(400);
    }
  });
});

describe('token endpoint client authentication, as Google answers it', () => {
  let f: EmulatorFixture;
  beforeAll(async () => {
    f = await startFixture();
  });
  afterAll(async () => {
    await f.close();
  });

  it('a missing or empty client_secret is 400 invalid_request "client_secret is missing."', async () => {
    const { sub } = await f.user();
    const code = await f.code(sub);
    const { server } = f.emulator.clients;
    for (const secret of [undefined, '']) {
      const params: Record<string, string> = {
        grant_type: 'authorization_code',
        code,
        client_id: server.clientId,
        redirect_uri: '',
        ...(secret === undefined ? {} : { client_secret: secret }),
      };
      expect(await f.form('/token', params)).toMatchObject({
        status: 400,
        body: { error: 'invalid_request', error_description: 'client_secret is missing.' },
      });
    }
    // google-auth-library without a secret gets the same answer; the code is still unused.
    const noSecret = new OAuth2Client({
      clientId: server.clientId,
      endpoints: { oauth2TokenUrl: `${f.emulator.url}/token` },
    });
    const failure = await noSecret.getToken({ code, redirect_uri: '' }).then(
      () => undefined,
      (error: { response?: { status: number; data: unknown } }) => error,
    );
    expect(failure?.response).toMatchObject({
      status: 400,
      data: { error: 'invalid_request', error_description: 'client_secret is missing.' },
    });
    expect((await f.exchange(code)).status).toBe(200);
  });

  it('no client id at all is 400 invalid_request "Could not determine client ID from request."', async () => {
    const { sub } = await f.user();
    const answer = await f.form('/token', {
      grant_type: 'authorization_code',
      code: await f.code(sub),
      redirect_uri: '',
    });
    expect(answer).toMatchObject({
      status: 400,
      body: { error: 'invalid_request', error_description: 'Could not determine client ID from request.' },
    });
  });

  it('an app client (no secret) at the token endpoint is 401 unauthorized_client', async () => {
    const { sub } = await f.user();
    const answer = await f.form('/token', {
      grant_type: 'authorization_code',
      code: await f.code(sub),
      client_id: f.emulator.clients.apps.ios,
      client_secret: 'anything',
      redirect_uri: '',
    });
    expect(answer).toMatchObject({ status: 401, body: { error: 'unauthorized_client' } });
  });

  it('a wrong secret stays 401 invalid_client "Unauthorized"', async () => {
    const { sub } = await f.user();
    const answer = await f.exchange(await f.code(sub, { scope: `openid ${DRIVE_APPDATA}` }), {
      client_secret: 'GOCSPX-wrong',
    });
    expect(answer).toMatchObject({
      status: 401,
      body: { error: 'invalid_client', error_description: 'Unauthorized' },
    });
  });
});
