/**
 * The ID token verifier's rules at their edges (issue 16: what mutation testing showed untested):
 * what is accepted right at each limit and refused just past it, every spelling Google may use,
 * the claims as returned, the caches, and what each refusal says. The forgeries are in
 * hostile-tokens.test.ts; here time stands still (a clock that moves only when told), so the
 * edges are exact to the second.
 */
import { createHash, sign } from 'node:crypto';
import { beforeEach, describe, expect, it } from 'vitest';
import type { Clock } from '../../src/clock.js';
import {
  GoogleKeySet,
  IdTokenVerifier,
  verifyGoogleJwt,
  type IdTokenPolicy,
  type VerifyOptions,
} from '../../src/idtoken/index.js';
import { RSA_2048_A } from './fixture-keys.js';

const AUD = '614071230985-server.apps.googleusercontent.com';
const IOS = '614071230985-ios.apps.googleusercontent.com';
const JWKS_URI = 'https://www.googleapis.com/oauth2/v3/certs';
const KID = 'a'.repeat(40);
const NOW = 1_760_000_000; // whole seconds
const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

const google = RSA_2048_A;
const b64 = (value: unknown) =>
  Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');
const HEADER = { alg: 'RS256', kid: KID, typ: 'JWT' };

function token(payload: Record<string, unknown> | string, header: Record<string, unknown> = HEADER): string {
  const input = `${b64(header)}.${b64(payload)}`;
  return `${input}.${sign('RSA-SHA256', Buffer.from(input), google.privateKey).toString('base64url')}`;
}

/** `segment` with its last character replaced by the one whose value differs by `bits`. */
const flipLast = (segment: string, bits: number) =>
  `${segment.slice(0, -1)}${ALPHABET[ALPHABET.indexOf(segment.at(-1)!) ^ bits]}`;

class StoppedClock implements Clock {
  ms = NOW * 1000 + 500;
  now(): number {
    return this.ms;
  }
}

describe('ID token verifier rules', () => {
  let clock: StoppedClock;
  let jwksKeys: Array<Record<string, unknown>>;
  let keys: GoogleKeySet;
  let claims: Record<string, unknown>;

  beforeEach(() => {
    clock = new StoppedClock();
    jwksKeys = [{ ...(google.publicKey.export({ format: 'jwk' }) as object), kid: KID }];
    const fetchImpl: typeof fetch = async () =>
      new Response(JSON.stringify({ keys: jwksKeys }), { headers: { 'cache-control': 'max-age=3600' } });
    keys = new GoogleKeySet({ jwksUri: JWKS_URI, fetch: fetchImpl, clock });
    claims = {
      iss: 'https://accounts.google.com',
      azp: IOS,
      aud: AUD,
      sub: '110169484474386276334',
      iat: NOW,
      exp: NOW + 3600,
    };
  });

  const verifier = (policy: Partial<IdTokenPolicy> = {}, cacheSize?: number) =>
    new IdTokenVerifier({
      keys,
      clock,
      cacheSize,
      policy: { audience: AUD, allowedAuthorizedParties: [IOS], ...policy },
    });
  const verify = (jwt: unknown, policy: Partial<IdTokenPolicy> = {}, options: VerifyOptions = {}) =>
    verifier(policy).verify(jwt as string, options);
  const accepted = (
    payload: Record<string, unknown>,
    policy: Partial<IdTokenPolicy> = {},
    options: VerifyOptions = {},
  ) => verify(token(payload), policy, options);

  /** Refused with this reason and exactly this message (which never holds the token). */
  async function refused(promise: Promise<unknown>, reason: string, message: string): Promise<void> {
    await expect(promise).rejects.toMatchObject({ code: 'ID_TOKEN_INVALID', reason, message });
  }

  describe('claims', () => {
    it('returns every claim it reads, and null for the optional ones a token leaves out', async () => {
      const full = {
        ...claims,
        email: 'alice@example.com',
        email_verified: true,
        name: 'Alice Example',
        given_name: 'Alice',
        family_name: 'Example',
        picture: 'https://lh3.googleusercontent.com/a/alice',
        locale: 'en-GB',
        hd: 'example.com',
        nonce: 'n-0S6_WzA2Mj',
        at_hash: 'HK6E_P6Dh8Y93mRNtsDB1Q',
      };
      expect(await accepted(full)).toEqual({
        sub: '110169484474386276334',
        email: 'alice@example.com',
        emailVerified: true,
        name: 'Alice Example',
        givenName: 'Alice',
        familyName: 'Example',
        picture: 'https://lh3.googleusercontent.com/a/alice',
        locale: 'en-GB',
        hd: 'example.com',
        aud: AUD,
        azp: IOS,
        iss: 'https://accounts.google.com',
        iat: NOW,
        exp: NOW + 3600,
        nonce: 'n-0S6_WzA2Mj',
      });
      const { azp: _azp, ...bare } = claims;
      expect(await accepted(bare)).toEqual({
        sub: '110169484474386276334',
        email: null,
        emailVerified: false,
        name: null,
        givenName: null,
        familyName: null,
        picture: null,
        locale: null,
        hd: null,
        aud: AUD,
        azp: null,
        iss: 'https://accounts.google.com',
        iat: NOW,
        exp: NOW + 3600,
        nonce: null,
      });
    });

    it('reads an optional claim given as null as absent, and refuses one of another type, naming it', async () => {
      const optional = [
        'azp',
        'email',
        'name',
        'given_name',
        'family_name',
        'picture',
        'locale',
        'hd',
        'nonce',
        'at_hash',
      ];
      expect(
        await accepted(
          Object.fromEntries([...Object.entries(claims), ...optional.map((name) => [name, null])]),
        ),
      ).toMatchObject({ azp: null, email: null, hd: null, nonce: null });
      for (const name of optional) {
        await refused(accepted({ ...claims, [name]: 7 }), 'bad_claim', `The ${name} claim is not a string.`);
      }
    });

    it('takes email_verified as a boolean or its string spelling, and nothing else', async () => {
      for (const [value, verified] of [
        [true, true],
        ['true', true],
        [false, false],
        ['false', false],
        [undefined, false],
      ] as const) {
        expect((await accepted({ ...claims, email_verified: value })).emailVerified).toBe(verified);
      }
      for (const value of ['yes', 1, 0, null, 'TRUE']) {
        await refused(
          accepted({ ...claims, email_verified: value }),
          'bad_claim',
          'The email_verified claim is not a boolean.',
        );
      }
    });

    it("accepts both of Google's issuer spellings by default, and only the configured ones when given", async () => {
      expect((await accepted({ ...claims, iss: 'accounts.google.com' })).iss).toBe('accounts.google.com');
      expect((await accepted(claims)).iss).toBe('https://accounts.google.com');
      await refused(
        accepted(claims, { issuers: ['accounts.google.com'] }),
        'bad_issuer',
        'The ID token was not issued by Google.',
      );
      const { iss: _iss, ...noIssuer } = claims;
      await refused(accepted(noIssuer), 'bad_issuer', 'The ID token has no issuer.');
      await refused(accepted({ ...claims, iss: 7 }), 'bad_issuer', 'The ID token has no issuer.');
    });

    it('takes aud as the server client id or a one-element list of it', async () => {
      expect((await accepted({ ...claims, aud: [AUD] })).aud).toBe(AUD);
      for (const aud of [[], [IOS], [AUD, AUD], IOS, undefined]) {
        await refused(accepted({ ...claims, aud }), 'bad_audience', 'The ID token is for another audience.');
      }
    });

    it('accepts no azp, the server client id as azp, and an allowed app client', async () => {
      const { azp: _azp, ...noAzp } = claims;
      expect((await accepted(noAzp)).azp).toBeNull();
      expect((await accepted({ ...claims, azp: AUD }, { allowedAuthorizedParties: [] })).azp).toBe(AUD);
      expect((await accepted({ ...claims, azp: IOS })).azp).toBe(IOS);
      await refused(
        accepted({ ...claims, azp: IOS }, { allowedAuthorizedParties: [] }),
        'azp_not_allowed',
        'The ID token was obtained by an app client that is not allowed (azp).',
      );
    });

    it('takes a sub of 1 to 255 characters', async () => {
      expect((await accepted({ ...claims, sub: '1' })).sub).toBe('1');
      expect((await accepted({ ...claims, sub: '1'.repeat(255) })).sub).toHaveLength(255);
      await refused(
        accepted({ ...claims, sub: '1'.repeat(256) }),
        'bad_claim',
        'The ID token sub is longer than 255 characters.',
      );
      await refused(accepted({ ...claims, sub: '' }), 'missing_claim', 'The ID token has no sub.');
      await refused(accepted({ ...claims, sub: 1101694844 }), 'missing_claim', 'The ID token has no sub.');
    });

    it('compares the hosted domain without regard to case, and ignores hd when no domain is required', async () => {
      expect((await accepted({ ...claims, hd: 'Example.COM' }, { hostedDomain: 'example.com' })).hd).toBe(
        'Example.COM',
      );
      expect((await accepted({ ...claims, hd: 'example.com' }, { hostedDomain: 'EXAMPLE.com' })).hd).toBe(
        'example.com',
      );
      expect((await accepted({ ...claims, hd: 'other.example' })).hd).toBe('other.example');
      // A genuine token of a user outside the domain: HD_NOT_ALLOWED (403), not ID_TOKEN_INVALID.
      for (const hd of ['example.org', undefined]) {
        await expect(
          accepted({ ...claims, ...(hd === undefined ? {} : { hd }) }, { hostedDomain: 'example.com' }),
        ).rejects.toMatchObject({
          code: 'HD_NOT_ALLOWED',
          reason: 'hd_mismatch',
          message: 'The user is not in the allowed Google Workspace domain.',
        });
      }
      // Checked after the token itself: an expired token of another domain is an invalid token.
      await refused(
        accepted(
          { ...claims, hd: 'example.org', iat: NOW - 7200, exp: NOW - 3600 },
          { hostedDomain: 'example.com' },
        ),
        'expired',
        'The ID token has expired.',
      );
    });

    it('checks the nonce only when asked, and then requires it', async () => {
      expect((await accepted({ ...claims, nonce: 'abc' }, {}, { nonce: 'abc' })).nonce).toBe('abc');
      expect((await accepted({ ...claims, nonce: 'abc' })).nonce).toBe('abc');
      await refused(
        accepted(claims, {}, { nonce: 'abc' }),
        'nonce_mismatch',
        'The ID token nonce does not match.',
      );
      await refused(
        accepted({ ...claims, nonce: 'abc' }, {}, { nonce: 'abd' }),
        'nonce_mismatch',
        'The ID token nonce does not match.',
      );
    });

    it('checks at_hash only when given the access token, and then requires it', async () => {
      const accessToken = 'ya29.a0-test-access-token';
      const atHash = createHash('sha256').update(accessToken).digest().subarray(0, 16).toString('base64url');
      expect((await accepted({ ...claims, at_hash: atHash }, {}, { accessToken })).sub).toBe(claims.sub);
      expect((await accepted({ ...claims, at_hash: 'not-checked' })).sub).toBe(claims.sub);
      await refused(accepted(claims, {}, { accessToken }), 'missing_claim', 'The ID token has no at_hash.');
      await refused(
        accepted({ ...claims, at_hash: atHash }, {}, { accessToken: `${accessToken}x` }),
        'at_hash_mismatch',
        'The ID token was not issued with this access token.',
      );
    });
  });

  describe('time', () => {
    it('is expired from the second its exp plus 60 s of skew is reached', async () => {
      expect(await accepted({ ...claims, iat: NOW - 3659, exp: NOW - 59 })).toBeDefined();
      await refused(
        accepted({ ...claims, iat: NOW - 3660, exp: NOW - 60 }),
        'expired',
        'The ID token has expired.',
      );
    });

    it('is issued in the future only when iat is more than 60 s ahead', async () => {
      expect(await accepted({ ...claims, iat: NOW + 60, exp: NOW + 3660 })).toBeDefined();
      await refused(
        accepted({ ...claims, iat: NOW + 61, exp: NOW + 3661 }),
        'issued_in_future',
        'The ID token is issued in the future.',
      );
    });

    it('uses the configured skew', async () => {
      expect(
        await accepted({ ...claims, iat: NOW - 3599, exp: NOW + 1 }, { clockSkewSeconds: 0 }),
      ).toBeDefined();
      await refused(
        accepted({ ...claims, iat: NOW - 3600, exp: NOW }, { clockSkewSeconds: 0 }),
        'expired',
        'The ID token has expired.',
      );
      await refused(
        accepted({ ...claims, iat: NOW + 1, exp: NOW + 3601 }, { clockSkewSeconds: 0 }),
        'issued_in_future',
        'The ID token is issued in the future.',
      );
    });

    it('takes a lifetime of up to a day, or the configured one', async () => {
      expect(await accepted({ ...claims, exp: NOW + 86_400 })).toBeDefined();
      await refused(
        accepted({ ...claims, exp: NOW + 86_401 }),
        'lifetime_too_long',
        'The ID token claims a lifetime longer than Google issues.',
      );
      expect(await accepted({ ...claims, exp: NOW + 600 }, { maxLifetimeSeconds: 600 })).toBeDefined();
      await refused(
        accepted({ ...claims, exp: NOW + 601 }, { maxLifetimeSeconds: 600 }),
        'lifetime_too_long',
        'The ID token claims a lifetime longer than Google issues.',
      );
    });

    it('reads iat and exp as whole, non-negative seconds', async () => {
      // 0 is a whole number of seconds: the token is read, and is simply long expired.
      await refused(accepted({ ...claims, iat: 0, exp: 0 }), 'expired', 'The ID token has expired.');
      await refused(
        accepted({ ...claims, iat: -1 }),
        'missing_claim',
        'The ID token iat is not a whole number of seconds.',
      );
      await refused(
        accepted({ ...claims, exp: 2 ** 53 }),
        'missing_claim',
        'The ID token exp is not a whole number of seconds.',
      );
    });

    it('checks time again on every use of a cached token', async () => {
      const jwt = token(claims);
      const cached = verifier();
      expect(await cached.verify(jwt)).toBeDefined();
      clock.ms += 3660 * 1000 - 500 - 1;
      expect(await cached.verify(jwt)).toBeDefined();
      clock.ms += 1;
      await refused(cached.verify(jwt), 'expired', 'The ID token has expired.');
    });
  });

  describe('structure', () => {
    it('refuses anything that is not a non-empty string', async () => {
      await refused(verify(''), 'malformed', 'The ID token is empty.');
      for (const value of [undefined, null, 42, { token: 'x' }])
        await refused(verify(value), 'malformed', 'The ID token is empty.');
    });

    it('takes a token of exactly 8 KiB, and refuses one a character longer', async () => {
      // Pad a claim until the token is exactly 8192 characters (base64url cannot reach every
      // length: a longer kid, served with the key, shifts the total by one).
      let exact: string | undefined;
      for (let kidLength = 40; exact === undefined; kidLength++) {
        const kid = 'k'.repeat(kidLength);
        jwksKeys.push({ ...(google.publicKey.export({ format: 'jwk' }) as object), kid });
        const base = token({ ...claims, padding: '' }, { ...HEADER, kid }).length;
        const estimate = Math.floor(((8192 - base) * 3) / 4);
        for (let pad = estimate - 4; pad <= estimate + 4 && exact === undefined; pad++) {
          const candidate = token({ ...claims, padding: 'x'.repeat(pad) }, { ...HEADER, kid });
          if (candidate.length === 8192) exact = candidate;
        }
      }
      expect(await verify(exact)).toBeDefined();
      const [h, p, s] = exact.split('.') as [string, string, string];
      await refused(verify(`${h}.${p}.${s}A`), 'too_large', 'The ID token is too large.');
    });

    it('has exactly three segments', async () => {
      const [h, p, s] = token(claims).split('.') as [string, string, string];
      for (const jwt of [`${h}${p}${s}`, `${h}.${p}`, `${h}.${p}.${s}.${s}`, `${h}..${p}.${s}`]) {
        await refused(verify(jwt), 'malformed', 'A ID token has exactly three segments.');
      }
    });

    it('refuses a character outside base64url at the start, middle or end of any segment', async () => {
      const jwt = token(claims);
      const [h, p, s] = jwt.split('.') as [string, string, string];
      const spoil = (segment: string, at: number, c: string) =>
        `${segment.slice(0, at)}${c}${segment.slice(at + 1)}`;
      for (const c of ['+', '/', '=', ' ', '\u00e9']) {
        for (const at of [0, 10]) {
          await refused(
            verify(`${spoil(h, at, c)}.${p}.${s}`),
            'malformed',
            'A ID token segment is not canonical base64url.',
          );
          await refused(
            verify(`${h}.${spoil(p, at, c)}.${s}`),
            'malformed',
            'A ID token segment is not canonical base64url.',
          );
          await refused(
            verify(`${h}.${p}.${spoil(s, at, c)}`),
            'malformed',
            'A ID token segment is not canonical base64url.',
          );
        }
      }
    });

    it('refuses a segment of a length base64url cannot have (4n + 1)', async () => {
      const jwt = token(claims);
      const [h, p, s] = jwt.split('.') as [string, string, string];
      const toOne = (segment: string) => segment + 'A'.repeat((((1 - segment.length) % 4) + 4) % 4);
      for (const forged of [`${toOne(h)}.${p}.${s}`, `${h}.${toOne(p)}.${s}`, `${h}.${p}.${toOne(s)}`]) {
        expect(forged.split('.').some((segment) => segment.length % 4 === 1)).toBe(true);
        await refused(verify(forged), 'malformed', 'A ID token segment is not canonical base64url.');
      }
    });

    it('refuses any set unused bit in the last character: 4 of them after 2 characters, 2 after 3, none after 4', async () => {
      // Payloads of each length modulo 4, found by padding a claim.
      const byRest = new Map<number, Record<string, unknown>>();
      for (let pad = 0; byRest.size < 3; pad++) {
        const payload = { ...claims, pad: 'x'.repeat(pad) };
        byRest.set(b64(payload).length % 4, payload);
      }
      for (const [rest, unused] of [
        [2, [1, 2, 4, 8]],
        [3, [1, 2]],
      ] as const) {
        const [h, p, s] = token(byRest.get(rest)!).split('.') as [string, string, string];
        expect(ALPHABET.indexOf(p.at(-1)!) & (rest === 2 ? 0x0f : 0x03)).toBe(0);
        for (const bit of unused) {
          await refused(
            verify(`${h}.${flipLast(p, bit)}.${s}`),
            'malformed',
            'A ID token segment is not canonical base64url.',
          );
        }
      }
      // After 4 characters (or 3 with data in bits 2-3, or 2 with data in bits 4-5) nothing is unused.
      for (const rest of [0, 2, 3]) {
        for (let pad = 0, found = 0; found < 3; pad++) {
          const payload = { ...byRest.get(rest === 0 ? 2 : rest)!, more: 'y'.repeat(pad) };
          const p = b64(payload);
          // Bits that only carry data here, and that a mask for another length would take as unused.
          const dataBits = rest === 0 ? 0x03 : rest === 2 ? 0x30 : 0x0c;
          if (p.length % 4 !== rest || (ALPHABET.indexOf(p.at(-1)!) & dataBits) === 0) continue;
          found++;
          expect(await verify(token(payload))).toBeDefined();
        }
      }
    });

    it('refuses a header or payload that is not a JSON object', async () => {
      const [, p, s] = token(claims).split('.') as [string, string, string];
      await refused(
        verify(`${b64('[1]')}.${p}.${s}`),
        'bad_header',
        'The ID token header is not a JSON object with unique keys.',
      );
      await refused(
        verify(token('"text"')),
        'malformed',
        'The ID token payload is not a JSON object with unique keys.',
      );
    });
  });

  describe('header', () => {
    it('takes typ JWT or no typ at all', async () => {
      expect(await verify(token(claims, { alg: 'RS256', kid: KID }))).toBeDefined();
      expect(await verify(token(claims, HEADER))).toBeDefined();
      for (const typ of ['jwt', 'at+jwt', 7, null, ['JWT']]) {
        await refused(
          verify(token(claims, { ...HEADER, typ })),
          'bad_header',
          'The ID token header typ is not expected.',
        );
      }
    });

    it('refuses every header that carries or points at a key, or changes how the token is read', async () => {
      for (const name of ['crit', 'jku', 'x5u', 'jwk', 'x5c', 'x5t', 'x5t#S256', 'zip', 'enc']) {
        await refused(
          verify(token(claims, { ...HEADER, [name]: 'x' })),
          'forbidden_header',
          `The ID token header carries "${name}", which Google never sends.`,
        );
      }
    });

    it('takes only RS256', async () => {
      for (const alg of ['none', 'RS384', 'rs256', undefined]) {
        await refused(
          verify(token(claims, { ...HEADER, alg })),
          'unsupported_alg',
          'Only RS256 is accepted for a ID token.',
        );
      }
    });

    it('takes a kid of 1 to 256 characters, and looks it up in the key set', async () => {
      const long = 'k'.repeat(256);
      jwksKeys.push({ ...(google.publicKey.export({ format: 'jwk' }) as object), kid: long });
      expect(await verify(token(claims, { ...HEADER, kid: long }))).toBeDefined();
      for (const kid of ['', 'k'.repeat(257), 7, undefined]) {
        await refused(
          verify(token(claims, { ...HEADER, kid })),
          'bad_header',
          'The ID token header has no key id.',
        );
      }
      await refused(
        verify(token(claims, { ...HEADER, kid: 'elsewhere' })),
        'unknown_kid',
        'The ID token is signed with a key Google does not publish.',
      );
    });

    it('parses a header once: tokens with the same header share one frozen object', async () => {
      const jwtKind = { what: 'ID token', typ: ['JWT'] };
      const first = await verifyGoogleJwt(token(claims), keys, jwtKind);
      const second = await verifyGoogleJwt(token({ ...claims, sub: 'another' }), keys, jwtKind);
      expect(second.header).toBe(first.header);
      expect(Object.isFrozen(first.header)).toBe(true);
      expect(first.header).toEqual(HEADER);
    });

    it('remembers at most 256 headers, then starts again', async () => {
      const jwtKind = { what: 'ID token', typ: ['JWT'] };
      const sentinel = token(claims, { ...HEADER, sentinel: true });
      const [, p, s] = sentinel.split('.') as [string, string, string];
      let remembered = (await verifyGoogleJwt(sentinel, keys, jwtKind)).header;
      /** A header never seen before: remembered on the way to a refused signature (the sentinel's). */
      let fresh = 0;
      const another = () =>
        refused(
          verifyGoogleJwt(`${b64({ ...HEADER, n: ++fresh })}.${p}.${s}`, keys, jwtKind),
          'bad_signature',
          'The ID token signature is not valid.',
        );
      const stillRemembered = async () => {
        const header = (await verifyGoogleJwt(sentinel, keys, jwtKind)).header;
        const same = header === remembered;
        remembered = header;
        return same;
      };
      // Other tests in this file filled the memory part way: add headers until it starts again.
      do await another();
      while (await stillRemembered());
      // It now holds the header that overflowed it and the sentinel: 254 more fill it to 256.
      for (let i = 0; i < 254; i++) await another();
      expect(await stillRemembered()).toBe(true);
      await another();
      expect(await stillRemembered()).toBe(false);
    });
  });

  describe('keys and caches', () => {
    it("passes the key set's own error on, and reports any other failure to get a key as Google being unavailable", async () => {
      const down = new GoogleKeySet({
        jwksUri: JWKS_URI,
        fetch: async () => new Response('busy', { status: 503 }),
        clock,
      });
      await expect(
        new IdTokenVerifier({
          keys: down,
          clock,
          policy: { audience: AUD, allowedAuthorizedParties: [] },
        }).verify(token(claims)),
      ).rejects.toMatchObject({
        code: 'GOOGLE_UNAVAILABLE',
        retryAfter: 5,
        message: `Google's signing keys (${JWKS_URI}) answered HTTP 503; retry later.`,
      });
      const broken = {
        freshKey: () => undefined,
        getKey: async () => {
          throw new TypeError('something else');
        },
      } as unknown as GoogleKeySet;
      await expect(
        new IdTokenVerifier({
          keys: broken,
          clock,
          policy: { audience: AUD, allowedAuthorizedParties: [] },
        }).verify(token(claims)),
      ).rejects.toMatchObject({
        code: 'GOOGLE_UNAVAILABLE',
        reason: 'keys_unavailable',
        message: "Google's signing keys could not be read; retry later.",
      });
    });

    it('keeps 10,000 verified tokens by default, and at least one whatever the size asked', async () => {
      // Verified tokens are served from memory: once Google stops publishing their key, only
      // the ones still remembered verify.
      const jwts = Array.from({ length: 3 }, (_, i) => token({ ...claims, sub: `user-${i}` }));
      const byDefault = verifier();
      const none = verifier({}, 0);
      for (const jwt of jwts) await byDefault.verify(jwt);
      for (const jwt of jwts) await none.verify(jwt);
      jwksKeys.length = 0;
      clock.ms += 3600 * 1000; // the keys' max-age: fetched again, and gone
      for (const jwt of jwts) expect(await byDefault.verify(jwt)).toBeDefined();
      await refused(
        none.verify(jwts[0]!),
        'unknown_kid',
        'The ID token is signed with a key Google does not publish.',
      );
      expect((await none.verify(jwts[2]!)).sub).toBe('user-2');
    });
  });
});
