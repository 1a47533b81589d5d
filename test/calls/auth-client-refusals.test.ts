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

  /**
   * The refusal as the developer reads it: which call was refused, why, and behalf's call to use
   * instead (the message is the whole of what they are told).
   */
  function expectRefusal(error: unknown, method: string, instead: string): void {
    expect(isBehalfError(error)).toBe(true);
    expect(error).toMatchObject({ code: 'INVALID_REQUEST', reason: 'auth_client_method_refused' });
    expect((error as Error).message).toBe(
      `authFor(sub).${method}() is refused: it would call Google's OAuth endpoints directly, bypassing behalf's configured Google. Instead, ${instead}.`,
    );
  }

  const SIGN_IN = 'behalf.signIn({ code }) redeems a server auth code';
  const REFRESH = 'behalf.getAccessToken(sub) refreshes when due';
  const SIGN_OUT = 'behalf.signOut(sub) revokes the grant at the configured Google';
  const CERTS = "behalf.verifyIdToken(idToken) uses the configured Google's keys";
  const IAP = 'behalf does not verify IAP tokens';

  // Every method of google-auth-library 10's OAuth2Client that sends a request to Google's OAuth
  // endpoints (or, for the two URL builders, sends the user or the caller there).
  const promised: Array<[string, (auth: BehalfAuthClient) => Promise<unknown>, string]> = [
    ['getToken', (a) => a.getToken('4/0code'), SIGN_IN],
    ['refreshAccessToken', (a) => a.refreshAccessToken(), REFRESH],
    ['revokeToken', (a) => a.revokeToken('ya29.token'), SIGN_OUT],
    ['revokeCredentials', (a) => a.revokeCredentials(), SIGN_OUT],
    [
      'verifyIdToken',
      (a) => a.verifyIdToken({ idToken: 'x.y.z' }),
      "behalf.verifyIdToken(idToken) checks it against the configured Google's keys",
    ],
    [
      'getTokenInfo',
      (a) => a.getTokenInfo('ya29.token'),
      'behalf.getAccessToken(sub) says which scopes the token has',
    ],
    ['getFederatedSignonCerts', (a) => a.getFederatedSignonCerts(), CERTS],
    ['getFederatedSignonCertsAsync', (a) => a.getFederatedSignonCertsAsync(), CERTS],
    ['getIapPublicKeys', (a) => a.getIapPublicKeys(), IAP],
    ['getIapPublicKeysAsync', (a) => a.getIapPublicKeysAsync(), IAP],
    [
      'refreshToken',
      async (a) => (a as unknown as { refreshToken(t: string): Promise<unknown> }).refreshToken('1//r'),
      REFRESH,
    ],
    [
      'refreshTokenNoCache',
      async (a) =>
        (a as unknown as { refreshTokenNoCache(t: string): Promise<unknown> }).refreshTokenNoCache('1//r'),
      REFRESH,
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
    expectRefusal(
      error,
      'generateAuthUrl',
      'users sign in through your app, which sends behalf the server auth code',
    );
    error = undefined;
    try {
      c.auth.getRevokeTokenURL('ya29.token');
    } catch (e) {
      error = e;
    }
    expectRefusal(error, 'getRevokeTokenURL', SIGN_OUT);
  });

  it('a callback-style call gets the refusal in its callback, once, and returns nothing (no promise left to reject)', async () => {
    const c = client();
    const answers: Array<[string, unknown]> = [];
    const to = (method: string) => (error: unknown) => answers.push([method, error]);
    // google-auth-library's callback overloads: the callback is the last argument, after zero or
    // more others.
    const returned = [
      c.auth.refreshAccessToken(to('refreshAccessToken')),
      c.auth.revokeCredentials(to('revokeCredentials')),
      c.auth.revokeToken('ya29.token', to('revokeToken')),
      c.auth.getToken('4/0code', to('getToken')),
    ];
    expect(returned).toEqual([undefined, undefined, undefined, undefined]);
    // The callbacks are called on a microtask, as a promise's would be: all have run by the next
    // turn of the event loop.
    await new Promise((resolve) => setImmediate(resolve));
    expect(answers.map(([method]) => method)).toEqual([
      'refreshAccessToken',
      'revokeCredentials',
      'revokeToken',
      'getToken',
    ]);
    expectRefusal(answers[0]?.[1], 'refreshAccessToken', REFRESH);
    expectRefusal(answers[1]?.[1], 'revokeCredentials', SIGN_OUT);
    expectRefusal(answers[2]?.[1], 'revokeToken', SIGN_OUT);
    expectRefusal(answers[3]?.[1], 'getToken', SIGN_IN);
    expect(c.sent).toEqual([]);
    expect(c.tokenCalls).toEqual([]);
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
    ).rejects.toMatchObject({
      code: 'HOST_NOT_ALLOWED',
      message: 'https://evil.example.com is not a Google API host; behalf sends user tokens only to Google.',
    });
    await expect(c.auth.request({ method: 'GET' })).rejects.toMatchObject({
      code: 'HOST_NOT_ALLOWED',
      message: 'A request without a URL is refused.',
    });
    expect((await c.auth.request({ baseURL: API, url: '/drive/v3/files' })).data).toBe('ok');
    expect(c.sent).toHaveLength(1);
  });
});
