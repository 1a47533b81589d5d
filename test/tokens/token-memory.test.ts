import { describe, expect, it } from 'vitest';
import { BehalfError } from '../../src/errors.js';
import { errorOf } from '../support/errors.js';
import { gate, settle, tokenModel } from './token-model.js';

/** Issue 16: what TokenService keeps in memory, and how changes to a grant reach it. */
describe('TokenService memory (modelled store)', () => {
  it('counts calls answered from memory and the others', async () => {
    const m = tokenModel();
    const sub = m.user('stats');
    expect(m.tokens.cacheStats).toEqual({ hits: 0, misses: 0 });
    await m.tokens.getAccessToken(sub);
    await m.tokens.getAccessToken(sub);
    await m.tokens.getAccessToken(sub);
    await m.tokens.getAccessToken(sub, { forceRefresh: true });
    expect(m.tokens.cacheStats).toEqual({ hits: 2, misses: 2 });
    expect(m.count('read', sub)).toBe(3);
  });

  it('remembered tokens share one frozen scope list per set of scopes, up to 1,000 sets', async () => {
    const m = tokenModel();
    const drive = ['openid', 'https://www.googleapis.com/auth/drive.appdata'];
    const a = await m.tokens.getAccessToken(m.user('scopes-a', { scopes: [...drive] }));
    const b = await m.tokens.getAccessToken(m.user('scopes-b', { scopes: [...drive] }));
    const c = await m.tokens.getAccessToken(m.user('scopes-c', { scopes: ['openid'] }));
    expect(a.scopes).toEqual(drive);
    expect(b.scopes).toBe(a.scopes);
    expect(Object.isFrozen(a.scopes)).toBe(true);
    expect(c.scopes).toEqual(['openid']);
    expect(c.scopes).not.toBe(a.scopes);
    // From memory, the same list again.
    expect((await m.tokens.getAccessToken('scopes-b')).scopes).toBe(a.scopes);
    // Past 1,000 distinct lists (two above), a token keeps a frozen list of its own.
    for (let i = 0; i < 998; i++) await m.tokens.getAccessToken(m.user(`many-${i}`, { scopes: [`s${i}`] }));
    const own1 = await m.tokens.getAccessToken(m.user('own-1', { scopes: ['rare'] }));
    const own2 = await m.tokens.getAccessToken(m.user('own-2', { scopes: ['rare'] }));
    expect(own1.scopes).toEqual(['rare']);
    expect(Object.isFrozen(own1.scopes)).toBe(true);
    expect(own2.scopes).not.toBe(own1.scopes);
    expect((await m.tokens.getAccessToken(m.user('known', { scopes: [...drive] }))).scopes).toBe(a.scopes);
  });

  it('does not answer from memory while changes may be going unheard: every call reads the store', async () => {
    const m = tokenModel();
    const sub = m.user('not-current');
    m.state.current = false;
    for (let i = 0; i < 3; i++)
      expect((await m.tokens.getAccessToken(sub)).token).toBe('ya29.stored-not-current');
    expect(m.count('read', sub)).toBe(3);
    expect(m.tokens.cacheStats).toEqual({ hits: 0, misses: 3 });
  });

  it('a caller reporting an older token than the one remembered is answered from memory', async () => {
    const m = tokenModel();
    const sub = m.user('older');
    await m.tokens.getAccessToken(sub);
    const token = await m.tokens.getAccessToken(sub, { rejected: 'ya29.some-older-token' });
    expect(token.token).toBe('ya29.stored-older');
    expect(m.count('read', sub)).toBe(1);
    expect(m.google.refreshed).toEqual([]);
  });

  it('a token reported refused leaves memory even when no new one could be had: the next caller reads the store', async () => {
    const m = tokenModel({ retry: { deadlineMs: 1 } });
    const sub = m.user('refused');
    await m.tokens.getAccessToken(sub);
    m.google.script.push(() => {
      throw new BehalfError('GOOGLE_UNAVAILABLE', 'Google is away.', { reason: 'server_error' });
    });
    expect(await errorOf(m.tokens.getAccessToken(sub, { rejected: 'ya29.stored-refused' }))).toMatchObject({
      code: 'GOOGLE_UNAVAILABLE',
    });
    await m.tokens.getAccessToken(sub);
    expect(m.count('read', sub)).toBe(4); // the first load, the refused one (twice: before and under the lease), this one
  });

  it('a change to the grant drops the user from memory, and a load read before it is not remembered', async () => {
    const m = tokenModel();
    const sub = m.user('changed');
    const slowRead = gate();
    m.hooks.read = (_sub, n) => (n === 1 ? slowRead.promise : undefined);
    const before = m.tokens.getAccessToken(sub);
    await settle();
    // Another process stores a new token: the change is announced while the first read is out.
    m.rows.get(sub)!.accessToken = 'ya29.after-the-change';
    m.changed(sub);
    // A caller from now on does not join the load that read before the change.
    expect((await m.tokens.getAccessToken(sub)).token).toBe('ya29.after-the-change');
    slowRead.open();
    expect((await before).token).toBe('ya29.stored-changed');
    // What the old load read is not remembered over the newer token.
    expect((await m.tokens.getAccessToken(sub)).token).toBe('ya29.after-the-change');
    expect(m.count('read', sub)).toBe(2);

    m.rows.get(sub)!.accessToken = 'ya29.third';
    m.changed(sub);
    expect((await m.tokens.getAccessToken(sub)).token).toBe('ya29.third');
  });

  it('a reset (changes may have been missed) forgets every user and every load in flight', async () => {
    const m = tokenModel();
    const [a, b] = [m.user('reset-a'), m.user('reset-b')];
    await m.tokens.getAccessToken(a);
    const slowRead = gate();
    m.hooks.read = (sub, n) => (sub === b && n === 1 ? slowRead.promise : undefined);
    const before = m.tokens.getAccessToken(b);
    await settle();
    m.rows.get(a)!.accessToken = 'ya29.new-a';
    m.rows.get(b)!.accessToken = 'ya29.new-b';
    m.reset();
    expect((await m.tokens.getAccessToken(a)).token).toBe('ya29.new-a');
    expect((await m.tokens.getAccessToken(b)).token).toBe('ya29.new-b');
    slowRead.open();
    expect((await before).token).toBe('ya29.stored-reset-b');
    expect((await m.tokens.getAccessToken(b)).token).toBe('ya29.new-b');
    expect(m.count('read', b)).toBe(2);
  });

  it('close() stops listening for changes and forgets what it remembered', async () => {
    const m = tokenModel();
    const sub = m.user('closed');
    await m.tokens.getAccessToken(sub);
    m.tokens.close();
    expect(m.state.unsubscribed).toBe(1);
    await m.tokens.getAccessToken(sub);
    expect(m.count('read', sub)).toBe(2);
  });

  it('over memoryCacheSize, forgets the oldest 1% at once (two of 200)', async () => {
    const m = tokenModel({ memoryCacheSize: 200 });
    const subs = Array.from({ length: 201 }, (_, i) => m.user(`user-${i}`));
    for (const sub of subs) await m.tokens.getAccessToken(sub);
    for (const sub of subs.slice(2)) await m.tokens.getAccessToken(sub);
    expect(m.calls.filter((c) => c.startsWith('read'))).toHaveLength(201);
    await m.tokens.getAccessToken('user-1');
    await m.tokens.getAccessToken('user-0');
    expect(m.calls.filter((c) => c.startsWith('read')).slice(201)).toEqual(['read user-1', 'read user-0']);
  });

  it.each([
    ['a caller who saw no refusal joins a load refusing a token', { rejected: 'ya29.stored-u' }, {}],
    [
      'a caller refusing the same token joins a load refusing it',
      { rejected: 'ya29.stored-u' },
      { rejected: 'ya29.stored-u' },
    ],
    [
      'a caller refusing a token joins a forced refresh',
      { forceRefresh: true },
      { rejected: 'ya29.stored-u' },
    ],
  ])(
    '%s: one load, two store reads (before and under the lease), one refresh',
    async (_case, first, second) => {
      const m = tokenModel();
      const sub = m.user('u');
      const google = gate();
      m.google.script.push(() => google.promise);
      const running = m.tokens.getAccessToken(sub, first);
      await settle();
      expect(m.google.refreshed).toHaveLength(1);
      const joining = m.tokens.getAccessToken(sub, second);
      google.open();
      expect([(await running).token, (await joining).token]).toEqual(['ya29.fresh-1', 'ya29.fresh-1']);
      expect(m.count('read', sub)).toBe(2);
      expect(m.google.refreshed).toHaveLength(1);
    },
  );

  it('a caller reporting the remembered token while a forced refresh runs joins it: one more refresh, not two', async () => {
    // No lease at all: only the in-process loads keep the callers to one refresh.
    const m = tokenModel({ alwaysGrant: true });
    const sub = m.user('joins', { accessTokenExpiresAt: m.clock.now() - 1 });
    const first = gate();
    m.google.script.push(() => first.promise);
    const forcedGoogle = gate();
    m.google.script.push(() => forcedGoogle.promise);
    const unaware = m.tokens.getAccessToken(sub);
    await settle();
    expect(m.google.refreshed).toHaveLength(1);
    const forced = m.tokens.getAccessToken(sub, { forceRefresh: true });
    first.open();
    expect((await unaware).token).toBe('ya29.fresh-1');
    await settle();
    expect(m.google.refreshed).toHaveLength(2);
    // Reported refused while the forced refresh is at Google: it answers this caller too.
    const reporter = m.tokens.getAccessToken(sub, { rejected: 'ya29.fresh-1' });
    forcedGoogle.open();
    expect([(await forced).token, (await reporter).token]).toEqual(['ya29.fresh-2', 'ya29.fresh-2']);
    expect(m.google.refreshed).toHaveLength(2);
  });
});

describe('TokenService refusals and answers (modelled store)', () => {
  it('USER_NOT_FOUND for a user without a grant, saying why', async () => {
    const m = tokenModel();
    const error = await errorOf(m.tokens.getAccessToken('nobody'));
    expect(error.code).toBe('USER_NOT_FOUND');
    expect(error.message).toMatch(/not signed in with a server auth code/);
  });

  it('an active grant without a refresh token: NEEDS_CONSENT (no_refresh_token), no lease taken, Google not asked', async () => {
    const m = tokenModel();
    const sub = m.user('online', { refreshToken: null, accessTokenExpiresAt: m.clock.now() - 1 });
    expect(await errorOf(m.tokens.getAccessToken(sub))).toMatchObject({
      code: 'NEEDS_CONSENT',
      reason: 'no_refresh_token',
    });
    expect(m.calls).toEqual([`read ${sub}`]);
    expect(m.google.refreshed).toEqual([]);
  });

  it('a refresh token gone by the time the lease is taken: NEEDS_CONSENT (no_refresh_token), Google not asked, lease given back', async () => {
    const m = tokenModel();
    const sub = m.user('gone', { accessTokenExpiresAt: m.clock.now() - 1 });
    m.hooks.read = (s, n) => {
      if (n === 1) m.rows.get(s)!.refreshToken = null;
    };
    expect(await errorOf(m.tokens.getAccessToken(sub))).toMatchObject({
      code: 'NEEDS_CONSENT',
      reason: 'no_refresh_token',
    });
    expect(m.google.refreshed).toEqual([]);
    expect(m.leases.size).toBe(0);
  });

  it('a refresh token is dead from the instant of the expiry Google gave: grant_expired, marked needs_consent, Google not asked', async () => {
    const m = tokenModel();
    const now = m.clock.now();
    const expired = m.user('expired', { accessTokenExpiresAt: now - 1, refreshTokenExpiresAt: now });
    const alive = m.user('alive', { accessTokenExpiresAt: now - 1, refreshTokenExpiresAt: now + 1 });
    const error = await errorOf(m.tokens.getAccessToken(expired));
    expect(error).toMatchObject({ code: 'NEEDS_CONSENT', reason: 'grant_expired' });
    expect(error.message).toMatch(/grant expired/);
    expect(m.statuses).toEqual([{ sub: expired, status: 'needs_consent', reason: 'grant_expired' }]);
    expect((await m.tokens.getAccessToken(alive)).token).toBe('ya29.fresh-1');
    expect(m.google.refreshed).toEqual(['1//refresh-alive']);
  });

  it('keeps the scopes Google reports with a refreshed token, and the grant’s when it reports none', async () => {
    const m = tokenModel();
    const now = m.clock.now();
    const more = m.user('more', { accessTokenExpiresAt: now - 1 });
    const none = m.user('none', { accessTokenExpiresAt: now - 1, scopes: ['openid', 'email'] });
    m.google.scopes = ['openid', 'https://www.googleapis.com/auth/drive.file'];
    expect((await m.tokens.getAccessToken(more)).scopes).toEqual(m.google.scopes);
    expect(m.rows.get(more)!.scopes).toEqual(m.google.scopes);
    m.google.scopes = [];
    expect((await m.tokens.getAccessToken(none)).scopes).toEqual(['openid', 'email']);
    expect(m.rows.get(none)!.scopes).toEqual(['openid', 'email']);
  });

  it("records an error that is not behalf's as an INTERNAL refresh outcome", async () => {
    const m = tokenModel();
    const sub = m.user('internal', { accessTokenExpiresAt: m.clock.now() - 1 });
    const failure = new TypeError('fetch failed');
    m.google.script.push(() => {
      throw failure;
    });
    await expect(m.tokens.getAccessToken(sub)).rejects.toBe(failure);
    expect(m.records).toEqual([{ sub, outcome: 'INTERNAL', reason: null }]);
  });

  it('stores the token and gives the lease back in one write: no separate release', async () => {
    const m = tokenModel();
    const sub = m.user('one-write', { accessTokenExpiresAt: m.clock.now() - 1 });
    expect((await m.tokens.getAccessToken(sub)).token).toBe('ya29.fresh-1');
    expect(m.calls).toEqual([`read ${sub}`, `take ${sub}`, `read ${sub}`, `save ${sub}`]);
    expect(m.leases.size).toBe(0);
  });
});

/** The grant changes while Google answers a refresh: the compare-and-set on its version fails. */
describe('TokenService, a grant changed during a refresh (modelled store)', () => {
  const due = (m: ReturnType<typeof tokenModel>, sub: string) =>
    m.user(sub, { accessTokenExpiresAt: m.clock.now() - 1 });

  it('another write to the same grant: stored on the new version', async () => {
    const m = tokenModel();
    const sub = due(m, 'rewritten');
    m.hooks.save = (s, n) => {
      if (n === 1) m.rows.get(s)!.version++;
    };
    expect((await m.tokens.getAccessToken(sub)).token).toBe('ya29.fresh-1');
    expect(m.rows.get(sub)!.accessToken).toBe('ya29.fresh-1');
    expect(m.count('save', sub)).toBe(2);
    expect(m.google.revoked).toEqual([]);
  });

  it('a grant that keeps changing: three tries, then a retryable refresh_raced', async () => {
    const m = tokenModel();
    const sub = due(m, 'churning');
    m.hooks.save = (s) => {
      m.rows.get(s)!.version++;
    };
    const error = await errorOf(m.tokens.getAccessToken(sub));
    expect(error).toMatchObject({ code: 'GOOGLE_UNAVAILABLE', reason: 'refresh_raced', retryAfter: 1 });
    expect(error.message).toMatch(/kept changing/);
    expect(m.count('save', sub)).toBe(3);
    expect(m.rows.get(sub)!.accessToken).toBe('ya29.stored-churning');
  });

  it('revoked meanwhile: NEEDS_CONSENT (revoked), the new token revoked at Google and not stored', async () => {
    const m = tokenModel();
    const sub = due(m, 'revoked');
    m.hooks.save = (s) => {
      m.rows.get(s)!.status = 'revoked';
    };
    expect(await errorOf(m.tokens.getAccessToken(sub))).toMatchObject({
      code: 'NEEDS_CONSENT',
      reason: 'revoked',
    });
    expect(m.google.revoked).toEqual(['ya29.fresh-1']);
    expect(m.count('save', sub)).toBe(1);
  });

  it('its refresh token erased meanwhile: NEEDS_CONSENT (no_refresh_token), the new token revoked at Google', async () => {
    const m = tokenModel();
    const sub = due(m, 'erased');
    m.hooks.save = (s) => {
      const row = m.rows.get(s)!;
      row.refreshToken = null;
      row.version++;
    };
    expect(await errorOf(m.tokens.getAccessToken(sub))).toMatchObject({
      code: 'NEEDS_CONSENT',
      reason: 'no_refresh_token',
    });
    expect(m.google.revoked).toEqual(['ya29.fresh-1']);
  });

  it("replaced by a new sign-in: its fresh token is the answer, ours is neither stored nor revoked (that would revoke the user's new grant)", async () => {
    const m = tokenModel();
    const sub = due(m, 'signed-in-again');
    m.hooks.save = (s) => {
      Object.assign(m.rows.get(s)!, {
        refreshToken: '1//new-sign-in',
        accessToken: 'ya29.new-sign-in',
        accessTokenExpiresAt: m.clock.now() + 3_600_000,
        version: 7,
      });
    };
    expect((await m.tokens.getAccessToken(sub)).token).toBe('ya29.new-sign-in');
    expect(m.count('save', sub)).toBe(1);
    expect(m.google.revoked).toEqual([]);
  });

  it('replaced by a new sign-in whose token is already due: a retryable refresh_raced', async () => {
    const m = tokenModel();
    const sub = due(m, 'raced');
    m.hooks.save = (s) => {
      Object.assign(m.rows.get(s)!, { refreshToken: '1//new-sign-in', version: 7 });
    };
    const error = await errorOf(m.tokens.getAccessToken(sub));
    expect(error).toMatchObject({ code: 'GOOGLE_UNAVAILABLE', reason: 'refresh_raced', retryAfter: 1 });
    expect(error.message).toMatch(/signed in again/);
    expect(m.google.revoked).toEqual([]);
  });
});
