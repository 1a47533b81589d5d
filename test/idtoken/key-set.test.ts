import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { OffsetClock } from '../../src/clock.js';
import { GoogleKeySet } from '../../src/idtoken/index.js';

const key = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey;
const jwk = (kid: string) => ({ ...(key.export({ format: 'jwk' }) as object), kid, alg: 'RS256', use: 'sig' });

function serving(kids: () => string[], headers: Record<string, string> = { 'cache-control': 'public, max-age=600' }) {
  let calls = 0;
  const fetchImpl: typeof fetch = async () => {
    calls++;
    await new Promise((resolve) => setTimeout(resolve, 5));
    return new Response(JSON.stringify({ keys: kids().map(jwk) }), { headers });
  };
  return { fetchImpl, calls: () => calls };
}

/** Google's keys are cached per Cache-Control and refetched on rotation (spec §1.4). */
describe('GoogleKeySet', () => {
  it('caches keys for max-age minus Age, then fetches again', async () => {
    const clock = new OffsetClock();
    const server = serving(() => ['k1'], { 'cache-control': 'public, max-age=600, must-revalidate', age: '100' });
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
    const keys = new GoogleKeySet({ jwksUri: 'https://x/certs', fetch: server.fetchImpl, clock: new OffsetClock() });
    await Promise.all(Array.from({ length: 100 }, () => keys.getKey('k1')));
    expect(server.calls()).toBe(1);
  });

  it('after a rotation an unknown kid triggers one refetch; refetches are rate-limited', async () => {
    let published = ['k1'];
    const clock = new OffsetClock();
    const server = serving(() => published);
    const keys = new GoogleKeySet({ jwksUri: 'https://x/certs', fetch: server.fetchImpl, clock, minRefetchIntervalMs: 30_000 });
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
      return new Response(JSON.stringify({ keys: [jwk('k1')] }), { headers: { 'cache-control': 'max-age=60' } });
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
