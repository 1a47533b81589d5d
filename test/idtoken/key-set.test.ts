import { describe, expect, it } from 'vitest';
import { OffsetClock } from '../../src/clock.js';
import { GoogleKeySet, parseJwks } from '../../src/idtoken/index.js';
import { RSA_1024, RSA_2048_A, RSA_2048_B } from './fixture-keys.js';

const key = RSA_2048_A.publicKey;
const jwk = (kid: string) => ({
  ...(key.export({ format: 'jwk' }) as object),
  kid,
  alg: 'RS256',
  use: 'sig',
});

function serving(
  kids: () => string[],
  headers: Record<string, string> = { 'cache-control': 'public, max-age=600' },
) {
  let calls = 0;
  const fetchImpl: typeof fetch = async () => {
    calls++;
    await new Promise((resolve) => setTimeout(resolve, 5));
    return new Response(JSON.stringify({ keys: kids().map(jwk) }), { headers });
  };
  return { fetchImpl, calls: () => calls };
}

/**
 * Google's keys are cached per Cache-Control and refetched on rotation
 * (https://developers.google.com/identity/openid-connect/openid-connect#validatinganidtoken).
 */
describe('GoogleKeySet', () => {
  it('caches keys for max-age minus Age, then fetches again', async () => {
    const clock = new OffsetClock();
    const server = serving(() => ['k1'], {
      'cache-control': 'public, max-age=600, must-revalidate',
      age: '100',
    });
    const keys = new GoogleKeySet({ jwksUri: 'https://x/certs', fetch: server.fetchImpl, clock });
    expect(await keys.getKey('k1')).not.toBeNull();
    expect(await keys.getKey('k1')).not.toBeNull();
    expect(server.calls()).toBe(1);
    clock.advance(499);
    await keys.getKey('k1');
    expect(server.calls()).toBe(1);
    clock.advance(2);
    await keys.getKey('k1');
    expect(server.calls()).toBe(2);
  });

  it('concurrent lookups share one fetch', async () => {
    const server = serving(() => ['k1']);
    const keys = new GoogleKeySet({
      jwksUri: 'https://x/certs',
      fetch: server.fetchImpl,
      clock: new OffsetClock(),
    });
    await Promise.all(Array.from({ length: 100 }, () => keys.getKey('k1')));
    expect(server.calls()).toBe(1);
  });

  it('after a rotation an unknown kid triggers one refetch; refetches are rate-limited', async () => {
    let published = ['k1'];
    const clock = new OffsetClock();
    const server = serving(() => published);
    const keys = new GoogleKeySet({
      jwksUri: 'https://x/certs',
      fetch: server.fetchImpl,
      clock,
      minRefetchIntervalMs: 30_000,
    });
    await keys.getKey('k1');
    clock.advance(60);
    published = ['k2', 'k1'];
    expect(await keys.getKey('k2')).not.toBeNull();
    expect(server.calls()).toBe(2);
    expect(await keys.getKey('made-up-1')).toBeNull();
    expect(await keys.getKey('made-up-2')).toBeNull();
    expect(server.calls()).toBe(2);
    clock.advance(31);
    expect(await keys.getKey('made-up-3')).toBeNull();
    expect(server.calls()).toBe(3);
  });

  it('a failing key endpoint is a retryable GOOGLE_UNAVAILABLE; known keys survive a failed refresh', async () => {
    const clock = new OffsetClock();
    let up = false;
    const fetchImpl: typeof fetch = async () => {
      if (!up) return new Response('oops', { status: 503 });
      return new Response(JSON.stringify({ keys: [jwk('k1')] }), {
        headers: { 'cache-control': 'max-age=60' },
      });
    };
    const keys = new GoogleKeySet({ jwksUri: 'https://x/certs', fetch: fetchImpl, clock });
    await expect(keys.getKey('k1')).rejects.toMatchObject({ code: 'GOOGLE_UNAVAILABLE', retryable: true });
    up = true;
    expect(await keys.getKey('k1')).not.toBeNull();
    up = false;
    clock.advance(120);
    expect(await keys.getKey('k1')).not.toBeNull();
  });
});

/** A clock that moves only when told (milliseconds): exact edges. */
class StoppedClock {
  constructor(public ms: number) {}
  now(): number {
    return this.ms;
  }
}

const other = RSA_2048_B.publicKey;
const jwkOf = (k: typeof key, fields: Record<string, unknown>) => ({
  ...(k.export({ format: 'jwk' }) as object),
  ...fields,
});

/** A key endpoint answering `body` (JSON unless a string) with `init`, recording each request. */
function answering(body: unknown, init: ResponseInit = { headers: { 'cache-control': 'max-age=600' } }) {
  const requests: Array<{ url: string; init: RequestInit | undefined }> = [];
  const fetchImpl: typeof fetch = async (url, requestInit) => {
    requests.push({ url: url.toString(), init: requestInit });
    return new Response(typeof body === 'string' ? body : JSON.stringify(body), init);
  };
  return { fetchImpl, requests };
}

async function unavailableError(promise: Promise<unknown>): Promise<Record<string, unknown>> {
  const error = (await promise.then(
    () => undefined,
    (e: unknown) => e,
  )) as Record<string, unknown> & Error;
  expect(error).toMatchObject({
    code: 'GOOGLE_UNAVAILABLE',
    reason: 'keys_unavailable',
    retryAfter: 5,
    retryable: true,
  });
  return { ...error, message: error.message };
}

describe('GoogleKeySet edges', () => {
  it('asks for JSON at the configured URL', async () => {
    const server = answering({ keys: [jwk('k1')] });
    const keys = new GoogleKeySet({
      jwksUri: 'https://x/certs',
      fetch: server.fetchImpl,
      clock: new OffsetClock(),
    });
    await keys.getKey('k1');
    expect(server.requests).toHaveLength(1);
    expect(server.requests[0]!.url).toBe('https://x/certs');
    expect(new Headers(server.requests[0]!.init?.headers).get('accept')).toBe('application/json');
    expect(server.requests[0]!.init?.signal).toBeInstanceOf(AbortSignal);
  });

  it('serves a cached key until the exact millisecond the cache expires, then fetches again', async () => {
    const clock = new StoppedClock(1_000_000);
    const server = answering({ keys: [jwk('k1')] }, { headers: { 'cache-control': 'max-age=600' } });
    const keys = new GoogleKeySet({ jwksUri: 'https://x/certs', fetch: server.fetchImpl, clock });
    expect(keys.freshKey('k1')).toBeUndefined();
    await keys.getKey('k1');
    clock.ms += 600_000 - 1;
    expect(keys.freshKey('k1')).toBeDefined();
    expect(await keys.getKey('k1')).not.toBeNull();
    expect(server.requests).toHaveLength(1);
    clock.ms += 1;
    expect(keys.freshKey('k1')).toBeUndefined();
    expect(await keys.getKey('k1')).not.toBeNull();
    expect(server.requests).toHaveLength(2);
  });

  it('without a usable Cache-Control, keeps keys for the default lifetime (1 h unless configured)', async () => {
    for (const [options, lifetimeMs] of [
      [{}, 3_600_000],
      [{ defaultMaxAgeSeconds: 30 }, 30_000],
    ] as const) {
      const clock = new StoppedClock(0);
      const server = answering({ keys: [jwk('k1')] }, { headers: {} });
      const keys = new GoogleKeySet({
        jwksUri: 'https://x/certs',
        fetch: server.fetchImpl,
        clock,
        ...options,
      });
      await keys.getKey('k1');
      clock.ms = lifetimeMs - 1;
      expect(keys.freshKey('k1')).toBeDefined();
      clock.ms = lifetimeMs;
      expect(keys.freshKey('k1')).toBeUndefined();
    }
  });

  it('looks again for an unknown kid exactly when the minimum interval has passed (60 s unless configured)', async () => {
    for (const [options, intervalMs] of [
      [{}, 60_000],
      [{ minRefetchIntervalMs: 5_000 }, 5_000],
    ] as const) {
      const clock = new StoppedClock(0);
      const server = answering({ keys: [jwk('k1')] }, { headers: { 'cache-control': 'max-age=3600' } });
      const keys = new GoogleKeySet({
        jwksUri: 'https://x/certs',
        fetch: server.fetchImpl,
        clock,
        ...options,
      });
      await keys.getKey('k1');
      clock.ms = intervalMs - 1;
      expect(await keys.getKey('unknown')).toBeNull();
      expect(server.requests).toHaveLength(1);
      clock.ms = intervalMs;
      expect(await keys.getKey('unknown')).toBeNull();
      expect(server.requests).toHaveLength(2);
      // A known kid never causes a fetch while the cache is fresh.
      clock.ms = 2 * intervalMs;
      expect(await keys.getKey('k1')).not.toBeNull();
      expect(server.requests).toHaveLength(2);
    }
  });

  it('says why the keys could not be read, naming the URL, each a retryable GOOGLE_UNAVAILABLE', async () => {
    const failing = async (fetchImpl: typeof fetch) =>
      unavailableError(
        new GoogleKeySet({ jwksUri: 'https://x/certs', fetch: fetchImpl, clock: new OffsetClock() }).getKey(
          'k1',
        ),
      );
    expect((await failing(async () => Promise.reject(new TypeError('fetch failed')))).message).toBe(
      "Google's signing keys (https://x/certs) could not be fetched; retry later.",
    );
    expect((await failing(answering('busy', { status: 503 }).fetchImpl)).message).toBe(
      "Google's signing keys (https://x/certs) answered HTTP 503; retry later.",
    );
    expect((await failing(answering('{"keys": [').fetchImpl)).message).toBe(
      "Google's signing keys (https://x/certs) are not JSON.",
    );
    expect((await failing(answering(`{"keys":[]}${' '.repeat(64 * 1024)}`).fetchImpl)).message).toBe(
      "Google's signing keys (https://x/certs) are unexpectedly large.",
    );
    // A body that breaks off while it is read counts as no body: not JSON.
    const broken: typeof fetch = async () =>
      new Response(
        new ReadableStream({
          start(controller) {
            controller.error(new Error('connection reset'));
          },
        }),
      );
    expect((await failing(broken)).message).toBe("Google's signing keys (https://x/certs) are not JSON.");
  });

  it('reads a key set of exactly 64 KiB, and none a byte longer', async () => {
    const body = JSON.stringify({ keys: [jwk('k1')] });
    const exact = `${body}${' '.repeat(64 * 1024 - body.length)}`;
    expect(exact).toHaveLength(64 * 1024);
    const keys = new GoogleKeySet({
      jwksUri: 'https://x/certs',
      fetch: answering(exact).fetchImpl,
      clock: new OffsetClock(),
    });
    expect(await keys.getKey('k1')).not.toBeNull();
    const over = new GoogleKeySet({
      jwksUri: 'https://x/certs',
      fetch: answering(`${exact} `).fetchImpl,
      clock: new OffsetClock(),
    });
    await unavailableError(over.getKey('k1'));
  });

  it('tells an observer how long each fetch took, failed ones included', async () => {
    const observed: number[] = [];
    const keys = new GoogleKeySet({
      jwksUri: 'https://x/certs',
      fetch: answering('busy', { status: 503 }).fetchImpl,
      clock: new OffsetClock(),
      observe: (s) => observed.push(s),
    });
    const before = performance.now();
    await unavailableError(keys.getKey('k1'));
    const elapsedSeconds = (performance.now() - before) / 1000;
    expect(observed).toHaveLength(1);
    expect(observed[0]).toBeGreaterThanOrEqual(0);
    expect(observed[0]).toBeLessThanOrEqual(elapsedSeconds);
  });

  it('load() fetches only when no keys are held, reports whether any are, and fails while none can be read', async () => {
    let body: unknown = { keys: [] };
    let calls = 0;
    const clock = new StoppedClock(0);
    const fetchImpl: typeof fetch = async () => {
      calls++;
      return body === undefined
        ? new Response('down', { status: 503 })
        : new Response(JSON.stringify(body), { headers: { 'cache-control': 'max-age=60' } });
    };
    const keys = new GoogleKeySet({ jwksUri: 'https://x/certs', fetch: fetchImpl, clock });
    expect(await keys.load()).toBe(false);
    expect(calls).toBe(1);
    body = undefined;
    await unavailableError(keys.load());
    expect(calls).toBe(2);
    body = { keys: [jwk('k1')] };
    expect(await keys.load()).toBe(true);
    expect(calls).toBe(3);
    // Held keys count, also past their lifetime, and cause no fetch.
    body = undefined;
    clock.ms = 3_600_000;
    expect(await keys.load()).toBe(true);
    expect(calls).toBe(3);
  });
});

describe('parseJwks: only RS256 signing keys of at least 2048 bits', () => {
  it('uses a key that names no alg or use, and one that names RS256 and sig', () => {
    const keys = parseJwks({
      keys: [jwkOf(key, { kid: 'bare' }), jwkOf(other, { kid: 'named', alg: 'RS256', use: 'sig' })],
    });
    expect([...keys.keys()]).toEqual(['bare', 'named']);
    expect(keys.get('named')!.equals(other)).toBe(true);
  });

  it('skips keys of another type, algorithm or use, or without a kid, and keeps the good ones beside them', () => {
    const keys = parseJwks({
      keys: [
        null,
        'k',
        7,
        jwkOf(other, { kid: 'oct', kty: 'oct' }),
        jwkOf(other, { kid: 'ps', alg: 'PS256' }),
        jwkOf(other, { kid: 'enc', use: 'enc' }),
        jwkOf(other, { kid: '' }),
        jwkOf(other, { kid: 7 }),
        jwkOf(other, { kid: 'no-n', n: undefined }),
        jwkOf(other, { kid: 'bad-n', n: '!!' }),
        jwkOf(RSA_1024.publicKey, { kid: 'small' }),
        jwkOf(key, { kid: 'good' }),
      ],
    });
    expect([...keys.keys()]).toEqual(['good']);
  });

  it('keeps the first of two keys under one kid', () => {
    const keys = parseJwks({ keys: [jwkOf(key, { kid: 'same' }), jwkOf(other, { kid: 'same' })] });
    expect(keys.size).toBe(1);
    expect(keys.get('same')!.equals(key)).toBe(true);
  });

  it('reads at most the first 50 entries', () => {
    const list = Array.from({ length: 51 }, (_, i) => jwkOf(key, { kid: `k${i}` }));
    const keys = parseJwks({ keys: list });
    expect(keys.size).toBe(50);
    expect(keys.has('k49')).toBe(true);
    expect(keys.has('k50')).toBe(false);
  });

  it('answers no keys for anything that is not {keys: [...]}', () => {
    for (const body of [null, undefined, 'keys', [], { keys: 'k1' }, { keys: { k1: {} } }])
      expect(parseJwks(body).size).toBe(0);
  });
});
