import { performance } from 'node:perf_hooks';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { BehalfError } from '../../src/errors.js';
import { gate, settle, tokenModel, watch } from './token-model.js';

/**
 * Issue 16: the lease's renewals and the waiters' looks run on real time (timers and
 * performance.now()); here both are faked, so every bound is checked to the millisecond without
 * waiting. setImmediate stays real: settle() lets everything queued run.
 */
let perf = 0;
beforeEach(() => {
  perf = 0;
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval'] });
  vi.spyOn(performance, 'now').mockImplementation(() => perf);
});
afterEach(() => {
  vi.useRealTimers();
  vi.restoreAllMocks();
});

const advance = async (ms: number) => {
  await vi.advanceTimersByTimeAsync(ms);
  await settle();
};
const unavailable = () =>
  new BehalfError('GOOGLE_UNAVAILABLE', 'Google is away.', { reason: 'server_error' });

describe('the refresh lease while Google answers', () => {
  it('is renewed every third of its length while the refresh runs, and no more once it is done', async () => {
    const m = tokenModel({ leaseMs: 3000 });
    const sub = m.user('renewed', { accessTokenExpiresAt: m.clock.now() - 1 });
    const google = gate();
    m.google.script.push(() => google.promise);
    const token = m.tokens.getAccessToken(sub);
    await settle();
    await advance(999);
    expect(m.count('renew', sub)).toBe(0);
    await advance(1);
    expect(m.count('renew', sub)).toBe(1);
    google.open();
    expect((await token).token).toBe('ya29.fresh-1');
    await advance(10_000);
    expect(m.count('renew', sub)).toBe(1);
  });

  it('a renewal that finds the lease taken over stops the retries: Google is not asked again, nothing is recorded, the other process answers', async () => {
    const backoff = gate();
    const m = tokenModel({ leaseMs: 3000, sleep: () => backoff.promise });
    const sub = m.user('taken-over', { accessTokenExpiresAt: m.clock.now() - 1 });
    m.google.script.push(() => {
      throw unavailable();
    });
    const token = watch(m.tokens.getAccessToken(sub));
    await settle();
    m.leases.set(sub, 'another process');
    await advance(1000);
    backoff.open();
    await settle();
    expect(m.google.refreshed).toHaveLength(1);
    expect(m.records).toEqual([]);
    expect(token.done).toBe(false);
    m.otherStores(sub, 'ya29.from-the-other-process');
    await settle();
    expect(token.value?.token).toBe('ya29.from-the-other-process');
    expect(m.count('renew', sub)).toBe(1);
  });

  it('a renewal that succeeds keeps the refresh going: the retry goes to Google under the same lease', async () => {
    const backoff = gate();
    const m = tokenModel({ leaseMs: 3000, sleep: () => backoff.promise });
    const sub = m.user('kept', { accessTokenExpiresAt: m.clock.now() - 1 });
    m.google.script.push(() => {
      throw unavailable();
    });
    const token = watch(m.tokens.getAccessToken(sub));
    await settle();
    await advance(1000);
    backoff.open();
    await settle();
    expect(token.value?.token).toBe('ya29.fresh-2');
    expect([m.count('take', sub), m.count('renew', sub)]).toEqual([1, 1]);
  });

  it('confirms the lease before calling Google once a third of it has passed since it was last confirmed, not before', async () => {
    const m = tokenModel({
      leaseMs: 3000,
      sleep: async () => {
        perf = 1500; // half a third after the confirmation below
      },
    });
    const sub = m.user('confirmed', { accessTokenExpiresAt: m.clock.now() - 1 });
    // The read under the lease ends exactly a third of the lease after it was taken.
    m.hooks.read = (_s, n) => {
      if (n === 2) perf = 1000;
    };
    let renewedBeforeGoogle = 0;
    m.google.script.push(() => {
      renewedBeforeGoogle = m.count('renew', sub);
      throw unavailable();
    });
    expect((await m.tokens.getAccessToken(sub)).token).toBe('ya29.fresh-2');
    expect(renewedBeforeGoogle).toBe(1);
    expect(m.calls).toEqual([`read ${sub}`, `take ${sub}`, `read ${sub}`, `renew ${sub}`, `save ${sub}`]);
  });

  it('a lease lost while Google answered, and the grant then changing at each save: a retryable lease_lost', async () => {
    const m = tokenModel({ leaseMs: 3000 });
    const sub = m.user('lost', { accessTokenExpiresAt: m.clock.now() - 1 });
    const google = gate();
    m.google.script.push(() => google.promise);
    m.hooks.save = (s) => {
      m.rows.get(s)!.version++;
    };
    const token = watch(m.tokens.getAccessToken(sub));
    await settle();
    m.leases.set(sub, 'another process');
    await advance(1000);
    google.open();
    await settle();
    expect(token.error).toMatchObject({ code: 'GOOGLE_UNAVAILABLE', reason: 'lease_lost', retryAfter: 1 });
    expect((token.error as Error).message).toMatch(/lease was lost/);
  });

  it('two processes never hold one lease: the second waits for the first one’s token', async () => {
    const m = tokenModel();
    const sub = m.user('two', { accessTokenExpiresAt: m.clock.now() - 1 });
    const google = gate();
    m.google.script.push(() => google.promise);
    const first = m.tokens.getAccessToken(sub);
    await settle();
    const other = m.service();
    const second = watch(other.getAccessToken(sub));
    await settle();
    expect(m.google.refreshed).toHaveLength(1);
    google.open();
    expect((await first).token).toBe('ya29.fresh-1');
    m.changed(sub);
    await settle();
    expect(second.value?.token).toBe('ya29.fresh-1');
    expect(m.google.refreshed).toHaveLength(1);
  });
});

describe('waiting for another process’s refresh', () => {
  it('looks again after leasePollMs × (0.5 + random()), twice as long each time, up to a quarter of the lease', async () => {
    const m = tokenModel({ leasePollMs: 100, leaseMs: 4000, random: () => 0.25 });
    const sub = m.user('polling', { accessTokenExpiresAt: m.clock.now() - 1 });
    m.leases.set(sub, 'another process');
    const token = watch(m.tokens.getAccessToken(sub));
    await settle();
    expect(m.count('take', sub)).toBe(1);
    for (const [i, pause] of [75, 150, 300, 600, 750, 750].entries()) {
      await advance(pause - 1);
      expect(m.count('take', sub)).toBe(i + 1);
      await advance(1);
      expect(m.count('take', sub)).toBe(i + 2);
    }
    m.otherStores(sub, 'ya29.other');
    await settle();
    expect(token.value?.token).toBe('ya29.other');
  });

  it('gives up with a retryable error that says why once the holder had its deadline and a lease', async () => {
    const m = tokenModel({ leasePollMs: 100, leaseMs: 1000, retry: { deadlineMs: 2000 } });
    const sub = m.user('given-up', { accessTokenExpiresAt: m.clock.now() - 1 });
    m.leases.set(sub, 'another process');
    const token = watch(m.tokens.getAccessToken(sub));
    await settle();
    m.clock.advance(3001);
    await advance(1000);
    expect(token.error).toMatchObject({
      code: 'GOOGLE_UNAVAILABLE',
      reason: 'refresh_in_progress',
      retryAfter: 1,
    });
    expect((token.error as Error).message).toMatch(/taking too long elsewhere/);
  });

  it('every waiter on a user is woken by the change, however their waits began and ended', async () => {
    const m = tokenModel({ leasePollMs: 100, leaseMs: 60_000, random: () => 0.5 });
    const sub = m.user('waiters', { accessTokenExpiresAt: m.clock.now() - 1 });
    m.leases.set(sub, 'another process');
    const first = watch(m.tokens.getAccessToken(sub));
    await settle();
    // A change that brings no token: the first load (now not joined by anyone) looks, and waits 200 ms.
    m.changed(sub);
    await settle();
    // A second load waits beside it, 100 ms, then looks and waits again.
    const second = watch(m.tokens.getAccessToken(sub));
    await settle();
    await advance(100);
    expect(m.count('take', sub)).toBe(4);
    m.otherStores(sub, 'ya29.other');
    await settle();
    expect([first.value?.token, second.value?.token]).toEqual(['ya29.other', 'ya29.other']);
  });

  it('a waiter woken by a change looks at once, not behind the other waiters’ looks', async () => {
    const m = tokenModel({ leasePollMs: 100, leaseMs: 60_000, random: () => 0.5 });
    const subs = ['slow-a', 'slow-b', 'woken'].map((s) =>
      m.user(s, { accessTokenExpiresAt: m.clock.now() - 1 }),
    );
    for (const s of subs) m.leases.set(s, 'another process');
    const stuck = gate();
    m.hooks.read = (s, n) => (s !== 'woken' && n === 2 ? stuck.promise : undefined);
    const slow = subs.slice(0, 2).map((s) => watch(m.tokens.getAccessToken(s)));
    await settle();
    await advance(100); // both slow looks are now in flight, and stay so
    const woken = watch(m.tokens.getAccessToken('woken'));
    await settle();
    m.otherStores('woken', 'ya29.other');
    await settle();
    expect(woken.value?.token).toBe('ya29.other');
    expect(slow.map((s) => s.done)).toEqual([false, false]);
    stuck.open();
    for (const s of subs.slice(0, 2)) m.otherStores(s, 'ya29.other');
    await advance(1000);
    expect(slow.map((s) => s.value?.token)).toEqual(['ya29.other', 'ya29.other']);
  });
});
