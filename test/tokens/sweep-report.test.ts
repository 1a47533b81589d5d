import { describe, expect, it } from 'vitest';
import { BehalfError } from '../../src/errors.js';
import { sweepGrants, warnAboutExpiringGrants, type TokenService } from '../../src/tokens/index.js';
import type { StoredGrant, Vault } from '../../src/vault/index.js';
import { CLIENT_ID, settle, T0 } from './token-model.js';

const clock = { now: () => T0 };

function stored(sub: string, more: Partial<StoredGrant> = {}): StoredGrant {
  return {
    sub,
    clientId: CLIENT_ID,
    refreshTokenCiphertext: Buffer.from('sealed refresh token'),
    accessTokenCiphertext: Buffer.from('sealed access token'),
    accessTokenExpiresAt: T0 + 3_600_000,
    scopes: ['openid'],
    status: 'active',
    version: 1,
    refreshTokenIssuedAt: T0,
    refreshTokenExpiresAt: null,
    createdAt: T0,
    updatedAt: T0,
    ...more,
  };
}

/** A vault that walks `grants` (counting how far it was read) and records status changes. */
function walkedVault(grants: StoredGrant[]) {
  const walk = { read: 0 };
  const statuses: Array<[string, string, string | undefined]> = [];
  const vault = {
    async *eachGrant() {
      for (const grant of grants) {
        walk.read++;
        yield grant;
      }
    },
    setGrantStatus: async (sub: string, _clientId: string, status: string, _now: number, reason?: string) => {
      statuses.push([sub, status, reason]);
    },
  } as unknown as Vault;
  return { vault, walk, statuses };
}

/**
 * TokenService as the sweep sees it: answers per user (a new expiry means a refresh, an error is
 * thrown), optionally each check held until the test lets it finish.
 */
function answeringTokens(answers: Record<string, number | Error> = {}, options: { held?: boolean } = {}) {
  const asked: Array<{ sub: string; forceRefresh: boolean }> = [];
  const held: Array<() => void> = [];
  const running = { now: 0, most: 0 };
  const tokens = {
    getAccessToken: async (sub: string, opts: { forceRefresh?: boolean } = {}) => {
      asked.push({ sub, forceRefresh: opts.forceRefresh === true });
      running.most = Math.max(running.most, ++running.now);
      try {
        if (options.held === true) await new Promise<void>((resolve) => held.push(resolve));
        const answer = answers[sub] ?? T0 + 3_600_000;
        if (answer instanceof Error) throw answer;
        return { token: `ya29.${sub}`, expiresAt: answer, scopes: ['openid'] };
      } finally {
        running.now--;
      }
    },
  } as unknown as TokenService;
  /** Let the `n` oldest checks in progress finish, one at a time. */
  const finish = async (n: number) => {
    for (let i = 0; i < n; i++) {
      await settle();
      held.shift()!();
    }
    await settle();
  };
  return { tokens, asked, held, running, finish };
}

describe('the token health sweep, its report (modelled vault and TokenService)', () => {
  it("checks only this client's grants, classifies each, and sorts every list (expiring soonest first, then by user)", async () => {
    const { vault, statuses } = walkedVault([
      stored('other-client', { clientId: 'another.apps.googleusercontent.com' }),
      stored('c-revoked', { status: 'revoked' }),
      stored('b-expired-now', { refreshTokenExpiresAt: T0 }),
      // Past its expiry but holding no refresh token: nothing to mark, TokenService decides.
      stored('a-no-refresh-token', { refreshTokenExpiresAt: T0 - 1, refreshTokenCiphertext: null }),
      stored('z-gone'),
      stored('y-dead'),
      stored('x-away'),
      stored('w-away'),
      stored('p-late', { refreshTokenExpiresAt: T0 + 2_000 }),
      stored('q-soon', { refreshTokenExpiresAt: T0 + 1_000 }),
      stored('s-tie', { refreshTokenExpiresAt: T0 + 1_500 }),
      stored('r-tie', { refreshTokenExpiresAt: T0 + 1_500 }),
      stored('m-tie', { refreshTokenExpiresAt: T0 + 1_800 }),
      stored('n-tie', { refreshTokenExpiresAt: T0 + 1_800 }),
      stored('refreshed'),
    ]);
    const away = () => new BehalfError('GOOGLE_UNAVAILABLE', 'Google is away.', { reason: 'server_error' });
    const { tokens, asked } = answeringTokens({
      'a-no-refresh-token': new BehalfError('NEEDS_CONSENT', 'No refresh token.', {
        reason: 'no_refresh_token',
      }),
      'z-gone': new BehalfError('USER_NOT_FOUND', 'No grant.'),
      'y-dead': new BehalfError('NEEDS_CONSENT', 'Dead.', { reason: 'invalid_grant' }),
      'x-away': away(),
      'w-away': away(),
      refreshed: T0 + 3_599_000,
    });
    const report = await sweepGrants({ vault, tokens, clock, clientId: CLIENT_ID });
    expect(report).toEqual({
      checked: 14,
      refreshed: 1,
      healthy: 7,
      needsConsent: ['a-no-refresh-token', 'b-expired-now', 'c-revoked', 'y-dead', 'z-gone'],
      unavailable: ['w-away', 'x-away'],
      expiring: [
        { sub: 'q-soon', refreshTokenExpiresAt: T0 + 1_000 },
        { sub: 'r-tie', refreshTokenExpiresAt: T0 + 1_500 },
        { sub: 's-tie', refreshTokenExpiresAt: T0 + 1_500 },
        { sub: 'm-tie', refreshTokenExpiresAt: T0 + 1_800 },
        { sub: 'n-tie', refreshTokenExpiresAt: T0 + 1_800 },
        { sub: 'p-late', refreshTokenExpiresAt: T0 + 2_000 },
      ],
      startedAt: T0,
      finishedAt: T0,
    });
    // Marked without asking Google: only the grant past its expiry.
    expect(statuses).toEqual([['b-expired-now', 'needs_consent', 'grant_expired']]);
    expect(asked.map((a) => a.sub)).toEqual([
      'a-no-refresh-token',
      'z-gone',
      'y-dead',
      'x-away',
      'w-away',
      'p-late',
      'q-soon',
      's-tie',
      'r-tie',
      'm-tie',
      'n-tie',
      'refreshed',
    ]);
  });

  it('checks four grants at once by default', async () => {
    const { vault } = walkedVault(Array.from({ length: 10 }, (_, i) => stored(`user-${i}`)));
    const { tokens, running, finish } = answeringTokens({}, { held: true });
    const sweep = sweepGrants({ vault, tokens, clock, clientId: CLIENT_ID });
    await finish(10);
    expect((await sweep).healthy).toBe(10);
    expect(running.most).toBe(4);
  });

  it('reads no further ahead than 500 queued checks, and resumes once fewer than 250 are left', async () => {
    const { vault, walk } = walkedVault(Array.from({ length: 600 }, (_, i) => stored(`user-${i}`)));
    const { tokens, finish, asked } = answeringTokens({}, { held: true });
    const sweep = sweepGrants({ vault, tokens, clock, clientId: CLIENT_ID, concurrency: 1 });
    await settle();
    // One check running, 500 queued: the 502nd grant read waits.
    expect(walk.read).toBe(502);
    await finish(250);
    expect(walk.read).toBe(502);
    await finish(1);
    expect(walk.read).toBe(600);
    await finish(600 - 251);
    const report = await sweep;
    expect([report.checked, report.healthy, asked.length]).toEqual([600, 600, 600]);
  });

  it('stopped while its reading waits for the queue: the report counts exactly the checks that ran', async () => {
    const { vault, walk } = walkedVault(Array.from({ length: 600 }, (_, i) => stored(`user-${i}`)));
    const { tokens, finish, asked } = answeringTokens({}, { held: true });
    const controller = new AbortController();
    const sweep = sweepGrants({
      vault,
      tokens,
      clock,
      clientId: CLIENT_ID,
      concurrency: 1,
      signal: controller.signal,
    });
    await settle();
    expect(walk.read).toBe(502);
    controller.abort();
    // Fewer than 250 queued after 251 have finished: the walk goes on, sees the stop, drops the queue.
    await finish(252);
    const report = await sweep;
    expect(asked).toHaveLength(252);
    expect([report.checked, report.healthy]).toEqual([252, 252]);
  });

  it('a forced sweep asks for a refresh of every grant', async () => {
    const { vault } = walkedVault([stored('one'), stored('two')]);
    const { tokens, asked } = answeringTokens();
    expect((await sweepGrants({ vault, tokens, clock, clientId: CLIENT_ID, force: true })).checked).toBe(2);
    expect(asked).toEqual([
      { sub: 'one', forceRefresh: true },
      { sub: 'two', forceRefresh: true },
    ]);
  });
});

describe('the start-up warning about grants that expire within 7 days', () => {
  const run = async (count: number) => {
    const asked: Array<[string, number]> = [];
    const warnings: Array<{ fields: Record<string, unknown>; message: string }> = [];
    const answer = await warnAboutExpiringGrants({
      store: {
        countExpiringGrants: async (clientId: string, before: number) => {
          asked.push([clientId, before]);
          return count;
        },
      },
      clientId: CLIENT_ID,
      clock,
      logger: { warn: (fields, message) => warnings.push({ fields, message }) },
    });
    return { answer, asked, warnings };
  };

  it('says how many, once, when some do', async () => {
    const { answer, asked, warnings } = await run(3);
    expect(answer).toBe(3);
    expect(asked).toEqual([[CLIENT_ID, T0 + 7 * 86_400_000]]);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]!.fields).toEqual({ grants: 3, within_days: 7 });
    expect(warnings[0]!.message).toMatch(/^3 grant\(s\) have a refresh token .*"Testing" publishing status/);
  });

  it('says nothing when none do', async () => {
    const { answer, warnings } = await run(0);
    expect(answer).toBe(0);
    expect(warnings).toEqual([]);
  });
});
