import { createPublicKey, verify, type JsonWebKey } from 'node:crypto';
import { OAuth2Client } from 'google-auth-library';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeJwt, startFixture, type EmulatorFixture } from './support.js';

/** Issue 15, point 7: discovery lists only what works; ID tokens carry jti; keys rotate on a schedule. */
describe('discovery, jti and scheduled key rotation', () => {
  let f: EmulatorFixture;
  beforeAll(async () => {
    f = await startFixture();
  });
  afterAll(async () => {
    await f.close();
  });
  const jwks = async () =>
    (
      (await (await fetch(`${f.emulator.url}/oauth2/v3/certs`)).json()) as { keys: Array<{ kid: string }> }
    ).keys.map((k) => k.kid);

  it('discovery advertises only the endpoints, grant and response types the emulator serves', async () => {
    const doc = (await (await fetch(`${f.emulator.url}/.well-known/openid-configuration`)).json()) as Record<
      string,
      unknown
    >;
    expect(doc).not.toHaveProperty('device_authorization_endpoint');
    expect(doc.grant_types_supported).toEqual(['authorization_code', 'refresh_token']);
    expect(doc.response_types_supported).toEqual(['code']);
    for (const key of [
      'authorization_endpoint',
      'token_endpoint',
      'userinfo_endpoint',
      'revocation_endpoint',
      'jwks_uri',
    ]) {
      const url = doc[key] as string;
      expect(url.startsWith(f.emulator.url)).toBe(true);
      // Each one answers (a 404 would mean it is advertised but missing).
      const response = await fetch(url, {
        method: key === 'token_endpoint' || key === 'revocation_endpoint' ? 'POST' : 'GET',
      });
      expect(response.status, key).not.toBe(404);
    }
  });

  it('ID tokens carry a jti of 40 hex characters, different each time', async () => {
    const { sub } = await f.user();
    const a = decodeJwt((await f.exchange(await f.code(sub))).body.id_token).payload;
    const b = decodeJwt((await f.exchange(await f.code(sub))).body.id_token).payload;
    expect(a.jti).toMatch(/^[0-9a-f]{40}$/);
    expect(b.jti).not.toBe(a.jti);
  });

  it('key_rotation_seconds rotates on the emulator clock; tokens signed before still verify (google-auth-library)', async () => {
    const { sub } = await f.user();
    const before = await jwks();
    expect(await f.control('POST', '/emulator/config', { key_rotation_seconds: 8 * 86_400 })).toMatchObject({
      key_rotation_seconds: 8 * 86_400,
    });
    const idToken = (await f.exchange(await f.code(sub))).body.id_token as string;
    expect(await jwks()).toEqual(before);
    const { server } = f.emulator.clients;
    const verifier = new OAuth2Client({
      clientId: server.clientId,
      endpoints: { oauth2FederatedSignonPemCertsUrl: `${f.emulator.url}/oauth2/v1/certs` },
    });
    expect((await verifier.verifyIdToken({ idToken, audience: server.clientId })).getPayload()?.sub).toBe(
      sub,
    );
    // The cache headers never outlive the next rotation.
    const certs = await fetch(`${f.emulator.url}/oauth2/v3/certs`);
    expect(Number(/max-age=(\d+)/.exec(certs.headers.get('cache-control')!)![1])).toBeLessThanOrEqual(
      8 * 86_400,
    );

    f.clock.advance(8 * 86_400);
    const after = await jwks();
    expect(after).toHaveLength(3);
    expect(after.slice(1)).toEqual(before);
    const fresh = (await f.exchange(await f.code(sub))).body.id_token as string;
    expect(decodeJwt(fresh).header.kid).toBe(after[0]);

    // The token signed before the rotation still verifies against the published keys.
    const published = (await (await fetch(`${f.emulator.url}/oauth2/v3/certs`)).json()) as {
      keys: Array<JsonWebKey & { kid: string }>;
    };
    for (const token of [idToken, fresh]) {
      const [h, p, sig] = token.split('.');
      const jwk = published.keys.find((k) => k.kid === decodeJwt(token).header.kid)!;
      const key = createPublicKey({ key: jwk, format: 'jwk' });
      expect(verify('RSA-SHA256', Buffer.from(`${h}.${p}`), key, Buffer.from(sig!, 'base64url'))).toBe(true);
    }
    // The clock caveat (docs/emulator.md): a verifier on the real clock in this process sees the
    // token minted on the advanced emulator clock as issued in the future.
    // (A new client: the first one cached the key set for its max-age, on the real clock.)
    const another = new OAuth2Client({
      clientId: server.clientId,
      endpoints: { oauth2FederatedSignonPemCertsUrl: `${f.emulator.url}/oauth2/v1/certs` },
    });
    await expect(another.verifyIdToken({ idToken: fresh, audience: server.clientId })).rejects.toThrow(
      /too far in future/,
    );

    // Off again: no more rotations.
    await f.control('POST', '/emulator/config', { key_rotation_seconds: null });
    f.clock.advance(30 * 86_400);
    expect(await jwks()).toEqual(after);
  });

  it('refuses a rotation period under a minute', async () => {
    const response = await fetch(`${f.emulator.url}/emulator/config`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ key_rotation_seconds: 5 }),
    });
    expect(response.status).toBe(400);
  });
});
