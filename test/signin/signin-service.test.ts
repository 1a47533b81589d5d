import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { OffsetClock } from '../../src/clock.js';
import { BehalfError } from '../../src/errors.js';
import type { GoogleOAuthClient, TokenSet } from '../../src/google/oauth.js';
import type { IdTokenVerifier, VerifiedIdToken, VerifyOptions } from '../../src/idtoken/index.js';
import { SignInService, type SignInInput } from '../../src/signin/index.js';
import { openSqliteStore, parseKeyring, Vault, type SqliteStore } from '../../src/vault/index.js';

const CLIENT_ID = 'server.apps.googleusercontent.com';
const T0 = 1_760_000_000_000;
const DRIVE = 'https://www.googleapis.com/auth/drive.appdata';
const OPENID = ['openid', 'https://www.googleapis.com/auth/userinfo.email'];
const VERIFIER = 'v'.repeat(43);

let dir: string;
let stores = 0;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'behalf-signin-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function claimsOf(sub: string): VerifiedIdToken {
  return {
    sub,
    email: `${sub}@example.com`,
    emailVerified: true,
    name: 'Ada Lovelace',
    givenName: 'Ada',
    familyName: 'Lovelace',
    picture: 'https://lh3.googleusercontent.com/a/photo',
    locale: 'en',
    hd: 'example.com',
    aud: CLIENT_ID,
    azp: 'ios.apps.googleusercontent.com',
    iss: 'https://accounts.google.com',
    iat: T0 / 1000,
    exp: T0 / 1000 + 3600,
    nonce: null,
  };
}

/**
 * SignInService with Google's token endpoint and the ID token verifier played by the test (each
 * call recorded), over a real SQLite vault: what reaches Google, what is checked, what is stored.
 */
describe('SignInService', () => {
  let store: SqliteStore;
  let vault: Vault;
  let clock: OffsetClock;
  let exchanged: Array<{ code: string; redirectUri: string; codeVerifier?: string }>;
  let verified: Array<{ idToken: string; options: VerifyOptions | undefined }>;
  /** What Google's token endpoint answers next. */
  let answer: Partial<TokenSet>;
  let service: (options?: { requiredScopes?: string[]; redirectUris?: string[] }) => SignInService;

  beforeEach(async () => {
    store = await openSqliteStore(join(dir, `signin-${++stores}`, 'behalf.db'));
    vault = new Vault(store, parseKeyring(`k1:${randomBytes(32).toString('base64')}`));
    clock = new OffsetClock({ now: () => T0 });
    exchanged = [];
    verified = [];
    answer = {};
    const oauth = {
      clientId: CLIENT_ID,
      exchangeCode: async (input: {
        code: string;
        redirectUri: string;
        codeVerifier?: string;
      }): Promise<TokenSet> => {
        exchanged.push(input);
        return {
          accessToken: `ya29.access-${exchanged.length}`,
          expiresIn: 3599,
          refreshToken: `1//0g-refresh-${exchanged.length}`,
          scopes: [...OPENID, DRIVE],
          idToken: 'header.claims.signature',
          refreshTokenExpiresIn: undefined,
          ...answer,
        };
      },
    } as unknown as GoogleOAuthClient;
    const verifier = {
      verify: async (idToken: string, options?: VerifyOptions) => {
        verified.push({ idToken, options });
        return claimsOf('110169484474386276334');
      },
    } as unknown as IdTokenVerifier;
    service = (options = {}) =>
      new SignInService({
        oauth,
        verifier,
        vault,
        clock,
        requiredScopes: options.requiredScopes ?? [],
        redirectUris: options.redirectUris ?? [],
      });
  });
  afterEach(async () => {
    await store.close();
  });

  const refusal = async (input: SignInInput, signIn = service()) => {
    const error = await signIn.signIn(input).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(BehalfError);
    return error as BehalfError;
  };

  it('redeems the code, checks the ID token against the access token it came with, stores the user and tokens, then answers', async () => {
    const result = await service({ requiredScopes: [DRIVE] }).signIn({ code: '4/0Acode' });
    expect(exchanged).toEqual([{ code: '4/0Acode', redirectUri: '' }]);
    expect(verified).toEqual([
      { idToken: 'header.claims.signature', options: { accessToken: 'ya29.access-1' } },
    ]);
    const sub = '110169484474386276334';
    expect(result).toEqual({
      user: {
        sub,
        email: `${sub}@example.com`,
        emailVerified: true,
        name: 'Ada Lovelace',
        givenName: 'Ada',
        familyName: 'Lovelace',
        picture: 'https://lh3.googleusercontent.com/a/photo',
        locale: 'en',
        hd: 'example.com',
      },
      created: true,
      grant: {
        status: 'active',
        offlineAccess: true,
        refreshTokenReceived: true,
        scopes: [...OPENID, DRIVE],
        missingScopes: [],
      },
      action: 'none',
    });
    expect(await vault.getUser(sub)).toMatchObject({ sub, email: `${sub}@example.com`, hd: 'example.com' });
    expect(await vault.getGrant(sub, CLIENT_ID)).toMatchObject({
      status: 'active',
      refreshToken: '1//0g-refresh-1',
      accessToken: 'ya29.access-1',
      accessTokenExpiresAt: T0 + 3_599_000,
    });
  });

  it('a second sign-in is not created; without a new refresh token the stored one is kept and offline access stays', async () => {
    await service().signIn({ code: '4/0Afirst' });
    answer = { refreshToken: undefined };
    const again = await service().signIn({ code: '4/0Asecond' });
    expect(again.created).toBe(false);
    expect(again.grant).toMatchObject({ status: 'active', offlineAccess: true, refreshTokenReceived: false });
    expect(again.action).toBe('none');
    expect(await vault.getGrant('110169484474386276334', CLIENT_ID)).toMatchObject({
      refreshToken: '1//0g-refresh-1',
      accessToken: 'ya29.access-2',
    });
  });

  it('no refresh token, none stored: force_consent', async () => {
    answer = { refreshToken: undefined };
    const result = await service().signIn({ code: '4/0Acode' });
    expect(result.grant).toMatchObject({
      status: 'needs_consent',
      offlineAccess: false,
      refreshTokenReceived: false,
    });
    expect(result.action).toBe('force_consent');
  });

  it('no refresh token and the stored grant no longer active: force_consent', async () => {
    await service().signIn({ code: '4/0Afirst' });
    await vault.setGrantStatus('110169484474386276334', CLIENT_ID, 'needs_consent', T0);
    answer = { refreshToken: undefined };
    const result = await service().signIn({ code: '4/0Asecond' });
    expect(result.grant).toMatchObject({ status: 'needs_consent', offlineAccess: false });
    expect(result.action).toBe('force_consent');
  });

  it("required scopes not granted are reported (short names as Google's full URLs), and the app is asked to request them", async () => {
    answer = { scopes: ['openid', 'email', 'openid'] };
    const result = await service({ requiredScopes: [OPENID[1]!, DRIVE] }).signIn({ code: '4/0Acode' });
    expect(result.grant.scopes).toEqual(OPENID);
    expect(result.grant.missingScopes).toEqual([DRIVE]);
    expect(result.action).toBe('request_scopes');
  });

  it('Google answering without an ID token (no openid scope) is refused, and nothing is stored', async () => {
    answer = { idToken: undefined };
    expect(await refusal({ code: '4/0Acode' })).toMatchObject({
      code: 'ID_TOKEN_INVALID',
      reason: 'missing_id_token',
    });
    expect(verified).toEqual([]);
    expect(await vault.getUser('110169484474386276334')).toBeNull();
  });

  describe('the code', () => {
    it('is required', async () => {
      expect(await refusal({ code: '' })).toMatchObject({ code: 'INVALID_REQUEST', reason: 'missing_code' });
      expect(exchanged).toEqual([]);
    });

    it.each([
      ['longer than 512 characters', `4/0A${'x'.repeat(509)}`],
      ['with a space', '4/0A code'],
      ['with a character outside printable ASCII', '4/0Acodé'],
      ['with a control character', '4/0A\u0000code'],
      ['percent-encoded but not decodable', '4%2F0A%E0%A4%A'],
    ])('%s is refused as malformed without asking Google', async (_what, code) => {
      expect(await refusal({ code })).toMatchObject({ code: 'CODE_INVALID', reason: 'malformed_code' });
      expect(exchanged).toEqual([]);
    });

    it('of 512 printable characters is sent as it is', async () => {
      const code = `4/0A${'x'.repeat(508)}`;
      await service().signIn({ code });
      expect(exchanged.map((e) => e.code)).toEqual([code]);
    });

    it.each([['4%2F0Acode'], ['4%2f0Acode']])(
      '%s (its "/" still percent-encoded) is decoded before it is sent',
      async (code) => {
        await service().signIn({ code });
        expect(exchanged.map((e) => e.code)).toEqual(['4/0Acode']);
      },
    );

    it('with a percent-encoding elsewhere is sent untouched', async () => {
      await service().signIn({ code: 'x4%2F0Acode' });
      expect(exchanged.map((e) => e.code)).toEqual(['x4%2F0Acode']);
    });
  });

  describe('the redirect URI', () => {
    it.each([[''], ['postmessage'], ['https://app.example.com/callback']])(
      '%j is sent to Google when allowed',
      async (redirectUri) => {
        await service({ redirectUris: ['https://app.example.com/callback'] }).signIn({
          code: '4/0Acode',
          redirectUri,
        });
        expect(exchanged).toEqual([{ code: '4/0Acode', redirectUri }]);
      },
    );

    it('one that is not configured is refused without asking Google', async () => {
      const error = await refusal(
        { code: '4/0Acode', redirectUri: 'https://evil.example.com/cb' },
        service({ redirectUris: ['https://app.example.com/callback'] }),
      );
      expect(error).toMatchObject({ code: 'INVALID_REQUEST', reason: 'redirect_uri_not_allowed' });
      expect(exchanged).toEqual([]);
    });
  });

  describe('the PKCE code verifier (RFC 7636 §4.1: 43-128 of [A-Za-z0-9._~-])', () => {
    it.each([
      ['43 characters', VERIFIER],
      ['128 characters, every allowed kind', `${'aZ09._~-'.repeat(16)}`],
    ])('%s is sent to Google', async (_what, codeVerifier) => {
      await service().signIn({ code: '4/0Acode', codeVerifier });
      expect(exchanged).toEqual([{ code: '4/0Acode', redirectUri: '', codeVerifier }]);
    });

    it.each([
      ['42 characters', 'v'.repeat(42)],
      ['129 characters', 'v'.repeat(129)],
      ['a character outside the set', `${'v'.repeat(42)}+`],
      ['an empty one', ''],
    ])('%s is refused without asking Google', async (_what, codeVerifier) => {
      expect(await refusal({ code: '4/0Acode', codeVerifier })).toMatchObject({ code: 'INVALID_REQUEST' });
      expect(exchanged).toEqual([]);
    });
  });
});
