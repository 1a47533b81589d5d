import { describe, expect, it } from 'vitest';
import { BehalfAuthClient, GoogleHostAllowList } from '../../src/calls/index.js';
import { isBehalfError } from '../../src/errors.js';
import type { TokenService } from '../../src/tokens/index.js';

const API = 'https://www.googleapis.com';

/**
 * Issue 12, point 5: `authFor(sub)` inherits OAuth2Client, whose own methods call Google's OAuth
 * endpoints (accounts.google.com, oauth2.googleapis.com, www.googleapis.com/oauth2) directly with
 * an empty client id, whatever behalf is configured with. Each is refused before anything is sent.
 */
describe('BehalfAuthClient refuses the OAuth2Client methods that would reach Google directly', () => {
  function client() {
    const tokenCalls: string[] = [];
    const tokens = {
      getAccessToken: async (sub: string) => {
        tokenCalls.push(sub);
        return { token: 'ya29.token', expiresAt: 0, scopes: [] };
      },
    } as unknown as TokenService;
    const auth = new BehalfAuthClient('110', tokens, new GoogleHostAllowList(API));
    const sent: unknown[] = [];
    (auth as unknown as { transporter: unknown }).transporter = {
      request: async (options: unknown) => {
        sent.push(options);
        return { data: 'ok', status: 200 };
      },
    };
    return { auth, sent, tokenCalls };
  }

  function expectRefusal(error: unknown, method: string, instead: RegExp): void {
    expect(isBehalfError(error)).toBe(true);
    expect(error).toMatchObject({ code: 'INVALID_REQUEST', reason: 'auth_client_method_refused' });
    expect((error as Error).message).toMatch(new RegExp(`^authFor\\(sub\\)\\.${method}\\(\\) is refused`));
    expect((error as Error).message).toMatch(instead);
  }

  // Every method of google-auth-library 10's OAuth2Client that sends a request to Google's OAuth
  // endpoints (or, for the two URL builders, sends the user or the caller there).
  const promised: Array<[string, (auth: BehalfAuthClient) => Promise<unknown>, RegExp]> = [
    ['getToken', (a) => a.getToken('4/0code'), /behalf\.signIn/],
    ['refreshAccessToken', (a) => a.refreshAccessToken(), /behalf\.getAccessToken/],
    ['revokeToken', (a) => a.revokeToken('ya29.token'), /behalf\.signOut/],
    ['revokeCredentials', (a) => a.revokeCredentials(), /behalf\.signOut/],
    ['verifyIdToken', (a) => a.verifyIdToken({ idToken: 'x.y.z' }), /behalf\.verifyIdToken/],
    ['getTokenInfo', (a) => a.getTokenInfo('ya29.token'), /behalf\.getAccessToken/],
    ['getFederatedSignonCerts', (a) => a.getFederatedSignonCerts(), /behalf\.verifyIdToken/],
    ['getFederatedSignonCertsAsync', (a) => a.getFederatedSignonCertsAsync(), /behalf\.verifyIdToken/],
    ['getIapPublicKeys', (a) => a.getIapPublicKeys(), /IAP/],
    ['getIapPublicKeysAsync', (a) => a.getIapPublicKeysAsync(), /IAP/],
    [
      'refreshToken',
      async (a) => (a as unknown as { refreshToken(t: string): Promise<unknown> }).refreshToken('1//r'),
      /behalf\.getAccessToken/,
    ],
    [
      'refreshTokenNoCache',
      async (a) =>
        (a as unknown as { refreshTokenNoCache(t: string): Promise<unknown> }).refreshTokenNoCache('1//r'),
      /behalf\.getAccessToken/,
    ],
  ];

  it.each(promised)('%s is refused, nothing is sent', async (method, call, instead) => {
    const c = client();
    const error = await call(c.auth).then(
      () => undefined,
      (e: unknown) => e,
    );
    expectRefusal(error, method, instead);
    expect(c.sent).toEqual([]);
    expect(c.tokenCalls).toEqual([]);
  });

  it('the URL builders are refused too', () => {
    const c = client();
    let error: unknown;
    try {
      c.auth.generateAuthUrl({ scope: 'openid' });
    } catch (e) {
      error = e;
    }
    expectRefusal(error, 'generateAuthUrl', /sign in through your app/);
    error = undefined;
    try {
      c.auth.getRevokeTokenURL('ya29.token');
    } catch (e) {
      error = e;
    }
    expectRefusal(error, 'getRevokeTokenURL', /behalf\.signOut/);
  });

  it('a callback-style call gets the refusal in its callback', async () => {
    const c = client();
    const error = await new Promise((resolve) => {
      c.auth.revokeToken('ya29.token', (e: unknown) => resolve(e));
    });
    expectRefusal(error, 'revokeToken', /behalf\.signOut/);
    const viaGetToken = await new Promise((resolve) => {
      c.auth.getToken('4/0code', (e: unknown) => resolve(e));
    });
    expectRefusal(viaGetToken, 'getToken', /behalf\.signIn/);
    expect(c.sent).toEqual([]);
  });

  it("OAuth2Client's inner request and header paths use behalf's token and host check, never its refresh", async () => {
    const c = client();
    const inner = c.auth as unknown as {
      requestAsync(options: { url: string }): Promise<{ data: unknown }>;
      getRequestMetadataAsync(url?: string): Promise<{ headers: Headers }>;
    };
    expect((await inner.requestAsync({ url: `${API}/drive/v3/files` })).data).toBe('ok');
    expect((await inner.getRequestMetadataAsync(`${API}/drive/v3/files`)).headers.get('authorization')).toBe(
      'Bearer ya29.token',
    );
    await expect(inner.requestAsync({ url: 'https://oauth2.example.com/token' })).rejects.toMatchObject({
      code: 'HOST_NOT_ALLOWED',
    });
    expect(c.sent).toHaveLength(1);
  });

  it("a request's baseURL is checked with its url; a request without a URL is refused", async () => {
    const c = client();
    await expect(
      c.auth.request({ baseURL: 'https://evil.example.com', url: '/drive/v3/files' }),
    ).rejects.toMatchObject({ code: 'HOST_NOT_ALLOWED' });
    await expect(c.auth.request({ method: 'GET' })).rejects.toMatchObject({ code: 'HOST_NOT_ALLOWED' });
    expect((await c.auth.request({ baseURL: API, url: '/drive/v3/files' })).data).toBe('ok');
    expect(c.sent).toHaveLength(1);
  });
});
