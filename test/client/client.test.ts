import { afterAll, beforeAll, describe, expect, expectTypeOf, it } from 'vitest';
import { BehalfClient, BehalfClientError, type User } from '../../src/client/index.js';
import { createApiKey } from '../../src/vault/index.js';
import { startHarness, type Harness } from '../support/harness.js';

/** Issue 12, point 3: `behalf/client`, the typed client, against a real server and the emulator. */
describe('BehalfClient', () => {
  let h: Harness;
  let client: BehalfClient;
  beforeAll(async () => {
    h = await startHarness({ env: { BEHALF_WEBHOOK_ALLOW_PRIVATE: 'true' } });
    client = new BehalfClient({ baseUrl: `${h.url}/`, apiKey: h.apiKey });
  });
  afterAll(async () => {
    await h?.close();
  });

  it('reads a user, lists users page by page and all at once, and gets an access token', async () => {
    const subs = [await h.signedInUser(), await h.signedInUser(), await h.signedInUser()];
    const user = await client.getUser(subs[0]!);
    expectTypeOf(user).toEqualTypeOf<User>();
    expect(user.user.sub).toBe(subs[0]);
    expect(user.grant).toMatchObject({ status: 'active', offline_access: true });

    const first = await client.listUsers({ limit: 2 });
    expect(first.users).toHaveLength(2);
    expect(first.next_cursor).toEqual(expect.any(String));
    const all: string[] = [];
    for await (const listed of client.listAllUsers({ limit: 1 })) all.push(listed.user.sub);
    expect(all.sort()).toEqual([...subs].sort());
    expect(await client.listUsers({ status: 'revoked' })).toEqual({ users: [], next_cursor: null });

    const token = await client.getAccessToken(subs[0]!);
    expect(token.token_type).toBe('Bearer');
    expect(token.expires_in).toBeGreaterThan(0);
  });

  it('verifies ID tokens, signs out and deletes users', async () => {
    const sub = await h.signedInUser();
    const { id_token: idToken } = await h.control<{ id_token: string }>('POST', '/emulator/id-tokens', {
      sub,
      azp: h.emulator.clients.apps.ios,
    });
    expect((await client.verifyIdToken(idToken)).claims.sub).toBe(sub);
    expect(await client.signOut(sub)).toEqual({ signed_out: true, revoked_at_google: true });
    expect(await client.deleteUser(sub)).toEqual({ deleted: true, revoked_at_google: false });
  });

  it('lists and revokes API keys, and adds, lists and removes webhooks', async () => {
    const other = await createApiKey(h.runtime.store, 'client test');
    expect((await client.listApiKeys()).map((key) => key.name)).toContain('client test');
    await client.revokeApiKey(other.id);
    expect((await client.listApiKeys()).map((key) => key.id)).not.toContain(other.id);

    const added = await client.webhooks.add({ url: 'http://127.0.0.1:9/hook', events: ['grant.revoked'] });
    expect(added.secret).toMatch(/^whsec_/);
    expect((await client.webhooks.list()).map((endpoint) => endpoint.id)).toEqual([added.id]);
    await client.webhooks.remove(added.id);
    expect(await client.webhooks.list()).toEqual([]);
  });

  it("throws BehalfClientError with the server's stable code, and no token in its message", async () => {
    const refusal = async (call: Promise<unknown>) => {
      const error = await call.then(
        () => undefined,
        (caught: unknown) => caught,
      );
      expect(error).toBeInstanceOf(BehalfClientError);
      return error as BehalfClientError;
    };
    expect(await refusal(client.getUser('nobody'))).toMatchObject({ code: 'USER_NOT_FOUND', status: 404 });
    expect(await refusal(client.webhooks.remove('wh_nope'))).toMatchObject({ code: 'WEBHOOK_NOT_FOUND' });
    expect(await refusal(client.listUsers({ cursor: 'x.y' }))).toMatchObject({
      code: 'INVALID_REQUEST',
      reason: 'bad_cursor',
    });
    const sub = await h.signedInUser();
    const { id_token: idToken } = await h.control<{ id_token: string }>('POST', '/emulator/id-tokens', {
      sub,
      azp: h.emulator.clients.apps.ios,
    });
    const badToken = await refusal(client.verifyIdToken(`${idToken.slice(0, -4)}AAAA`));
    expect(badToken).toMatchObject({ code: 'ID_TOKEN_INVALID', status: 401 });
    expect(`${badToken.message} ${badToken.stack}`).not.toContain(idToken.slice(0, 40));

    const wrongKey = new BehalfClient({ baseUrl: h.url, apiKey: `${h.apiKey}x` });
    const unauthenticated = await refusal(wrongKey.listApiKeys());
    expect(unauthenticated).toMatchObject({ code: 'UNAUTHENTICATED', status: 401, retryable: false });
    expect(`${unauthenticated.message} ${unauthenticated.stack}`).not.toContain(h.apiKey);
  });

  it('calls through the fetch it is given, and names a non-JSON answer UNEXPECTED_RESPONSE', async () => {
    const seen: string[] = [];
    const traced = new BehalfClient({
      baseUrl: h.url,
      apiKey: h.apiKey,
      fetch: async (input, init) => {
        seen.push(`${init.method} ${new URL(input).pathname}`);
        return fetch(input, init);
      },
    });
    await traced.listApiKeys();
    expect(seen).toEqual(['GET /v1/api-keys']);

    const broken = new BehalfClient({
      baseUrl: h.url,
      apiKey: h.apiKey,
      fetch: async () => new Response('<html>bad gateway</html>', { status: 502 }),
    });
    const error = await broken.getUser('x').catch((caught: unknown) => caught);
    expect(error).toMatchObject({ code: 'UNEXPECTED_RESPONSE', status: 502 });
  });
});
