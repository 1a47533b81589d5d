import type * as crypto from 'node:crypto';
import { createHash, timingSafeEqual } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { BehalfError } from '../../src/errors.js';
import { duplicateApiKey } from '../../src/vault/rows.js';
import {
  apiKeyId,
  authenticateApiKey,
  createApiKey,
  listApiKeys,
  onApiKeyRevoked,
  openSqliteStore,
  revokeApiKey,
  verifyApiKey,
  type SqliteStore,
} from '../../src/vault/index.js';

// Watch the comparison: every presented key of the right shape must go through timingSafeEqual.
vi.mock('node:crypto', async (importOriginal) => {
  const actual = await importOriginal<typeof crypto>();
  return { ...actual, timingSafeEqual: vi.fn(actual.timingSafeEqual) };
});

describe('service API keys', () => {
  let store: SqliteStore;

  beforeEach(async () => {
    store = await openSqliteStore(':memory:');
    vi.mocked(timingSafeEqual).mockClear();
  });

  afterEach(async () => {
    await store.close();
  });

  it('creates bhf_<id>_<secret> keys and stores only the SHA-256 of the whole key', async () => {
    const created = await createApiKey(store, ' backend ', 1234);
    expect(created.key).toMatch(/^bhf_[0-9a-f]{12}_[A-Za-z0-9_-]{43}$/);
    expect(created).toMatchObject({ id: created.key.slice(4, 16), name: 'backend', createdAt: 1234 });
    expect(apiKeyId(created.key)).toBe(created.id);
    const record = await store.findApiKey(created.id);
    expect(record).toEqual({
      id: created.id,
      hash: createHash('sha256').update(created.key).digest(),
      name: 'backend',
      createdAt: 1234,
    });
    const secret = created.key.slice(17);
    expect(JSON.stringify(record)).not.toContain(secret);
  });

  it('gives every key a different id and secret', async () => {
    const keys = await Promise.all(Array.from({ length: 20 }, () => createApiKey(store, 'many')));
    expect(new Set(keys.map((k) => k.id)).size).toBe(20);
    expect(new Set(keys.map((k) => k.key.slice(17))).size).toBe(20);
  });

  it('verifies the key it created', async () => {
    const { key, id } = await createApiKey(store, 'backend');
    expect(await verifyApiKey(store, key)).toBe(true);
    expect(await authenticateApiKey(store, key)).toEqual({ id, name: 'backend' });
    expect(timingSafeEqual).toHaveBeenCalledTimes(2);
  });

  it('refuses a wrong secret for a real id, through the constant-time comparison', async () => {
    const { key } = await createApiKey(store, 'backend');
    const last = key.at(-1) === 'A' ? 'B' : 'A';
    const wrong = `${key.slice(0, -1)}${last}`;
    expect(await verifyApiKey(store, wrong)).toBe(false);
    expect(timingSafeEqual).toHaveBeenCalledTimes(1);
  });

  it('refuses an unknown id through the same comparison, so both paths do the same work', async () => {
    await createApiKey(store, 'backend');
    expect(await verifyApiKey(store, `bhf_${'0'.repeat(12)}_${'A'.repeat(43)}`)).toBe(false);
    expect(timingSafeEqual).toHaveBeenCalledTimes(1);
  });

  it('refuses a valid key with its id swapped for another real id', async () => {
    const a = await createApiKey(store, 'a');
    const b = await createApiKey(store, 'b');
    expect(await verifyApiKey(store, `bhf_${b.id}_${a.key.slice(17)}`)).toBe(false);
  });

  it.each([
    ['empty', ''],
    ['no prefix', 'abc'],
    ['wrong prefix', `bhx_${'a'.repeat(12)}_${'A'.repeat(43)}`],
    ['short secret', `bhf_${'a'.repeat(12)}_${'A'.repeat(42)}`],
    ['long secret', `bhf_${'a'.repeat(12)}_${'A'.repeat(44)}`],
    ['uppercase id', `bhf_${'A'.repeat(12)}_${'A'.repeat(43)}`],
    ['bearer prefix kept', `Bearer bhf_${'a'.repeat(12)}_${'A'.repeat(43)}`],
    ['trailing newline', `bhf_${'a'.repeat(12)}_${'A'.repeat(42)}\n`],
    ['huge', 'bhf_'.repeat(100_000)],
    ['SQL', "bhf_' OR 1=1 --"],
  ])('a malformed key (%s) is refused without an error and without a lookup', async (_what, presented) => {
    const find = vi.spyOn(store, 'findApiKey');
    await expect(verifyApiKey(store, presented)).resolves.toBe(false);
    expect(find).not.toHaveBeenCalled();
    expect(apiKeyId(presented)).toBeUndefined();
  });

  it('a non-string is refused, not thrown on', async () => {
    await expect(verifyApiKey(store, undefined as unknown as string)).resolves.toBe(false);
  });

  it('a store that is down is an error, not a refused key', async () => {
    const { key } = await createApiKey(store, 'backend');
    await store.close();
    await expect(verifyApiKey(store, key)).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
  });

  it('lists keys by id and name, never the key, and a revoked key authenticates nothing', async () => {
    const kept = await createApiKey(store, 'kept', 1000);
    const revoked = await createApiKey(store, 'revoked', 2000);
    const listed = await listApiKeys(store);
    expect(listed).toEqual([
      { id: kept.id, name: 'kept', createdAt: 1000, lastUsedAt: null },
      { id: revoked.id, name: 'revoked', createdAt: 2000, lastUsedAt: null },
    ]);
    expect(JSON.stringify(listed)).not.toContain(revoked.key.slice(17));
    await revokeApiKey(store, revoked.id);
    expect(await verifyApiKey(store, revoked.key)).toBe(false);
    expect(await verifyApiKey(store, kept.key)).toBe(true);
    await expect(revokeApiKey(store, revoked.id)).rejects.toMatchObject({
      code: 'NOT_FOUND',
      reason: 'no_such_api_key',
    });
  });

  it.each([[''], ['ABCDEF123456'], ['abc'], [`bhf_${'a'.repeat(12)}`]])(
    'revoking refuses the id %j as malformed',
    async (id) => {
      await expect(revokeApiKey(store, id)).rejects.toMatchObject({
        code: 'INVALID_REQUEST',
        reason: 'bad_api_key_id',
      });
    },
  );

  it.each([[''], ['   '], ['x'.repeat(101)], ['tab\there']])('refuses the name %j', async (name) => {
    await expect(createApiKey(store, name)).rejects.toBeInstanceOf(BehalfError);
  });

  it('takes a name of exactly 100 characters, and says what a name may be when it refuses one', async () => {
    expect((await createApiKey(store, 'n'.repeat(100))).name).toBe('n'.repeat(100));
    await expect(createApiKey(store, 'n'.repeat(101))).rejects.toMatchObject({
      code: 'INVALID_REQUEST',
      message: 'An API key name is 1-100 characters without control characters.',
    });
  });

  it('draws a new id when the store already has the one drawn, twice at most, and passes other errors on', async () => {
    // Each failure at most 10 times, then a different error: a retry that never ended would fail the test, not hang it.
    const failing = (error: Error) => {
      let calls = 0;
      return () => Promise.reject(++calls > 10 ? new Error('asked more than 10 times') : error);
    };
    const clash = failing(duplicateApiKey(new Error('UNIQUE constraint failed')));
    const create = vi.spyOn(store, 'createApiKey');
    create.mockImplementationOnce(clash).mockImplementationOnce(clash);
    const created = await createApiKey(store, 'third time');
    expect(create).toHaveBeenCalledTimes(3);
    expect(await verifyApiKey(store, created.key)).toBe(true);
    const ids = create.mock.calls.map(([record]) => record.id);
    expect(new Set(ids).size).toBe(3);

    create.mockReset().mockImplementation(failing(duplicateApiKey(new Error('UNIQUE constraint failed'))));
    await expect(createApiKey(store, 'never')).rejects.toMatchObject({ reason: 'duplicate_id' });
    expect(create).toHaveBeenCalledTimes(3);

    create.mockReset().mockImplementation(failing(new BehalfError('STORE_UNAVAILABLE', 'down')));
    await expect(createApiKey(store, 'down')).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
    expect(create).toHaveBeenCalledTimes(1);
  });

  it('refuses, without throwing, a non-string that prints as a valid key', async () => {
    const { key } = await createApiKey(store, 'backend');
    const lookalike = { toString: () => key, length: key.length } as unknown as string;
    await expect(authenticateApiKey(store, lookalike)).resolves.toBeNull();
  });

  it('refuses, without throwing, a key whose stored hash is not 32 bytes', async () => {
    const key = `bhf_${'b'.repeat(12)}_${'B'.repeat(43)}`;
    await store.createApiKey({
      id: 'b'.repeat(12),
      hash: createHash('sha256').update(key).digest().subarray(0, 16),
      name: 'truncated',
      createdAt: 1,
    });
    await expect(authenticateApiKey(store, key)).resolves.toBeNull();
  });

  it('records a use again after the clock went back, and at most once for uses at the same time', async () => {
    const { id, key } = await createApiKey(store, 'backend', 1000);
    const record = vi.spyOn(store, 'recordApiKeyUse');
    expect(await verifyApiKey(store, key, { now: 100_000 })).toBe(true);
    expect(await verifyApiKey(store, key, { now: 100_000 })).toBe(true);
    expect(record).toHaveBeenCalledTimes(1);
    // The clock went back: that use is written (the store keeps the later time) and counts from there.
    expect(await verifyApiKey(store, key, { now: 50_000 })).toBe(true);
    expect(record).toHaveBeenCalledTimes(2);
    expect(await verifyApiKey(store, key, { now: 111_000 })).toBe(true);
    expect(record).toHaveBeenCalledTimes(3);
    expect((await listApiKeys(store)).find((k) => k.id === id)?.lastUsedAt).toBe(111_000);
  });

  it('tells every revocation listener of a revoked id until it unsubscribes', async () => {
    const { id } = await createApiKey(store, 'backend');
    const first: string[] = [];
    const second: string[] = [];
    const stopFirst = onApiKeyRevoked(store, (revoked) => first.push(revoked));
    onApiKeyRevoked(store, (revoked) => second.push(revoked));
    await revokeApiKey(store, id);
    stopFirst();
    await expect(revokeApiKey(store, id)).rejects.toMatchObject({
      code: 'NOT_FOUND',
      message: `No service API key has the id ${id}.`,
    });
    expect(first).toEqual([id]);
    expect(second).toEqual([id, id]);
  });

  it('says what an API key id looks like when it refuses one', async () => {
    await expect(revokeApiKey(store, 'nope')).rejects.toMatchObject({
      message: 'An API key id is 12 lowercase hexadecimal characters (as `behalf keys list` shows).',
    });
  });

  it('records when a valid key was last used, at most once a minute per process, and never for a wrong key (issue 13: the console shows it)', async () => {
    const { id, key } = await createApiKey(store, 'backend', 1000);
    const lastUsed = async () => (await listApiKeys(store)).find((k) => k.id === id)?.lastUsedAt;
    expect(await verifyApiKey(store, key)).toBe(true);
    expect(await lastUsed()).toBeNull();
    expect(await verifyApiKey(store, key, { now: 10_000 })).toBe(true);
    expect(await lastUsed()).toBe(10_000);
    expect(await verifyApiKey(store, key, { now: 69_999 })).toBe(true);
    expect(await lastUsed()).toBe(10_000);
    expect(await verifyApiKey(store, key, { now: 70_000 })).toBe(true);
    expect(await lastUsed()).toBe(70_000);
    expect(
      await verifyApiKey(store, `${key.slice(0, -1)}${key.at(-1) === 'A' ? 'B' : 'A'}`, { now: 500_000 }),
    ).toBe(false);
    expect(await lastUsed()).toBe(70_000);
  });
});
