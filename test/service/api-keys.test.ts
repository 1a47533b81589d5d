import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApiKey } from '../../src/vault/index.js';
import { startHarness, type Harness } from '../support/harness.js';

/** Issue 12, point 4: service API keys are listed and revoked over HTTP too (never the key itself). */
describe('GET /v1/api-keys, DELETE /v1/api-keys/{id}', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness();
  });
  afterAll(async () => {
    await h?.close();
  });

  it('lists every key with its last use, revokes one, and the revoked key authenticates nothing', async () => {
    const other = await createApiKey(h.runtime.store, 'nightly jobs');
    const own = h.apiKey.slice(4, 16);
    const listed = await h.service('GET', '/v1/api-keys');
    expect(listed.status).toBe(200);
    const body = (await listed.json()) as { api_keys: Array<Record<string, unknown>> };
    expect(body.api_keys).toEqual([
      {
        id: own,
        name: 'test',
        created_at: expect.any(String) as unknown,
        last_used_at: expect.any(String) as unknown,
      },
      {
        id: other.id,
        name: 'nightly jobs',
        created_at: new Date(other.createdAt).toISOString(),
        last_used_at: null,
      },
    ]);
    expect(JSON.stringify(body)).not.toContain(other.key.slice(17));
    expect(JSON.stringify(body)).not.toContain(h.apiKey.slice(17));

    const revoked = await h.service('DELETE', `/v1/api-keys/${other.id}`);
    expect(revoked.status).toBe(204);
    const withRevoked = await fetch(`${h.url}/v1/api-keys`, {
      headers: { authorization: `Bearer ${other.key}` },
    });
    expect(withRevoked.status).toBe(401);
    expect(
      ((await (await h.service('GET', '/v1/api-keys')).json()) as { api_keys: unknown[] }).api_keys,
    ).toHaveLength(1);
  });

  it('answers 404 for an unknown id, 400 for a malformed one, 401 without a key', async () => {
    expect(await (await h.service('DELETE', '/v1/api-keys/0123456789ab')).json()).toMatchObject({
      error: 'NOT_FOUND',
      reason: 'no_such_api_key',
    });
    const malformed = await h.service('DELETE', `/v1/api-keys/${encodeURIComponent("x' OR 1=1")}`);
    expect(malformed.status).toBe(400);
    expect(await malformed.json()).toMatchObject({ error: 'INVALID_REQUEST', reason: 'bad_api_key_id' });
    expect((await fetch(`${h.url}/v1/api-keys`)).status).toBe(401);
  });
});
