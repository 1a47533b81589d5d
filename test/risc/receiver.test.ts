import { createHash, generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { OffsetClock } from '../../src/clock.js';
import { GoogleKeySet } from '../../src/idtoken/index.js';
import { SecurityEventReceiver, type SecurityLog, type SecurityStep } from '../../src/risc/index.js';
import { openSqliteStore, parseKeyring, Vault, type SqliteStore } from '../../src/vault/index.js';
import { profile } from '../vault/store-contract.js';

const ISSUER = 'https://accounts.google.com/';
const CLIENT_ID = 'server.apps.googleusercontent.com';
const APP_ID = 'ios.apps.googleusercontent.com';
const RISC = 'https://schemas.openid.net/secevent/risc/event-type/';
const OAUTH = 'https://schemas.openid.net/secevent/oauth/event-type/';
const T0 = 1_760_000_000_000;
const KID = 'a'.repeat(40);
const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const JWKS = {
  keys: [{ ...(publicKey.export({ format: 'jwk' }) as object), kid: KID, alg: 'RS256', use: 'sig' }],
};

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

/** A security event token signed with Google's (the test's) key. */
function securityEventToken(
  payload: Record<string, unknown>,
  header: Record<string, unknown> = { typ: 'secevent+jwt' },
): string {
  const signingInput = `${b64({ alg: 'RS256', kid: KID, ...header })}.${b64(payload)}`;
  return `${signingInput}.${sign('sha256', Buffer.from(signingInput), privateKey).toString('base64url')}`;
}

let jtis = 0;
function claims(
  events: Record<string, unknown>,
  overrides: Record<string, unknown> = {},
): Record<string, unknown> {
  return { iss: ISSUER, aud: CLIENT_ID, iat: T0 / 1000, jti: `jti-${++jtis}`, events, ...overrides };
}
const about = (sub: string, extra: Record<string, unknown> = {}) => ({
  subject: { subject_type: 'iss-sub', iss: ISSUER, sub },
  ...extra,
});

let dir: string;
let stores = 0;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'behalf-receiver-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/**
 * The receiver over a real SQLite vault (users and their grants), with the security log played
 * by the test: what steps each event leads to, and what happens on a redelivery.
 */
describe('SecurityEventReceiver', () => {
  let store: SqliteStore;
  let vault: Vault;
  let applied: Array<{ jti: string; steps: readonly SecurityStep[] }>;
  let recorded: Set<string>;
  let logged: Array<Record<string, unknown>>;
  let told: string[];
  let receiver: SecurityEventReceiver;

  beforeEach(async () => {
    store = await openSqliteStore(join(dir, `receiver-${++stores}`, 'behalf.db'));
    vault = new Vault(store, parseKeyring(`k1:${randomBytes(32).toString('base64')}`));
    applied = [];
    recorded = new Set();
    logged = [];
    told = [];
    const log = {
      applyEvent: async (jti: string, _now: number, steps: readonly SecurityStep[]) => {
        if (recorded.has(jti)) return false;
        recorded.add(jti);
        applied.push({ jti, steps });
        return true;
      },
    } as unknown as SecurityLog;
    const clock = new OffsetClock({ now: () => T0 });
    receiver = new SecurityEventReceiver({
      keys: new GoogleKeySet({
        jwksUri: 'https://www.googleapis.com/oauth2/v3/certs',
        fetch: async () => Response.json(JWKS),
        clock,
      }),
      clock,
      vault,
      log,
      clientId: CLIENT_ID,
      audiences: [CLIENT_ID, APP_ID],
      issuer: ISSUER,
      logger: pino(
        { level: 'info' },
        { write: (line: string) => void logged.push(JSON.parse(line) as Record<string, unknown>) },
      ),
      onEvent: (type) => void told.push(type),
    });
  });
  afterEach(async () => {
    await store.close();
  });

  /** A user signed in with this refresh token (for this client unless told). */
  async function user(
    sub: string,
    refreshToken = `1//0g-${sub}-${randomBytes(12).toString('hex')}`,
    clientId = CLIENT_ID,
  ) {
    await vault.saveSignIn({
      user: profile(sub),
      clientId,
      scopes: ['openid'],
      refreshToken,
      accessToken: `ya29.${sub}`,
      accessTokenExpiresAt: T0 + 3_600_000,
      now: T0,
    });
    return { sub, refreshToken };
  }
  const receive = (payload: Record<string, unknown>) => receiver.receive(securityEventToken(payload));
  const refusal = async (token: string) => {
    const error = await receiver.receive(token).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toMatchObject({ code: 'ID_TOKEN_INVALID' });
    expect(applied).toEqual([]);
    return error as { reason: string };
  };

  it.each([
    [
      'sessions-revoked',
      `${RISC}sessions-revoked`,
      {},
      'grant_dropped',
      [{ op: 'revoke_grant', state: 'sessions_revoked' }],
    ],
    [
      'sessions-revoked-legacy',
      `${RISC}sessions-revoked-legacy`,
      {},
      'grant_dropped',
      [{ op: 'revoke_grant', state: 'sessions_revoked' }],
    ],
    [
      'tokens-revoked',
      `${OAUTH}tokens-revoked`,
      {},
      'grant_dropped',
      [{ op: 'revoke_grant', state: 'tokens_revoked' }],
    ],
    [
      'account-disabled (hijacking)',
      `${RISC}account-disabled`,
      { reason: 'hijacking' },
      'user_disabled',
      [{ op: 'revoke_grant', state: 'account_disabled_hijacking' }],
    ],
    [
      'account-disabled (bulk-account)',
      `${RISC}account-disabled`,
      { reason: 'bulk-account' },
      'user_disabled',
      [{ op: 'revoke_grant', state: 'account_disabled' }],
    ],
    ['account-enabled', `${RISC}account-enabled`, {}, 'user_enabled', [{ op: 'set_state', state: null }]],
    [
      'account-credential-change-required',
      `${RISC}account-credential-change-required`,
      {},
      'user_marked',
      [{ op: 'set_state', state: 'credential_change_required' }],
    ],
    ['account-purged', `${RISC}account-purged`, {}, 'user_deleted', [{ op: 'delete_user' }]],
    ['an event type behalf does not act on', `${RISC}something-new`, {}, 'ignored', []],
  ])(
    '%s about a known user: its steps, announced, in one record with the event id',
    async (_what, type, extra, action, steps) => {
      const { sub } = await user('110');
      const short = type.slice(type.lastIndexOf('/') + 1);
      const payload = claims({ [type]: about(sub, extra) });
      expect(await receive(payload)).toEqual({
        jti: payload.jti,
        duplicate: false,
        events: [{ type: short, sub, action }],
      });
      const withIds = steps.map((step) => ({
        ...step,
        sub,
        ...(step.op === 'revoke_grant' ? { clientId: CLIENT_ID } : {}),
      }));
      expect(applied).toEqual([
        { jti: payload.jti, steps: [...withIds, { op: 'announce', sub, event: short, action }] },
      ]);
      expect(told).toEqual([short]);
      expect(logged.filter((l) => l.msg === 'security event')).toEqual([
        expect.objectContaining({ jti: payload.jti, event: short, sub, action }),
      ]);
    },
  );

  it('a type outside the RISC and OAuth namespaces keeps its full name', async () => {
    const { sub } = await user('110');
    expect((await receive(claims({ 'urn:example:event': about(sub) }))).events).toEqual([
      { type: 'urn:example:event', sub, action: 'ignored' },
    ]);
  });

  it('verification is answered and nothing is done or announced', async () => {
    const payload = claims({ [`${RISC}verification`]: { state: 'abc' } });
    expect(await receive(payload)).toEqual({
      jti: payload.jti,
      duplicate: false,
      events: [{ type: 'verification', sub: null, action: 'verified' }],
    });
    expect(applied).toEqual([{ jti: payload.jti, steps: [] }]);
  });

  it.each([
    ['an unknown user', about('999')],
    ['no subject', {}],
    ['a subject without sub', { subject: { subject_type: 'email', email: 'a@example.com' } }],
    ['a body that is not an object', 'sessions'],
  ])('about %s: no_such_user, recorded with no step and not announced', async (_what, body) => {
    const payload = claims({ [`${RISC}sessions-revoked`]: body });
    const { events } = await receive(payload);
    expect(events).toEqual([
      {
        type: 'sessions-revoked',
        sub: (body as { subject?: { sub?: string } }).subject?.sub ?? null,
        action: 'no_such_user',
      },
    ]);
    expect(applied).toEqual([{ jti: payload.jti, steps: [] }]);
  });

  it('several events in one token: each decided, all recorded in one transaction', async () => {
    const a = await user('110');
    const b = await user('111');
    const payload = claims({
      [`${RISC}account-purged`]: about(a.sub),
      [`${RISC}account-enabled`]: about(b.sub),
    });
    expect((await receive(payload)).events.map((e) => e.action)).toEqual(['user_deleted', 'user_enabled']);
    expect(applied).toHaveLength(1);
    expect(applied[0]!.steps.map((s) => s.op)).toEqual(['delete_user', 'announce', 'set_state', 'announce']);
  });

  it('a redelivery of an event acted on is a duplicate: nothing is done, logged or counted again', async () => {
    const { sub } = await user('110');
    const payload = claims({ [`${RISC}sessions-revoked`]: about(sub) });
    await receive(payload);
    expect(await receive(payload)).toEqual({ jti: payload.jti, duplicate: true, events: [] });
    expect(applied).toHaveLength(1);
    expect(told).toEqual(['sessions-revoked']);
    expect(logged.filter((l) => l.msg === 'security event')).toHaveLength(1);
  });

  describe('token-revoked (https://developers.google.com/identity/protocols/risc#token_revoked)', () => {
    const revoked = (subject: Record<string, unknown>) =>
      claims({
        [`${OAUTH}token-revoked`]: {
          subject: { subject_type: 'oauth_token', token_type: 'refresh_token', ...subject },
        },
      });
    const doubleSha512 = (token: string) =>
      createHash('sha512').update(createHash('sha512').update(token).digest()).digest('base64');

    it('finds the grant by the first 16 characters of its refresh token, or more', async () => {
      await user('110');
      const { sub, refreshToken } = await user('111');
      for (const prefix of [refreshToken.slice(0, 16), refreshToken]) {
        const payload = revoked({ token_identifier_alg: 'prefix', token: prefix });
        expect((await receive(payload)).events).toEqual([
          { type: 'token-revoked', sub, action: 'grant_dropped' },
        ]);
        expect(applied.at(-1)!.steps).toEqual([
          { op: 'revoke_grant', sub, clientId: CLIENT_ID, state: 'token_revoked' },
          { op: 'announce', sub, event: 'token-revoked', action: 'grant_dropped' },
        ]);
      }
    });

    it('finds the grant by the double SHA-512 of its refresh token', async () => {
      const { sub, refreshToken } = await user('111');
      await user('112');
      const { events } = await receive(
        revoked({ token_identifier_alg: 'hash_base64_sha512_sha512', token: doubleSha512(refreshToken) }),
      );
      expect(events).toEqual([{ type: 'token-revoked', sub, action: 'grant_dropped' }]);
    });

    it.each([
      [
        'a prefix shorter than 16 characters',
        (t: string) => ({ token_identifier_alg: 'prefix', token: t.slice(0, 15) }),
      ],
      [
        'a prefix of no stored token',
        () => ({ token_identifier_alg: 'prefix', token: '1//0g-nobody-000000' }),
      ],
      [
        'a hash of no stored token',
        () => ({ token_identifier_alg: 'hash_base64_sha512_sha512', token: doubleSha512('1//0g-nobody') }),
      ],
      [
        'a single SHA-512',
        (t: string) => ({
          token_identifier_alg: 'hash_base64_sha512_sha512',
          token: createHash('sha512').update(t).digest('base64'),
        }),
      ],
      ['an unknown algorithm', (t: string) => ({ token_identifier_alg: 'plain', token: t })],
      ['no token', () => ({ token_identifier_alg: 'prefix' })],
    ])('%s matches no one', async (_what, subject) => {
      const { refreshToken } = await user('111');
      const payload = revoked(subject(refreshToken));
      expect((await receive(payload)).events).toEqual([
        { type: 'token-revoked', sub: null, action: 'no_such_user' },
      ]);
      expect(applied).toEqual([{ jti: payload.jti, steps: [] }]);
    });

    it("another client's grant, or a grant whose tokens are gone, is not matched", async () => {
      const other = await user('111', undefined, 'other.apps.googleusercontent.com');
      const gone = await user('112');
      await vault.revokeGrant(gone.sub, CLIENT_ID, T0);
      for (const token of [other.refreshToken, gone.refreshToken]) {
        expect((await receive(revoked({ token_identifier_alg: 'prefix', token }))).events[0]!.action).toBe(
          'no_such_user',
        );
      }
    });
  });

  describe('verified as strictly as an ID token', () => {
    it.each([
      ['the issuer without its trailing slash', { iss: 'https://accounts.google.com' }],
      ['an app client as audience', { aud: APP_ID }],
      ['an audience list with one of ours', { aud: ['someone-else', CLIENT_ID] }],
      ['a jti of 256 characters', { jti: 'j'.repeat(256) }],
    ])('accepts %s', async (_what, overrides) => {
      expect((await receive(claims({ [`${RISC}verification`]: {} }, overrides))).duplicate).toBe(false);
    });

    it('accepts typ JWT or no typ', async () => {
      expect(
        (await receiver.receive(securityEventToken(claims({ [`${RISC}verification`]: {} }), { typ: 'JWT' })))
          .duplicate,
      ).toBe(false);
      expect(
        (await receiver.receive(securityEventToken(claims({ [`${RISC}verification`]: {} }), {}))).duplicate,
      ).toBe(false);
    });

    it.each([
      ['another issuer', { iss: 'https://evil.example.com/' }, 'bad_issuer'],
      ['a look-alike issuer', { iss: 'https://accounts.google.com//' }, 'bad_issuer'],
      ['an issuer that is not a string', { iss: ['https://accounts.google.com/'] }, 'bad_issuer'],
      ['another audience', { aud: 'other.apps.googleusercontent.com' }, 'bad_audience'],
      ['an audience list of others', { aud: ['a', 'b'] }, 'bad_audience'],
      ['an audience that is not a string', { aud: [42] }, 'bad_audience'],
      ['no iat', { iat: undefined }, 'missing_claim'],
      ['a fractional iat', { iat: 1.5 }, 'missing_claim'],
      ['no jti', { jti: undefined }, 'missing_claim'],
      ['an empty jti', { jti: '' }, 'missing_claim'],
      ['a jti of 257 characters', { jti: 'j'.repeat(257) }, 'missing_claim'],
      ['a jti that is not a string', { jti: 7 }, 'missing_claim'],
      ['no events', { events: undefined }, 'missing_claim'],
      ['events that are not an object', { events: 'sessions-revoked' }, 'missing_claim'],
      ['events as a list', { events: [{}] }, 'missing_claim'],
      ['events null', { events: null }, 'missing_claim'],
      ['an empty events object', { events: {} }, 'missing_claim'],
    ])('refuses %s', async (_what, overrides, reason) => {
      const payload: Record<string, unknown> = { ...claims({ [`${RISC}verification`]: {} }), ...overrides };
      for (const [key, value] of Object.entries(overrides)) if (value === undefined) delete payload[key];
      expect((await refusal(securityEventToken(payload))).reason).toBe(reason);
    });

    it('refuses another typ, and a token signed with another key', async () => {
      expect(
        (await refusal(securityEventToken(claims({ [`${RISC}verification`]: {} }), { typ: 'at+jwt' })))
          .reason,
      ).toBe('bad_header');
      const forged = securityEventToken(claims({ [`${RISC}verification`]: {} }));
      const other = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
      const [h, p] = forged.split('.');
      expect(
        (await refusal(`${h}.${p}.${sign('sha256', Buffer.from(`${h}.${p}`), other).toString('base64url')}`))
          .reason,
      ).toBe('bad_signature');
    });
  });
});
