import { createHash, createHmac, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { beforeEach, describe, expect, it } from 'vitest';
import { OffsetClock } from '../../src/clock.js';
import { GoogleKeySet, IdTokenVerifier, type IdTokenPolicy } from '../../src/idtoken/index.js';
import { RSA_1024, RSA_2048_A, RSA_2048_B, RSA_2048_C } from './fixture-keys.js';

const AUD = '614071230985-server.apps.googleusercontent.com';
const IOS = '614071230985-ios.apps.googleusercontent.com';
const ACCESS_TOKEN = 'ya29.a0-test-access-token';
const JWKS_URI = 'https://www.googleapis.com/oauth2/v3/certs';

const google = RSA_2048_A;
const attacker = RSA_2048_B;
const weak = RSA_1024;
const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const KID = 'a'.repeat(40);

const b64 = (value: unknown) =>
  Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');
const jwk = (key: KeyObject, extra: Record<string, unknown> = {}) => ({
  ...(key.export({ format: 'jwk' }) as object),
  ...extra,
});

interface Fixture {
  clock: OffsetClock;
  fetches: string[];
  verifier: (policy?: Partial<IdTokenPolicy>, cacheSize?: number) => IdTokenVerifier;
  /** Extra keys served in the JWKS besides Google's. */
  extraKeys: Array<Record<string, unknown>>;
}

function rs256(
  header: Record<string, unknown>,
  payload: Record<string, unknown> | string,
  key: KeyObject = google.privateKey,
): string {
  const input = `${b64(header)}.${typeof payload === 'string' ? Buffer.from(payload).toString('base64url') : b64(payload)}`;
  return `${input}.${sign('RSA-SHA256', Buffer.from(input), key).toString('base64url')}`;
}

describe('ID token verification rejects every forgery', () => {
  let f: Fixture;
  let now: number;
  let claims: Record<string, unknown>;
  const header = { alg: 'RS256', kid: KID, typ: 'JWT' };

  beforeEach(() => {
    const clock = new OffsetClock();
    const fetches: string[] = [];
    const extraKeys: Array<Record<string, unknown>> = [];
    const fetchImpl: typeof fetch = async (input) => {
      const url = input.toString();
      fetches.push(url);
      if (url !== JWKS_URI) throw new TypeError(`unexpected fetch of ${url}`);
      return new Response(
        JSON.stringify({
          keys: [jwk(google.publicKey, { kid: KID, alg: 'RS256', use: 'sig' }), ...extraKeys],
        }),
        {
          headers: { 'content-type': 'application/json', 'cache-control': 'public, max-age=3600' },
        },
      );
    };
    const keys = new GoogleKeySet({
      jwksUri: JWKS_URI,
      fetch: fetchImpl,
      clock,
      minRefetchIntervalMs: 60_000,
    });
    f = {
      clock,
      fetches,
      extraKeys,
      verifier: (policy = {}, cacheSize) =>
        new IdTokenVerifier({
          keys,
          clock,
          cacheSize,
          policy: { audience: AUD, allowedAuthorizedParties: [IOS], ...policy },
        }),
    };
    now = Math.floor(clock.now() / 1000);
    claims = {
      iss: 'https://accounts.google.com',
      azp: IOS,
      aud: AUD,
      sub: '110169484474386276334',
      email: 'alice@example.com',
      email_verified: true,
      at_hash: createHash('sha256').update(ACCESS_TOKEN).digest().subarray(0, 16).toString('base64url'),
      iat: now,
      exp: now + 3600,
    };
  });

  const rejects = async (
    token: string,
    reason: string,
    policy: Partial<IdTokenPolicy> = {},
    options = {},
  ) => {
    await expect(f.verifier(policy).verify(token, options)).rejects.toMatchObject({
      code: 'ID_TOKEN_INVALID',
      reason,
    });
  };

  it('accepts a genuine token (the baseline every case below changes one thing of)', async () => {
    const verified = await f.verifier().verify(rs256(header, claims), { accessToken: ACCESS_TOKEN });
    expect(verified).toMatchObject({ sub: claims.sub, emailVerified: true, azp: IOS, aud: AUD });
  });

  // --- header and algorithm attacks
  it('alg: none', async () => {
    await rejects(`${b64({ alg: 'none', kid: KID })}.${b64(claims)}.`, 'malformed');
    await rejects(`${b64({ alg: 'none', kid: KID })}.${b64(claims)}.${b64('x')}`, 'unsupported_alg');
  });
  it('HS256 signed with the public key as PEM', async () => {
    const input = `${b64({ alg: 'HS256', kid: KID })}.${b64(claims)}`;
    const pem = google.publicKey.export({ type: 'spki', format: 'pem' });
    await rejects(
      `${input}.${createHmac('sha256', pem).update(input).digest('base64url')}`,
      'unsupported_alg',
    );
  });
  it('HS256 signed with the public key as JWK', async () => {
    const input = `${b64({ alg: 'HS256', kid: KID })}.${b64(claims)}`;
    await rejects(
      `${input}.${createHmac('sha256', JSON.stringify(jwk(google.publicKey)))
        .update(input)
        .digest('base64url')}`,
      'unsupported_alg',
    );
  });
  it('RS512, PS256 and ES256 are not what Google issues', async () => {
    for (const alg of ['RS512', 'PS256', 'ES256'])
      await rejects(rs256({ ...header, alg }, claims), 'unsupported_alg');
  });
  it('RS256 signed by an unknown key under a known kid', async () => {
    await rejects(rs256(header, claims, attacker.privateKey), 'bad_signature');
  });
  it('an unknown kid: keys are refetched once, then the token is rejected', async () => {
    await rejects(rs256({ ...header, kid: 'b'.repeat(40) }, claims, attacker.privateKey), 'unknown_kid');
    const fetched = f.fetches.length;
    await rejects(rs256({ ...header, kid: 'c'.repeat(40) }, claims, attacker.privateKey), 'unknown_kid');
    expect(f.fetches.length).toBe(fetched);
  });
  it('a missing kid', async () => {
    await rejects(rs256({ alg: 'RS256' }, claims), 'bad_header');
  });
  it('typ other than JWT', async () => {
    await rejects(rs256({ ...header, typ: 'at+jwt' }, claims), 'bad_header');
  });
  it('crit header', async () => {
    await rejects(rs256({ ...header, crit: ['exp'] }, claims), 'forbidden_header');
  });
  it('jku header (never followed)', async () => {
    await rejects(rs256({ ...header, jku: 'https://evil.example.com/jwks' }, claims), 'forbidden_header');
    expect(f.fetches.every((u) => u === JWKS_URI)).toBe(true);
  });
  it('x5u header (never followed)', async () => {
    await rejects(rs256({ ...header, x5u: 'https://evil.example.com/cert.pem' }, claims), 'forbidden_header');
    expect(f.fetches.every((u) => u === JWKS_URI)).toBe(true);
  });
  it("an embedded jwk header with the attacker's key", async () => {
    await rejects(
      rs256({ ...header, jwk: jwk(attacker.publicKey) }, claims, attacker.privateKey),
      'forbidden_header',
    );
  });
  it('an x5c header', async () => {
    await rejects(rs256({ ...header, x5c: ['MIIB'] }, claims), 'forbidden_header');
  });
  it("a key of the wrong type under the token's kid is never used", async () => {
    f.extraKeys.push(jwk(ec.publicKey, { kid: 'ec'.repeat(20), alg: 'RS256' }));
    await rejects(rs256({ ...header, kid: 'ec'.repeat(20) }, claims, attacker.privateKey), 'unknown_kid');
  });
  it('an RSA key that is too small is never used', async () => {
    f.extraKeys.push(jwk(weak.publicKey, { kid: 'we'.repeat(20), alg: 'RS256' }));
    await rejects(rs256({ ...header, kid: 'we'.repeat(20) }, claims, weak.privateKey), 'unknown_kid');
  });
  it('a key published for another use or algorithm is never used', async () => {
    f.extraKeys.push(
      jwk(attacker.publicKey, { kid: 'en'.repeat(20), use: 'enc' }),
      jwk(attacker.publicKey, { kid: 'ps'.repeat(20), alg: 'PS256' }),
    );
    await rejects(rs256({ ...header, kid: 'en'.repeat(20) }, claims, attacker.privateKey), 'unknown_kid');
    await rejects(rs256({ ...header, kid: 'ps'.repeat(20) }, claims, attacker.privateKey), 'unknown_kid');
  });

  // --- tampering and structure
  it('a tampered payload', async () => {
    const [h, , s] = rs256(header, claims).split('.');
    await rejects(`${h}.${b64({ ...claims, sub: 'someone-else' })}.${s}`, 'bad_signature');
  });
  it('a tampered header', async () => {
    const [, p, s] = rs256(header, claims).split('.');
    await rejects(`${b64({ ...header, typ: 'JWT', x: 1 })}.${p}.${s}`, 'bad_signature');
  });
  it('a signature taken from another token', async () => {
    const other = rs256(header, { ...claims, sub: 'other' }).split('.')[2];
    const [h, p] = rs256(header, claims).split('.');
    await rejects(`${h}.${p}.${other}`, 'bad_signature');
  });
  it('an oversized token', async () => {
    await rejects(rs256(header, { ...claims, padding: 'x'.repeat(10_000) }), 'too_large');
  });
  it('a non-JSON header', async () => {
    await rejects(`${b64('not json')}.${b64(claims)}.${b64('sig')}`, 'bad_header');
  });
  it('a non-JSON payload', async () => {
    await rejects(rs256(header, 'not json at all'), 'malformed');
  });
  it('a JSON array payload', async () => {
    await rejects(rs256(header, '[1,2,3]'), 'malformed');
  });
  it('an extra (fourth) segment', async () => {
    await rejects(`${rs256(header, claims)}.${b64('more')}`, 'malformed');
  });
  it('only two segments', async () => {
    await rejects(`${b64(header)}.${b64(claims)}`, 'malformed');
  });
  it('padding or standard base64 characters', async () => {
    const [h, p, s] = rs256(header, claims).split('.');
    await rejects(`${h}=.${p}.${s}`, 'malformed');
    await rejects(`${h}.${p}.${s!.replace(/-/g, '+').replace(/_/g, '/')}+`, 'malformed');
  });
  it('stray bits or a foreign character in the payload or signature, also when the header is known', async () => {
    const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    // Flipping the lowest bit of the last character changes only bits a decoder drops: the same
    // bytes, so the signature would still verify. Only the canonical check refuses it.
    const stray = (segment: string) =>
      `${segment.slice(0, -1)}${ALPHABET[ALPHABET.indexOf(segment.at(-1)!) ^ 1]}`;
    let token = rs256(header, claims);
    for (let pad = 0; token.split('.')[1]!.length % 4 === 0; pad++)
      token = rs256(header, { ...claims, pad: 'x'.repeat(pad) });
    const [h, p, s] = token.split('.') as [string, string, string];
    expect(s.length % 4).not.toBe(0);
    const verifier = f.verifier();
    await verifier.verify(token); // its header is now remembered
    for (const forged of [
      `${h}.${stray(p)}.${s}`,
      `${h}.${p}.${stray(s)}`,
      `${h}.${p}+.${s}`,
      `${h}.${p}.`,
      `${h}..${s}`,
    ]) {
      await expect(verifier.verify(forged)).rejects.toMatchObject({ reason: 'malformed' });
    }
  });
  it('duplicate keys in the payload (two aud)', async () => {
    const payload = JSON.stringify(claims).replace('"aud":', `"aud":"${AUD}","aud":`);
    await rejects(
      rs256(header, payload.replace(`"aud":"${AUD}","aud":"${AUD}"`, `"aud":"${AUD}","aud":"evil"`)),
      'malformed',
    );
  });
  it('duplicate keys in the header (two alg)', async () => {
    const input = `${Buffer.from(`{"alg":"none","kid":"${KID}","alg":"RS256"}`).toString('base64url')}.${b64(claims)}`;
    await rejects(
      `${input}.${sign('RSA-SHA256', Buffer.from(input), google.privateKey).toString('base64url')}`,
      'bad_header',
    );
  });

  // --- claims
  it('a valid Google-signed token for another audience', async () => {
    await rejects(
      rs256(header, { ...claims, aud: 'another-app.apps.googleusercontent.com' }),
      'bad_audience',
    );
  });
  it('an aud array with an extra audience', async () => {
    await rejects(
      rs256(header, { ...claims, aud: [AUD, 'another-app.apps.googleusercontent.com'] }),
      'bad_audience',
    );
  });
  it('azp not allowed', async () => {
    await rejects(
      rs256(header, { ...claims, azp: 'stranger.apps.googleusercontent.com' }),
      'azp_not_allowed',
    );
  });
  it('a wrong, missing, or slash-suffixed issuer', async () => {
    await rejects(rs256(header, { ...claims, iss: 'https://evil.example.com' }), 'bad_issuer');
    const { iss: _iss, ...noIss } = claims;
    await rejects(rs256(header, noIss), 'bad_issuer');
    await rejects(rs256(header, { ...claims, iss: 'https://accounts.google.com/' }), 'bad_issuer');
  });
  it('expired', async () => {
    await rejects(rs256(header, { ...claims, iat: now - 7200, exp: now - 3600 }), 'expired');
  });
  it('exp within the clock-skew allowance is accepted, just past it is not', async () => {
    await expect(
      f.verifier().verify(rs256(header, { ...claims, iat: now - 3630, exp: now - 30 })),
    ).resolves.toBeDefined();
    await rejects(rs256(header, { ...claims, iat: now - 3661, exp: now - 61 }), 'expired');
  });
  it('a verified token expires in the cache too', async () => {
    const token = rs256(header, claims);
    await f.verifier().verify(token);
    const verifier = f.verifier();
    await verifier.verify(token);
    f.clock.advance(3700);
    await expect(verifier.verify(token)).rejects.toMatchObject({ reason: 'expired' });
  });
  it('the verified-token cache is bounded and forgets the oldest first', async () => {
    // Three tokens signed by a key Google later withdraws: only re-verification can notice.
    const rotated = RSA_2048_C;
    f.extraKeys.push(jwk(rotated.publicKey, { kid: 'rotated', alg: 'RS256', use: 'sig' }));
    const long = { ...claims, exp: now + 20_000 };
    const [a, b, c] = ['1', '2', '3'].map((sub) =>
      rs256({ ...header, kid: 'rotated' }, { ...long, sub }, rotated.privateKey),
    );
    const verifier = f.verifier({}, 2);
    await Promise.all([verifier.verify(a!), verifier.verify(a!)]);
    await verifier.verify(b!);
    await verifier.verify(c!);
    f.extraKeys.length = 0;
    f.clock.advance(3601); // past the keys' max-age: they are fetched again
    await expect(verifier.verify(c!)).resolves.toMatchObject({ sub: '3' });
    await expect(verifier.verify(b!)).resolves.toMatchObject({ sub: '2' });
    await expect(verifier.verify(a!)).rejects.toMatchObject({ reason: 'unknown_kid' });
  });
  it('iat in the future', async () => {
    await rejects(rs256(header, { ...claims, iat: now + 600, exp: now + 4200 }), 'issued_in_future');
  });
  it('a lifetime longer than Google issues', async () => {
    await rejects(rs256(header, { ...claims, exp: now + 2 * 86_400 }), 'lifetime_too_long');
  });
  it('missing, empty or overlong sub', async () => {
    const { sub: _sub, ...noSub } = claims;
    await rejects(rs256(header, noSub), 'missing_claim');
    await rejects(rs256(header, { ...claims, sub: '' }), 'missing_claim');
    await rejects(rs256(header, { ...claims, sub: '1'.repeat(256) }), 'bad_claim');
  });
  it('numeric strings, fractions or NaN for exp and iat', async () => {
    await rejects(rs256(header, { ...claims, exp: String(now + 3600) }), 'missing_claim');
    await rejects(rs256(header, { ...claims, exp: now + 3600.5 }), 'missing_claim');
    await rejects(rs256(header, { ...claims, iat: 'NaN' }), 'missing_claim');
  });
  it('email_verified that is not a boolean', async () => {
    await rejects(rs256(header, { ...claims, email_verified: 'yes' }), 'bad_claim');
  });
  it('hd mismatch, and a missing hd when a domain is required: HD_NOT_ALLOWED', async () => {
    for (const token of [rs256(header, { ...claims, hd: 'evil.example.com' }), rs256(header, claims)]) {
      await expect(f.verifier({ hostedDomain: 'example.com' }).verify(token)).rejects.toMatchObject({
        code: 'HD_NOT_ALLOWED',
        reason: 'hd_mismatch',
      });
    }
  });
  it('at_hash that does not match the access token, or is missing', async () => {
    await rejects(rs256(header, claims), 'at_hash_mismatch', {}, { accessToken: 'ya29.another-token' });
    const { at_hash: _h, ...noHash } = claims;
    await rejects(rs256(header, noHash), 'missing_claim', {}, { accessToken: ACCESS_TOKEN });
  });
  it('a nonce that does not match', async () => {
    await rejects(rs256(header, { ...claims, nonce: 'abc' }), 'nonce_mismatch', {}, { nonce: 'xyz' });
  });
  it('a rejected token never carries the token in its error', async () => {
    const token = rs256(header, { ...claims, aud: 'x' });
    const error = (await f
      .verifier()
      .verify(token)
      .catch((e: unknown) => e)) as Error;
    expect(JSON.stringify({ ...error, message: error.message })).not.toContain(
      token.split('.')[1]!.slice(0, 20),
    );
  });
});
