import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHarness, type Harness } from '../support/harness.js';

const APP = 'https://app.example.com';
const EVIL = 'https://evil.example.com';

/** Every CORS response header a response carries (none is a grant of nothing). */
function corsHeaders(response: Response): Record<string, string> {
  return Object.fromEntries([...response.headers].filter(([name]) => name.startsWith('access-control-')));
}

/** Issue 13, point 1: web pages on an allowed origin POST their code cross-origin; nothing else gets CORS. */
describe('CORS: the sign-in route alone answers browsers on other origins', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness();
  });
  afterAll(async () => {
    await h.close();
  });

  const preflight = (origin: string, path = '/v1/google/signin', headers = 'content-type,x-requested-with') =>
    fetch(`${h.url}${path}`, {
      method: 'OPTIONS',
      headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': headers },
    });

  it('answers a preflight from an allowed origin: the origin echoed, POST and the two headers, no credentials', async () => {
    const response = await preflight(APP);
    expect(response.status).toBe(204);
    expect(corsHeaders(response)).toEqual({
      'access-control-allow-origin': APP,
      'access-control-allow-methods': 'POST',
      'access-control-allow-headers': 'content-type, x-requested-with',
      'access-control-expose-headers': 'retry-after',
      'access-control-max-age': '600',
    });
    expect(response.headers.get('vary')).toMatch(/\bOrigin\b/);
  });

  it('a web popup code POSTed from an allowed origin signs in, and the page may read the answer', async () => {
    const { sub, code } = await h.newUserWithCode({ platform: 'web' });
    const response = await h.signIn(
      code,
      { redirect_uri: 'postmessage' },
      { 'x-requested-with': 'XMLHttpRequest', origin: APP },
    );
    expect(response.status).toBe(201);
    expect(response.headers.get('access-control-allow-origin')).toBe(APP);
    expect(response.headers.get('access-control-allow-credentials')).toBeNull();
    expect(response.headers.get('vary')).toMatch(/\bOrigin\b/);
    expect(await response.json()).toMatchObject({ user: { sub }, created: true });
  });

  it('a refusal to an allowed origin is readable by the page too (its stable error code)', async () => {
    const response = await h.signIn(
      '4/0Anot-a-real-code',
      { redirect_uri: 'postmessage' },
      { 'x-requested-with': 'XMLHttpRequest', origin: APP },
    );
    expect(response.status).toBe(400);
    expect(response.headers.get('access-control-allow-origin')).toBe(APP);
    expect(await response.json()).toMatchObject({ error: 'CODE_INVALID' });
  });

  it('any other origin gets no CORS grant: its preflight is refused, and so is its POST, which never reaches Google', async () => {
    for (const origin of [EVIL, 'null', `${APP}:8443`, 'http://app.example.com']) {
      const response = await preflight(origin);
      expect(response.status).toBe(403);
      expect(corsHeaders(response)).toEqual({});
      expect(await response.json()).toMatchObject({ error: 'ORIGIN_NOT_ALLOWED' });
    }
    const { sub, code } = await h.newUserWithCode({ platform: 'web' });
    const refused = await h.signIn(
      code,
      { redirect_uri: 'postmessage' },
      { 'x-requested-with': 'XMLHttpRequest', origin: EVIL },
    );
    expect(refused.status).toBe(403);
    expect(corsHeaders(refused)).toEqual({});
    expect(await refused.json()).toMatchObject({ error: 'ORIGIN_NOT_ALLOWED' });
    // A form post (what a browser sends without a preflight) fails the X-Requested-With check first.
    const form = await fetch(`${h.url}/v1/google/signin`, {
      method: 'POST',
      headers: { origin: EVIL, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ code, redirect_uri: 'postmessage' }).toString(),
    });
    expect(form.status).toBe(403);
    expect(corsHeaders(form)).toEqual({});
    expect(await form.json()).toMatchObject({ error: 'CSRF_HEADER_REQUIRED' });
    // The code was never exchanged: it still works from the allowed origin.
    const allowed = await h.signIn(
      code,
      { redirect_uri: 'postmessage' },
      { 'x-requested-with': 'XMLHttpRequest', origin: APP },
    );
    expect(allowed.status).toBe(201);
    expect(await allowed.json()).toMatchObject({ user: { sub } });
  });

  it('a request without Origin (an iOS or Android app) gets no CORS headers', async () => {
    const { code } = await h.newUserWithCode();
    const response = await h.signIn(code);
    expect(response.status).toBe(201);
    expect(corsHeaders(response)).toEqual({});
  });

  it('a preflight for headers other than the two a sign-in sends is not granted them', async () => {
    const response = await preflight(APP, '/v1/google/signin', 'authorization');
    expect(response.headers.get('access-control-allow-headers')).toBe('content-type, x-requested-with');
  });

  it('every other route sends no CORS grant, to an allowed origin either: service API, RISC, health, admin, metrics, unknown paths', async () => {
    const sub = await h.signedInUser();
    const routes: Array<[string, string]> = [
      ['GET', '/healthz'],
      ['GET', `/v1/users/${sub}`],
      ['POST', `/v1/users/${sub}/access-token`],
      ['GET', `/v1/users/${sub}/google/drive/v3/files?spaces=appDataFolder`],
      ['POST', '/v1/id-tokens/verify'],
      ['POST', '/v1/google/risc'],
      ['GET', '/admin'],
      ['GET', '/metrics'],
      ['GET', '/v1/google/signin'],
      ['POST', '/v1/google/signin/extra'],
      ['POST', '/v1/google/signinx'],
    ];
    for (const [method, path] of routes) {
      const plain = await fetch(`${h.url}${path}`, {
        method,
        headers: {
          origin: APP,
          authorization: `Bearer ${h.apiKey}`,
          'x-requested-with': 'XMLHttpRequest',
          ...(method === 'POST' ? { 'content-type': 'application/json' } : {}),
        },
        ...(method === 'POST' ? { body: '{}' } : {}),
      });
      expect({ method, path, cors: corsHeaders(plain) }).toEqual({ method, path, cors: {} });
      await plain.body?.cancel();
      if (path === '/v1/google/signin') continue; // its preflight is the sign-in route's, above
      // No preflight succeeds either (the proxy takes any method, so it answers 401 rather than 404).
      const options = await preflight(APP, path, 'authorization,content-type');
      expect({ path, refused: options.status >= 400, cors: corsHeaders(options) }).toEqual({
        path,
        refused: true,
        cors: {},
      });
      await options.body?.cancel();
    }
  });
});
