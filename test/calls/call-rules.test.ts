import { Readable } from 'node:stream';
import { describe, expect, it, vi } from 'vitest';
import {
  BehalfAuthClient,
  createUserFetch,
  createUserRequest,
  GoogleHostAllowList,
  isGoogleApiHost,
  type CallPolicy,
  type HttpRequestLike,
} from '../../src/calls/index.js';
import { OffsetClock } from '../../src/clock.js';
import { BehalfError } from '../../src/errors.js';
import type { TokenService } from '../../src/tokens/index.js';

const API = 'https://www.googleapis.com';
const LIST = `${API}/drive/v3/files?spaces=appDataFolder`;
const T0 = 1_760_000_000_000;

/** The user's tokens: `ya29.token-1`, then a new one each time a caller reports the current one rejected. */
function fakeTokens(scopes: string[] = []) {
  const asked: Array<{ sub: string; rejected?: string }> = [];
  let current = 1;
  const tokens = {
    getAccessToken: async (sub: string, options: { rejected?: string } = {}) => {
      asked.push({ sub, ...(options.rejected === undefined ? {} : { rejected: options.rejected }) });
      if (options.rejected === `ya29.token-${current}`) current++;
      return { token: `ya29.token-${current}`, expiresAt: T0 + 3_600_000, scopes };
    },
  } as unknown as TokenService;
  return { tokens, asked };
}

type Answer =
  | { status: number; retryAfter?: string; wwwAuthenticate?: string; body?: () => Readable }
  | Error
  | { throws: unknown };

/**
 * behalf's user fetch over a scripted Google (each call takes the next answer; with none left it
 * answers 200), a clock that moves only with the injected sleeps, and random() = 1. With
 * `defaultSleep`, behalf's own sleep (setTimeout) is used instead of the injected one.
 */
function world(
  options: {
    policy?: Partial<CallPolicy>;
    random?: () => number;
    scopes?: string[];
    defaultSleep?: boolean;
  } = {},
) {
  const clock = new OffsetClock({ now: () => T0 });
  const sleeps: number[] = [];
  const sent: Array<{ url: string; method: string; authorization: string | null; body: unknown }> = [];
  const discarded: number[] = [];
  const script: Answer[] = [];
  const { tokens, asked } = fakeTokens(options.scopes);
  const deps = {
    tokens,
    clock,
    allowList: new GoogleHostAllowList(API),
    ...(options.defaultSleep === true
      ? {}
      : {
          sleep: async (ms: number) => {
            sleeps.push(ms);
            clock.advance(ms / 1000);
          },
        }),
    random: options.random ?? (() => 1),
    ...(options.policy === undefined ? {} : { policy: options.policy }),
  };
  const next = (): Answer => script.shift() ?? { status: 200 };
  const fetch = createUserFetch({
    ...deps,
    fetch: async (input, init = {}) => {
      const n = sent.push({
        url: String(input),
        method: init.method ?? 'GET',
        authorization: new Headers(init.headers).get('authorization'),
        body: init.body,
      });
      const answer = next();
      if (answer instanceof Error) throw answer;
      if ('throws' in answer) throw answer.throws;
      const body = new ReadableStream({
        pull: (controller) => controller.enqueue(new TextEncoder().encode('{}')),
        cancel: () => void discarded.push(n),
      });
      const headers = new Headers();
      if (answer.retryAfter !== undefined) headers.set('retry-after', answer.retryAfter);
      if (answer.wwwAuthenticate !== undefined) headers.set('www-authenticate', answer.wwwAuthenticate);
      return new Response(answer.status === 204 ? null : body, { status: answer.status, headers });
    },
  });
  const requests: Array<{ url: string; method: string; headers: Record<string, string>; body: unknown }> = [];
  /** The options each request was given, as given. */
  const requestOptions: Array<Parameters<HttpRequestLike>[1]> = [];
  const request: HttpRequestLike = async (url, init) => {
    requests.push({ url: url.href, method: init.method, headers: init.headers, body: init.body });
    requestOptions.push(init);
    const answer = next();
    if (answer instanceof Error) throw answer;
    if ('throws' in answer) throw answer.throws;
    const headers: Record<string, string[]> = {};
    if (answer.retryAfter !== undefined) headers['retry-after'] = [answer.retryAfter];
    if (answer.wwwAuthenticate !== undefined) headers['www-authenticate'] = [answer.wwwAuthenticate];
    return {
      statusCode: answer.status,
      headers,
      body: answer.body?.() ?? Readable.from([Buffer.from('{"error":{}}')]),
    };
  };
  const userRequest = createUserRequest({ ...deps, request });
  return { fetch, userRequest, script, sleeps, sent, requests, requestOptions, asked, discarded, clock };
}

const statuses = (w: { sent: unknown[] }) => w.sent.length;

describe('calling Google as the user (injected clock and sleep, scripted Google)', () => {
  it("sends the user's token as a bearer token, the method and body as given", async () => {
    const w = world();
    const response = await w.fetch('110', `${API}/drive/v3/files`, { method: 'post', body: '{"name":"a"}' });
    expect(response.status).toBe(200);
    expect(w.sent).toEqual([
      {
        url: `${API}/drive/v3/files`,
        method: 'POST',
        authorization: 'Bearer ya29.token-1',
        body: '{"name":"a"}',
      },
    ]);
    expect(w.asked).toEqual([{ sub: '110' }]);
  });

  it('a URL object works as well as a string', async () => {
    const w = world();
    expect((await w.fetch('110', new URL(LIST))).status).toBe(200);
    expect(w.sent.map((s) => s.url)).toEqual([LIST]);
  });

  it('refuses a host that is not Google before asking for a token', async () => {
    const w = world();
    await expect(w.fetch('110', 'https://evil.example.com/x')).rejects.toMatchObject({
      code: 'HOST_NOT_ALLOWED',
    });
    await expect(w.userRequest('110', 'https://evil.example.com/x')).rejects.toMatchObject({
      code: 'HOST_NOT_ALLOWED',
    });
    expect(w.asked).toEqual([]);
    expect(w.sent).toEqual([]);
  });

  describe('401: the token was refused at Google', () => {
    it('gets a new token, reporting the refused one, and retries once', async () => {
      const w = world();
      w.script.push({ status: 401 });
      expect((await w.fetch('110', LIST)).status).toBe(200);
      expect(w.asked).toEqual([{ sub: '110' }, { sub: '110', rejected: 'ya29.token-1' }]);
      expect(w.sent.map((s) => s.authorization)).toEqual(['Bearer ya29.token-1', 'Bearer ya29.token-2']);
      expect(w.discarded).toEqual([1]);
      expect(w.sleeps).toEqual([]);
    });

    it('a second 401 goes back to the caller', async () => {
      const w = world();
      w.script.push({ status: 401 }, { status: 401 });
      expect((await w.fetch('110', LIST)).status).toBe(401);
      expect(statuses(w)).toBe(2);
    });

    it('a body that cannot be sent again (a stream) is not retried', async () => {
      const w = world();
      w.script.push({ status: 401 });
      const body = new ReadableStream({ start: (c) => c.close() });
      expect(
        (
          await w.fetch('110', `${API}/upload/drive/v3/files`, {
            method: 'PUT',
            body,
            duplex: 'half',
          } as RequestInit)
        ).status,
      ).toBe(401);
      expect(statuses(w)).toBe(1);
      expect(w.asked).toHaveLength(1);
    });

    it.each([
      ['a string', 'text'],
      ['bytes', new Uint8Array([1, 2])],
      ['an ArrayBuffer', new ArrayBuffer(2)],
      ['URLSearchParams', new URLSearchParams({ a: '1' })],
      ['a Blob', new Blob(['x'])],
      ['FormData', new FormData()],
      ['null', null],
    ])('a body that can be sent again (%s) is retried', async (_what, body) => {
      const w = world();
      w.script.push({ status: 401 });
      expect((await w.fetch('110', `${API}/drive/v3/files/x`, { method: 'PUT', body })).status).toBe(200);
      expect(statuses(w)).toBe(2);
    });
  });

  describe('403 insufficient_scope: the user did not grant a scope the call needs', () => {
    const APPDATA = 'https://www.googleapis.com/auth/drive.appdata';
    const FILE = 'https://www.googleapis.com/auth/drive.file';
    const GRANTED = ['openid', 'email', FILE];
    const REFUSED = `www.googleapis.com refused the call: it needs a scope the user did not grant. Ask the user for it (sign in again requesting that scope), then retry.`;
    const scopeError = async (w: ReturnType<typeof world>) =>
      (await w.fetch('110', LIST).catch((e: unknown) => e)) as BehalfError;

    it('is SCOPE_NOT_GRANTED naming the granted scopes and, of the scopes the API names, only those not granted', async () => {
      const w = world({ scopes: GRANTED });
      w.script.push({
        status: 403,
        wwwAuthenticate: `Bearer realm="https://accounts.google.com/", error="insufficient_scope", scope="${APPDATA} ${FILE}"`,
      });
      const error = await scopeError(w);
      expect(error).toBeInstanceOf(BehalfError);
      expect(error).toMatchObject({
        code: 'SCOPE_NOT_GRANTED',
        reason: 'insufficient_scope',
        message: REFUSED,
      });
      expect(error.details).toEqual({
        action: 'request_scopes',
        granted_scopes: GRANTED,
        missing_scopes: [APPDATA],
      });
      // No token will do: not retried, no new token asked for, the answer's body thrown away.
      expect(statuses(w)).toBe(1);
      expect(w.asked).toEqual([{ sub: '110' }]);
      expect(w.discarded).toEqual([1]);
    });

    it('empty entries in the scope list (extra spaces) are not scopes', async () => {
      const w = world({ scopes: GRANTED });
      w.script.push({
        status: 403,
        wwwAuthenticate: `Bearer error="insufficient_scope", scope=" ${APPDATA}  "`,
      });
      expect((await scopeError(w)).details).toEqual({
        action: 'request_scopes',
        granted_scopes: GRANTED,
        missing_scopes: [APPDATA],
      });
    });

    it.each([
      ['names no scope', 'Bearer error="insufficient_scope"'],
      ['names an empty scope list', 'Bearer error="insufficient_scope", scope=""'],
      ['names only granted scopes', `Bearer error="insufficient_scope", scope="${FILE}"`],
    ])('when the API %s, no missing_scopes are claimed', async (_what, wwwAuthenticate) => {
      const w = world({ scopes: GRANTED });
      w.script.push({ status: 403, wwwAuthenticate });
      const error = await scopeError(w);
      expect(error).toMatchObject({ code: 'SCOPE_NOT_GRANTED', message: REFUSED });
      expect(error.details).toStrictEqual({ action: 'request_scopes', granted_scopes: GRANTED });
    });

    it('the proxy path reads the header from its first value', async () => {
      const w = world({ scopes: GRANTED });
      w.script.push({
        status: 403,
        wwwAuthenticate: `Bearer error="insufficient_scope", scope="${APPDATA}"`,
      });
      await expect(w.userRequest('110', LIST)).rejects.toMatchObject({
        code: 'SCOPE_NOT_GRANTED',
        details: { missing_scopes: [APPDATA] },
      });
    });

    it.each([
      ['a 403 for another reason', { status: 403, wwwAuthenticate: 'Bearer error="invalid_token"' }],
      ['a 403 without WWW-Authenticate', { status: 403 }],
      [
        'another status naming insufficient_scope',
        { status: 400, wwwAuthenticate: 'Bearer error="insufficient_scope"' },
      ],
    ])('%s goes back to the caller as it is', async (_what, answer) => {
      const w = world();
      w.script.push(answer);
      expect((await w.fetch('110', LIST)).status).toBe(answer.status);
      expect(statuses(w)).toBe(1);
    });
  });

  describe('429 and 503', () => {
    it.each([
      ['429', 429, 'GET'],
      ['429 on a POST', 429, 'POST'],
      ['503', 503, 'GET'],
      ['503 on a POST', 503, 'POST'],
    ])('%s with Retry-After: waits as asked, then retries', async (_what, status, method) => {
      const w = world();
      w.script.push({ status, retryAfter: '7' });
      expect((await w.fetch('110', LIST, { method })).status).toBe(200);
      expect(w.sleeps).toEqual([7_000]);
      expect(statuses(w)).toBe(2);
      expect(w.discarded).toEqual([1]);
    });

    it('a Retry-After as an HTTP date is waited for until then', async () => {
      const w = world();
      w.script.push({ status: 429, retryAfter: new Date(T0 + 12_000).toUTCString() });
      expect((await w.fetch('110', LIST)).status).toBe(200);
      expect(w.sleeps).toEqual([12_000]);
    });

    it('429 without Retry-After, even on a POST, is retried after the backoff', async () => {
      const w = world();
      w.script.push({ status: 429 });
      expect((await w.fetch('110', LIST, { method: 'POST' })).status).toBe(200);
      expect(w.sleeps).toEqual([250]);
    });

    it('503 without Retry-After on a POST goes back to the caller', async () => {
      const w = world();
      w.script.push({ status: 503 });
      expect((await w.fetch('110', LIST, { method: 'POST' })).status).toBe(503);
      expect(w.sleeps).toEqual([]);
      expect(statuses(w)).toBe(1);
    });

    it('a Retry-After of exactly maxRetryAfterSeconds is waited for; one second more goes back to the caller', async () => {
      const w = world({ policy: { maxRetryAfterSeconds: 30, deadlineMs: 600_000 } });
      w.script.push({ status: 429, retryAfter: '30' }, { status: 429, retryAfter: '31' });
      const response = await w.fetch('110', LIST);
      expect(response.status).toBe(429);
      expect(w.sleeps).toEqual([30_000]);
      expect(statuses(w)).toBe(2);
    });

    it('a wait that would end at the deadline is not taken', async () => {
      const w = world({ policy: { deadlineMs: 5_000 } });
      w.script.push({ status: 429, retryAfter: '4' }, { status: 429, retryAfter: '1' });
      expect((await w.fetch('110', LIST)).status).toBe(429);
      expect(w.sleeps).toEqual([4_000]);
    });

    it('without an injected sleep, the retry waits for a timer of the asked length', async () => {
      vi.useFakeTimers({ toFake: ['setTimeout'] });
      try {
        const w = world({ defaultSleep: true });
        w.script.push({ status: 429, retryAfter: '2' });
        const answer = w.fetch('110', LIST);
        await vi.advanceTimersByTimeAsync(1_999);
        expect(statuses(w)).toBe(1);
        await vi.advanceTimersByTimeAsync(1);
        expect((await answer).status).toBe(200);
        expect(statuses(w)).toBe(2);
      } finally {
        vi.useRealTimers();
      }
    });

    it('a streamed body is sent once', async () => {
      const w = world();
      w.script.push({ status: 429, retryAfter: '1' });
      const body = new ReadableStream({ start: (c) => c.close() });
      expect(
        (await w.fetch('110', LIST, { method: 'PUT', body, duplex: 'half' } as RequestInit)).status,
      ).toBe(429);
      expect(statuses(w)).toBe(1);
    });
  });

  describe('5xx and network errors', () => {
    it.each([['GET'], ['HEAD'], ['OPTIONS'], ['PUT'], ['DELETE']])(
      '%s (idempotent) is retried with exponential backoff, maxAttempts in all',
      async (method) => {
        const w = world();
        w.script.push({ status: 500 }, { status: 502 }, { status: 503 }, { status: 500 });
        expect((await w.fetch('110', LIST, { method })).status).toBe(500);
        expect(statuses(w)).toBe(4);
        expect(w.sleeps).toEqual([250, 500, 1_000]);
        expect(w.discarded).toEqual([1, 2, 3]);
      },
    );

    it.each([['POST'], ['PATCH']])('%s is not retried', async (method) => {
      const w = world();
      w.script.push({ status: 500 });
      expect((await w.fetch('110', LIST, { method })).status).toBe(500);
      expect(statuses(w)).toBe(1);
    });

    it('the backoff is capped at maxDelayMs and scaled by random() (full jitter)', async () => {
      const w = world({ policy: { maxAttempts: 6, baseDelayMs: 100, maxDelayMs: 300 }, random: () => 0.5 });
      w.script.push({ status: 500 }, { status: 500 }, { status: 500 }, { status: 500 });
      expect((await w.fetch('110', LIST)).status).toBe(200);
      expect(w.sleeps).toEqual([50, 100, 150, 150]);
    });

    it('no retry starts that would end at or after the deadline', async () => {
      // Backoffs 250, 500: the first ends at 250 < 750, the second would end exactly at 750.
      const w = world({ policy: { deadlineMs: 750 } });
      w.script.push({ status: 500 }, { status: 500 }, { status: 500 });
      expect((await w.fetch('110', LIST)).status).toBe(500);
      expect(w.sleeps).toEqual([250]);
      expect(statuses(w)).toBe(2);
    });

    it('a network error on a GET is retried, and when retries run out it is a retryable GOOGLE_UNAVAILABLE naming the host', async () => {
      const w = world({ policy: { maxAttempts: 2 } });
      w.script.push(new TypeError('fetch failed'), new TypeError('fetch failed'));
      const error = (await w.fetch('110', LIST).catch((e: unknown) => e)) as BehalfError;
      expect(error).toBeInstanceOf(BehalfError);
      expect(error).toMatchObject({
        code: 'GOOGLE_UNAVAILABLE',
        reason: 'network',
        message: 'www.googleapis.com could not be reached; retry later.',
      });
      expect((error.cause as Error).message).toBe('TypeError');
      expect(w.sleeps).toEqual([250]);
      expect(statuses(w)).toBe(2);
    });

    it('a network error on a GET, then an answer: the answer', async () => {
      const w = world();
      w.script.push(new TypeError('fetch failed'));
      expect((await w.fetch('110', LIST)).status).toBe(200);
      expect(w.sleeps).toEqual([250]);
    });

    it('a network error on a POST is not retried', async () => {
      const w = world();
      w.script.push(new TypeError('fetch failed'));
      await expect(w.fetch('110', LIST, { method: 'POST' })).rejects.toMatchObject({
        code: 'GOOGLE_UNAVAILABLE',
        reason: 'network',
      });
      expect(statuses(w)).toBe(1);
    });

    it('a network failure that is not an Error is GOOGLE_UNAVAILABLE too, its cause named "network error"', async () => {
      const w = world();
      w.script.push({ throws: 'socket hang up' });
      const error = (await w.fetch('110', LIST, { method: 'POST' }).catch((e: unknown) => e)) as BehalfError;
      expect(error).toMatchObject({
        code: 'GOOGLE_UNAVAILABLE',
        reason: 'network',
        message: 'www.googleapis.com could not be reached; retry later.',
      });
      expect((error.cause as Error).message).toBe('network error');
    });

    it("an error that is already behalf's is passed on as it is", async () => {
      const w = world();
      const refused = new BehalfError('NEEDS_CONSENT', 'gone');
      w.script.push(refused);
      await expect(w.fetch('110', LIST)).rejects.toBe(refused);
      expect(statuses(w)).toBe(1);
    });

    it("the caller's abort ends the call with the caller's error, not retried", async () => {
      const w = world();
      const controller = new AbortController();
      controller.abort();
      const aborted = new DOMException('This operation was aborted', 'AbortError');
      w.script.push(aborted);
      await expect(w.fetch('110', LIST, { signal: controller.signal })).rejects.toBe(aborted);
      expect(statuses(w)).toBe(1);
    });
  });

  describe('on Node streams (the proxy)', () => {
    it("lower-cases the caller's header names and sets the bearer token over any given", async () => {
      const w = world();
      const answer = await w.userRequest('110', LIST, {
        headers: { 'X-Goog-Field': 'a', Authorization: 'Bearer caller' },
      });
      expect(answer.status).toBe(200);
      expect(w.requests).toEqual([
        {
          url: LIST,
          method: 'GET',
          headers: { 'x-goog-field': 'a', authorization: 'Bearer ya29.token-1' },
          body: null,
        },
      ]);
    });

    it('retries a buffered body after a 401 with the new token; a streamed one is sent once', async () => {
      const w = world();
      w.script.push({ status: 401 });
      expect(
        (await w.userRequest('110', `${API}/drive/v3/files`, { method: 'post', body: Buffer.from('x') }))
          .status,
      ).toBe(200);
      expect(w.requests.map((r) => [r.method, r.headers.authorization])).toEqual([
        ['POST', 'Bearer ya29.token-1'],
        ['POST', 'Bearer ya29.token-2'],
      ]);
      w.script.push({ status: 401 });
      const streamed = await w.userRequest('110', `${API}/drive/v3/files`, {
        method: 'POST',
        body: Readable.from(['x']),
      });
      expect(streamed.status).toBe(401);
      expect(w.requests).toHaveLength(3);
    });

    it("passes the caller's signal to the HTTP client, and no signal option when there is none", async () => {
      const w = world();
      await w.userRequest('110', LIST);
      const controller = new AbortController();
      await w.userRequest('110', LIST, { signal: controller.signal });
      expect(Object.keys(w.requestOptions[0] ?? {}).sort()).toEqual(['body', 'headers', 'method']);
      expect(w.requestOptions[1]?.signal).toBe(controller.signal);
    });

    describe('an answer thrown away before a retry', () => {
      const chunks = (...sizes: number[]) => sizes.map((n) => Buffer.alloc(n, 'x'));
      /** userRequest after a 401 whose body is `body`: the retry's answer, and that body. */
      async function afterRefused(body: Readable) {
        const w = world();
        w.script.push({ status: 401, body: () => body });
        const answer = await w.userRequest('110', LIST);
        expect(answer.status).toBe(200);
        expect(w.requests).toHaveLength(2);
        return body;
      }

      it('a small one is read to its end, so its connection can serve the next call', async () => {
        const body = await afterRefused(Readable.from(chunks(10, 20, 30)));
        expect(body.readableEnded).toBe(true);
      });

      it('one of exactly 64 KiB is still read to its end', async () => {
        const body = await afterRefused(Readable.from(chunks(16_384, 16_384, 16_384, 16_384)));
        expect(body.readableEnded).toBe(true);
      });

      it('a larger one is given up (destroyed) once more than 64 KiB has come', async () => {
        const body = await afterRefused(Readable.from(chunks(16_384, 16_384, 16_384, 16_384, 1, 16_384)));
        expect(body.readableEnded).toBe(false);
        expect(body.destroyed).toBe(true);
      });

      it('one cut short by an error does not stop the retry', async () => {
        const body = new Readable({
          read() {
            this.destroy(new Error('other side closed'));
          },
        });
        await afterRefused(body);
        expect(body.destroyed).toBe(true);
      });
    });

    it('reads Retry-After from its (first) header value', async () => {
      const w = world();
      w.script.push({ status: 503, retryAfter: '3' });
      expect((await w.userRequest('110', LIST, { body: 'again' })).status).toBe(200);
      expect(w.sleeps).toEqual([3_000]);
    });
  });
});

describe('where user tokens may go', () => {
  const allowList = new GoogleHostAllowList('http://127.0.0.1:8089', ['https://extra.example.com:8443/path']);

  it.each([
    'https://www.googleapis.com/drive/v3/files',
    'https://googleapis.com/x',
    'https://people.googleapis.com:443/v1/people/me',
    'https://WWW.GoogleAPIs.com/x',
    'http://127.0.0.1:8089/drive/v3/files',
    'https://extra.example.com:8443/other',
  ])('%s is allowed', (url) => {
    expect(allowList.check(url).href).toBe(new URL(url).href);
    expect(allowList.check(new URL(url)).href).toBe(new URL(url).href);
  });

  it.each([
    ['plain HTTP', 'http://www.googleapis.com/x'],
    ['another port', 'https://www.googleapis.com:8443/x'],
    ['a look-alike suffix', 'https://www.googleapis.com.evil.example.com/x'],
    ['a look-alike prefix', 'https://evilgoogleapis.com/x'],
    ['another host', 'https://evil.example.com/x'],
    ['the configured host on another port', 'http://127.0.0.1:8090/x'],
    ['the configured host over another scheme', 'https://127.0.0.1:8089/x'],
    ['credentials in the URL', 'https://user:pass@www.googleapis.com/x'],
    ['a user name in the URL', 'https://user@www.googleapis.com/x'],
    ['a password in the URL', 'https://:pass@www.googleapis.com/x'],
  ])('%s is refused with HOST_NOT_ALLOWED', (_what, url) => {
    expect(() => allowList.check(url)).toThrow(expect.objectContaining({ code: 'HOST_NOT_ALLOWED' }));
  });

  it('a URL that does not parse is INVALID_REQUEST', () => {
    expect(() => allowList.check('not a url')).toThrow(
      expect.objectContaining({
        code: 'INVALID_REQUEST',
        message: 'The Google API URL is not a valid absolute URL.',
      }),
    );
  });

  it('the refusal names the scheme and host only: never the path, query or credentials', () => {
    expect(() => allowList.check('https://user:secret@evil.example.com:8443/x?token=ya29.abc')).toThrow(
      expect.objectContaining({
        code: 'HOST_NOT_ALLOWED',
        message:
          'https://evil.example.com:8443 is not a Google API host; behalf sends user tokens only to Google.',
      }),
    );
    expect(() => allowList.check('https://user:secret@www.googleapis.com/x')).toThrow(
      expect.objectContaining({
        message:
          'https://www.googleapis.com is not a Google API host; behalf sends user tokens only to Google.',
      }),
    );
  });

  it.each([
    ['googleapis.com', true],
    ['www.googleapis.com', true],
    ['WWW.GOOGLEAPIS.COM', true],
    ['a_b.googleapis.com', false],
    ['evil.com/.googleapis.com', false],
    ['xgoogleapis.com', false],
    ['googleapis.com.evil.com', false],
  ])('isGoogleApiHost(%j) is %s', (host, allowed) => {
    expect(isGoogleApiHost(host)).toBe(allowed);
  });
});

describe('BehalfAuthClient (for googleapis)', () => {
  function client() {
    const { tokens, asked } = fakeTokens();
    const auth = new BehalfAuthClient('110', tokens, new GoogleHostAllowList(API));
    const sent: Array<{ url: unknown; authorization: string | null }> = [];
    const failures: unknown[] = [];
    (auth as unknown as { transporter: unknown }).transporter = {
      request: async (options: { url?: unknown; headers?: Headers }) => {
        sent.push({ url: options.url, authorization: new Headers(options.headers).get('authorization') });
        const failure = failures.shift();
        if (failure !== undefined) throw failure;
        return { data: 'ok', status: 200 };
      },
    };
    return { auth, asked, sent, failures };
  }
  const unauthorized = () =>
    Object.assign(new Error('Request failed with status code 401'), { response: { status: 401 } });

  it("adds the user's token, and gives its access token and headers only for Google hosts", async () => {
    const c = client();
    expect(await c.auth.getAccessToken()).toEqual({ token: 'ya29.token-1', res: null });
    expect((await c.auth.getRequestHeaders(LIST)).get('authorization')).toBe('Bearer ya29.token-1');
    expect((await c.auth.getRequestHeaders()).get('authorization')).toBe('Bearer ya29.token-1');
    await expect(c.auth.getRequestHeaders('https://evil.example.com/')).rejects.toMatchObject({
      code: 'HOST_NOT_ALLOWED',
    });
    expect((await c.auth.request({ url: LIST })).data).toBe('ok');
    expect(c.sent).toEqual([{ url: LIST, authorization: 'Bearer ya29.token-1' }]);
    await expect(c.auth.request({ url: 'https://evil.example.com/' })).rejects.toMatchObject({
      code: 'HOST_NOT_ALLOWED',
    });
    expect(c.sent).toHaveLength(1);
  });

  it('a 401 gets a new token and one retry; other failures and a second 401 go back to the caller', async () => {
    const c = client();
    c.failures.push(unauthorized());
    expect((await c.auth.request({ url: LIST })).data).toBe('ok');
    expect(c.asked).toEqual([{ sub: '110' }, { sub: '110', rejected: 'ya29.token-1' }]);
    expect(c.sent.map((s) => s.authorization)).toEqual(['Bearer ya29.token-1', 'Bearer ya29.token-2']);

    const second = unauthorized();
    c.failures.push(unauthorized(), second);
    await expect(c.auth.request({ url: LIST })).rejects.toBe(second);

    const serverError = Object.assign(new Error('500'), { response: { status: 500 } });
    c.failures.push(serverError);
    await expect(c.auth.request({ url: LIST })).rejects.toBe(serverError);
    expect(c.sent).toHaveLength(5);
  });

  it.each([
    ['a streamed body', { data: Readable.from(['x']) }],
    [
      'a streamed multipart part',
      {
        multipart: [
          { headers: new Headers({ 'content-type': 'text/plain' }), content: Readable.from(['x']) },
        ],
      },
    ],
  ])(
    '%s is not sent again after a 401',
    async (
      _what,
      options: { data?: Readable; multipart?: Array<{ headers: Headers; content: Readable }> },
    ) => {
      const c = client();
      const refused = unauthorized();
      c.failures.push(refused);
      await expect(c.auth.request({ url: LIST, method: 'POST', ...options })).rejects.toBe(refused);
      expect(c.sent).toHaveLength(1);
    },
  );

  it('a multipart body of strings is sent again after a 401', async () => {
    const c = client();
    c.failures.push(unauthorized());
    await c.auth.request({
      url: LIST,
      method: 'POST',
      multipart: [{ headers: new Headers({ 'content-type': 'text/plain' }), content: 'x' }],
    });
    expect(c.sent).toHaveLength(2);
  });
});
