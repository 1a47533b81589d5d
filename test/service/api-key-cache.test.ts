import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiKeyCache, MAX_KEYS, TRUST_MS } from '../../src/http/api-key-cache.js';
import { STALENESS_BOUND_MS } from '../../src/database/index.js';
import { createApiKey, revokeApiKey } from '../../src/vault/index.js';
import { startHarness, type Harness } from '../support/harness.js';

const newKey = (id = randomBytes(6).toString('hex')) => `bhf_${id}_${randomBytes(32).toString('base64url')}`;
const idOf = (key: string) => key.slice(4, 16);

/** A database of keys the test controls: which exist, how many reads, and reads held open. */
function fakeKeys() {
  const valid = new Set<string>();
  let reads = 0;
  let hold: Promise<void> | undefined;
  return {
    valid,
    get reads() {
      return reads;
    },
    /** Hold every read until the returned function is called. */
    holdReads(): () => void {
      let release!: () => void;
      hold = new Promise((resolve) => (release = resolve));
      return () => {
        hold = undefined;
        release();
      };
    },
    verify: async (presented: string) => {
      reads++;
      const exists = valid.has(presented); // read when the query is sent
      if (hold !== undefined) await hold;
      return exists ? { id: idOf(presented) } : null;
    },
  };
}

function cacheWith(keys: ReturnType<typeof fakeKeys>, options: { maxKeys?: number } = {}) {
  let now = 1_000;
  const cache = new ApiKeyCache({ verify: keys.verify, now: () => now, ...options });
  return {
    cache,
    advance(ms: number) {
      now += ms;
    },
  };
}

/** Issue 14: the service routes remember verified API keys; these are the rules of that memory. */
describe('ApiKeyCache', () => {
  it('answers a verified key from memory until TRUST_MS after its read was sent, then asks again', async () => {
    expect(TRUST_MS).toBeLessThanOrEqual(STALENESS_BOUND_MS);
    const keys = fakeKeys();
    const { cache, advance } = cacheWith(keys);
    const key = newKey();
    keys.valid.add(key);
    expect(await cache.authenticate(key)).toBe(true);
    expect(keys.reads).toBe(1);
    advance(TRUST_MS - 1);
    expect(await cache.authenticate(key)).toBe(true);
    expect(keys.reads).toBe(1);
    // Deleted behind its back (another instance): refused once the entry is no longer trusted.
    keys.valid.delete(key);
    expect(await cache.authenticate(key)).toBe(true);
    advance(1);
    expect(await cache.authenticate(key)).toBe(false);
    expect(keys.reads).toBe(2);
    expect(cache.size).toBe(0);
  });

  it('forgets a key revoked in this process at once', async () => {
    const keys = fakeKeys();
    const { cache } = cacheWith(keys);
    const key = newKey();
    keys.valid.add(key);
    expect(await cache.authenticate(key)).toBe(true);
    keys.valid.delete(key);
    cache.forget(idOf(key));
    expect(await cache.authenticate(key)).toBe(false);
  });

  it('a request whose key is revoked while its read is out goes on, but the key is not remembered', async () => {
    const keys = fakeKeys();
    const { cache } = cacheWith(keys);
    const key = newKey();
    keys.valid.add(key);
    const release = keys.holdReads();
    const inFlight = cache.authenticate(key);
    // The revocation commits and is heard while the read that saw the key is still out.
    keys.valid.delete(key);
    cache.forget(idOf(key));
    release();
    expect(await inFlight, 'checked before the revocation').toBe(true);
    expect(cache.size).toBe(0);
    expect(await cache.authenticate(key), 'the next request').toBe(false);
  });

  it('refuses a wrong secret for a remembered id without a read, and never remembers a refusal', async () => {
    const keys = fakeKeys();
    const { cache } = cacheWith(keys);
    const key = newKey();
    keys.valid.add(key);
    await cache.authenticate(key);
    const reads = keys.reads;
    expect(await cache.authenticate(newKey(idOf(key)))).toBe(false);
    expect(await cache.authenticate(`${key.slice(0, -1)}${key.endsWith('A') ? 'B' : 'A'}`)).toBe(false);
    expect(keys.reads).toBe(reads);
    // Unknown ids are asked about every time and leave nothing behind.
    for (let i = 0; i < 3; i++) expect(await cache.authenticate(newKey())).toBe(false);
    expect(keys.reads).toBe(reads + 3);
    expect(cache.size).toBe(1);
  });

  it('a flood of garbage keys adds nothing, and valid keys beyond the bound push out the oldest', async () => {
    const keys = fakeKeys();
    const { cache } = cacheWith(keys, { maxKeys: 4 });
    for (let i = 0; i < 20_000; i++) {
      const garbage = i % 2 === 0 ? newKey() : randomBytes(48).toString('base64url');
      expect(await cache.authenticate(garbage)).toBe(false);
    }
    expect(cache.size).toBe(0);
    const valid = Array.from({ length: 10 }, () => newKey());
    for (const key of valid) keys.valid.add(key);
    for (const key of valid) expect(await cache.authenticate(key)).toBe(true);
    expect(cache.size).toBe(4);
    const reads = keys.reads;
    expect(await cache.authenticate(valid.at(-1)!)).toBe(true);
    expect(keys.reads, 'the newest is remembered').toBe(reads);
    expect(await cache.authenticate(valid[0]!)).toBe(true);
    expect(keys.reads, 'the oldest was pushed out').toBe(reads + 1);
    expect(MAX_KEYS).toBeGreaterThan(0);
  });

  it('a store outage is an error, as before, and leaves nothing behind', async () => {
    const cache = new ApiKeyCache({
      verify: () => Promise.reject(new Error('store unavailable')),
    });
    await expect(cache.authenticate(newKey())).rejects.toThrow('store unavailable');
    expect(cache.size).toBe(0);
  });
});

describe('service API keys remembered by the server', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness();
  });
  afterAll(async () => {
    await h?.close();
  });

  const status = async (key: string) => {
    const response = await fetch(`${h.url}/v1/api-keys`, { headers: { authorization: `Bearer ${key}` } });
    await response.arrayBuffer();
    return response.status;
  };

  it('a key revoked in this process (the admin console, the library) is refused by the next request', async () => {
    const created = await createApiKey(h.runtime.store, 'console revocation');
    expect(await status(created.key)).toBe(200);
    expect(await status(created.key)).toBe(200);
    await revokeApiKey(h.runtime.store, created.id);
    expect(await status(created.key)).toBe(401);
  });

  it('a revoked key is refused on its next request even when it never left memory (DELETE /v1/api-keys/{id})', async () => {
    const created = await createApiKey(h.runtime.store, 'http revocation');
    for (let i = 0; i < 5; i++) expect(await status(created.key)).toBe(200);
    expect((await h.service('DELETE', `/v1/api-keys/${created.id}`)).status).toBe(204);
    expect(await status(created.key)).toBe(401);
    expect(await status(h.apiKey)).toBe(200);
  });

  it('still records when a remembered key was last used', async () => {
    const created = await createApiKey(h.runtime.store, 'last use');
    expect(await status(created.key)).toBe(200);
    const listed = (await (await h.service('GET', '/v1/api-keys')).json()) as {
      api_keys: Array<{ id: string; last_used_at: string | null }>;
    };
    expect(listed.api_keys.find((k) => k.id === created.id)?.last_used_at).not.toBeNull();
  });
});
