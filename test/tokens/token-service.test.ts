import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { OffsetClock } from '../../src/clock.js';
import { BehalfError } from '../../src/errors.js';
import { errorOf } from '../support/errors.js';
import type { GoogleOAuthClient, TokenSet } from '../../src/google/oauth.js';
import { TokenService, type TokenServiceOptions } from '../../src/tokens/index.js';
import {
  openSqliteStore,
  parseKeyring,
  Vault,
  type Grant,
  type SqliteStore,
  type Store,
} from '../../src/vault/index.js';
import { profile } from '../vault/store-contract.js';
import { withAccessGrant } from '../support/vault-fakes.js';

const CLIENT_ID = 'server.apps.googleusercontent.com';

/** A vault whose every user has a fresh stored access token, counting the reads. */
function storedTokens(clock: OffsetClock) {
  const reads: string[] = [];
  const vault = withAccessGrant({
    // One process, nothing else writing: memory is always current.
    changes: {
      subscribe: () => () => undefined,
      isCurrent: () => true,
      publish: () => undefined,
      close: async () => undefined,
    },
    getGrant: async (sub: string, clientId: string): Promise<Grant> => {
      reads.push(sub);
      const now = clock.now();
      return {
        sub,
        clientId,
        refreshToken: `1//refresh-${sub}`,
        accessToken: `ya29.stored-${sub}`,
        accessTokenExpiresAt: now + 3_600_000,
        scopes: ['openid'],
        status: 'active',
        version: 1,
        refreshTokenIssuedAt: now,
        refreshTokenExpiresAt: null,
        createdAt: now,
        updatedAt: now,
      };
    },
  }) as unknown as Vault;
  const oauth = { clientId: CLIENT_ID } as GoogleOAuthClient;
  return { reads, vault, oauth };
}

describe('TokenService memory', () => {
  it('keeps at most memoryCacheSize users and forgets the oldest first', async () => {
    const clock = new OffsetClock();
    const { reads, vault, oauth } = storedTokens(clock);
    const tokens = new TokenService({ vault, oauth, clock, memoryCacheSize: 100 });
    const subs = Array.from({ length: 150 }, (_, i) => `user-${i}`);
    for (const sub of subs) expect((await tokens.getAccessToken(sub)).token).toBe(`ya29.stored-${sub}`);
    expect(reads).toHaveLength(150);

    // The newest 100 come from memory; the oldest 50 were forgotten and are read again.
    for (const sub of subs.slice(50)) await tokens.getAccessToken(sub);
    expect(reads).toHaveLength(150);
    await tokens.getAccessToken('user-0');
    await tokens.getAccessToken('user-49');
    expect(reads.slice(150)).toEqual(['user-0', 'user-49']);
  });
});

const T0 = 1_760_000_000_000;
const KEYRING = parseKeyring(`k1:${randomBytes(32).toString('base64')}`);

let dir: string;
let worlds = 0;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'behalf-token-service-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const unavailable = (retryAfter?: number) =>
  new BehalfError('GOOGLE_UNAVAILABLE', "Google's token endpoint is unavailable (HTTP 503); retry later.", {
    reason: 'server_error',
    ...(retryAfter === undefined ? {} : { retryAfter }),
  });

/** Resolves once `count` reaches `n` (checked each time `bump` is called): an event, not a poll. */
function counter() {
  let count = 0;
  const waiting: Array<{ n: number; resolve: () => void }> = [];
  return {
    get count() {
      return count;
    },
    bump() {
      count++;
      for (const w of waiting.filter((w) => count >= w.n)) {
        waiting.splice(waiting.indexOf(w), 1);
        w.resolve();
      }
    },
    reached(n: number): Promise<void> {
      return count >= n ? Promise.resolve() : new Promise((resolve) => waiting.push({ n, resolve }));
    },
  };
}

/**
 * Google's token endpoint for refreshes, scripted: each call takes the next entry (an error to
 * throw, or a promise to wait for before answering); with none left it answers a new token.
 */
function scriptedGoogle() {
  const refreshed: string[] = [];
  const script: Array<Error | Promise<void>> = [];
  const calls = counter();
  const oauth = {
    clientId: CLIENT_ID,
    refreshAccessToken: async (refreshToken: string): Promise<TokenSet> => {
      refreshed.push(refreshToken);
      const n = refreshed.length;
      calls.bump();
      const next = script.shift();
      if (next instanceof Error) throw next;
      if (next !== undefined) await next;
      return {
        accessToken: `ya29.fresh-${n}`,
        expiresIn: 3599,
        refreshToken: undefined,
        scopes: ['openid'],
        idToken: undefined,
        refreshTokenExpiresIn: undefined,
      };
    },
    revokeToken: async () => 'revoked' as const,
  } as unknown as GoogleOAuthClient;
  return { oauth, refreshed, script, calls };
}

/** The store, with its lease calls counted (and taking optionally always granted: no lease at all). */
function countingStore(store: SqliteStore, options: { alwaysGrant?: boolean | undefined } = {}) {
  const takes = counter();
  const refusedTakes = counter();
  const renewals = counter();
  const proxy = new Proxy(store, {
    get: (target, property) => {
      if (property === 'acquireRefreshLease') {
        return async (...args: Parameters<Store['acquireRefreshLease']>) => {
          const taken = options.alwaysGrant === true ? true : await target.acquireRefreshLease(...args);
          takes.bump();
          if (!taken) refusedTakes.bump();
          return taken;
        };
      }
      if (property === 'renewRefreshLease') {
        return async (...args: Parameters<Store['renewRefreshLease']>) => {
          const held = await target.renewRefreshLease(...args);
          renewals.bump();
          return held;
        };
      }
      const value = Reflect.get(target, property, target) as unknown;
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
  return { store: proxy as Store, takes, refusedTakes, renewals };
}

/**
 * A TokenService over a real SQLite vault in a temporary folder, with Google scripted, a clock
 * that moves only when told (or when an injected backoff sleep passes), and random() = 1 unless given.
 */
async function tokenWorld(options: Partial<TokenServiceOptions> & { alwaysGrant?: boolean } = {}) {
  const path = join(dir, `world-${++worlds}`, 'behalf.db');
  const sqlite = await openSqliteStore(path);
  const { alwaysGrant, ...serviceOptions } = options;
  const counted = countingStore(sqlite, { alwaysGrant });
  const vault = new Vault(counted.store, KEYRING);
  const clock = new OffsetClock({ now: () => T0 });
  const sleeps: number[] = [];
  const google = scriptedGoogle();
  const services: TokenService[] = [];
  const service = (more: Partial<TokenServiceOptions> = {}) => {
    const created = new TokenService({
      vault,
      oauth: google.oauth,
      clock,
      random: () => 1,
      sleep: async (ms) => {
        sleeps.push(ms);
        clock.advance(ms / 1000);
      },
      ...serviceOptions,
      ...more,
    });
    services.push(created);
    return created;
  };
  const tokens = service();
  return {
    path,
    sqlite,
    vault,
    clock,
    sleeps,
    google,
    tokens,
    /** Another TokenService on the same store: another process, as far as leases go. */
    service,
    ...counted,
    /** A user whose stored access token expires `expiresInMs` from now (due by default). */
    async signedIn(sub: string, expiresInMs = -1_000) {
      await vault.saveSignIn({
        user: profile(sub),
        clientId: CLIENT_ID,
        scopes: ['openid'],
        refreshToken: `1//0g-refresh-${sub}`,
        accessToken: `ya29.stored-${sub}`,
        accessTokenExpiresAt: clock.now() + expiresInMs,
        now: clock.now(),
      });
      return sub;
    },
    /** The lease rows of `sub`'s grant, read straight from the database. */
    leaseRows: (sub: string) =>
      sqlite.database.connection.prepare('SELECT holder FROM refresh_leases WHERE sub = ?').all(sub),
    grant: async (sub: string) => (await vault.getGrant(sub, CLIENT_ID))!,
    async close() {
      for (const s of services) s.close();
      await sqlite.close();
    },
  };
}
type TokenWorld = Awaited<ReturnType<typeof tokenWorld>>;

describe('TokenService retries at Google (injected clock and sleep)', () => {
  let w: TokenWorld;
  afterEach(async () => {
    await w.close();
  });

  it('retries transient errors after exponential backoff, capped at maxDelayMs, then stores the token', async () => {
    w = await tokenWorld({ retry: { baseDelayMs: 100, maxDelayMs: 300, deadlineMs: 60_000 } });
    const sub = await w.signedIn('backoff');
    w.google.script.push(unavailable(), unavailable(), unavailable(), unavailable());
    const token = await w.tokens.getAccessToken(sub);
    expect(w.sleeps).toEqual([100, 200, 300, 300]);
    expect(w.google.refreshed).toEqual(Array.from({ length: 5 }, () => '1//0g-refresh-backoff'));
    expect(token).toEqual({
      token: 'ya29.fresh-5',
      expiresAt: w.clock.now() + 3_599_000,
      scopes: ['openid'],
    });
    expect((await w.grant(sub)).accessToken).toBe('ya29.fresh-5');
  });

  it('full jitter: each wait is the backoff times random()', async () => {
    w = await tokenWorld({ retry: { baseDelayMs: 100, maxDelayMs: 10_000 }, random: () => 0.25 });
    const sub = await w.signedIn('jitter');
    w.google.script.push(unavailable(), unavailable());
    expect((await w.tokens.getAccessToken(sub)).token).toBe('ya29.fresh-3');
    expect(w.sleeps).toEqual([25, 50]);
  });

  it("waits as long as Google's Retry-After asks when that is longer than the backoff", async () => {
    w = await tokenWorld({ retry: { baseDelayMs: 100, maxDelayMs: 300 } });
    const sub = await w.signedIn('retry-after');
    w.google.script.push(unavailable(3), unavailable(0));
    expect((await w.tokens.getAccessToken(sub)).token).toBe('ya29.fresh-3');
    expect(w.sleeps).toEqual([3_000, 200]);
  });

  it('starts no retry that would end at or after the deadline: the caller gets the retryable error, the lease is given back, the grant stays usable', async () => {
    // Backoffs 100, 200, …: the first ends at 100 < 300, the second would end at exactly 300.
    w = await tokenWorld({ retry: { baseDelayMs: 100, maxDelayMs: 10_000, deadlineMs: 300 } });
    const sub = await w.signedIn('deadline');
    w.google.script.push(unavailable(), unavailable(), unavailable());
    const error = await errorOf(w.tokens.getAccessToken(sub));
    expect(error).toMatchObject({ code: 'GOOGLE_UNAVAILABLE', reason: 'server_error' });
    expect(w.google.refreshed).toHaveLength(2);
    expect(w.sleeps).toEqual([100]);
    expect(w.leaseRows(sub)).toEqual([]);
    expect((await w.grant(sub)).status).toBe('active');
    // Nothing of the failure is remembered: the next caller refreshes (the script's third error, then a token).
    expect((await w.tokens.getAccessToken(sub)).token).toBe('ya29.fresh-4');
    expect(w.google.refreshed).toHaveLength(4);
  });

  it('invalid_grant: NEEDS_CONSENT at once, the grant marked needs_consent, the lease given back; Google is not asked again', async () => {
    w = await tokenWorld();
    const sub = await w.signedIn('dead-grant');
    w.google.script.push(
      new BehalfError('NEEDS_CONSENT', 'Google no longer accepts this grant.', { reason: 'invalid_grant' }),
    );
    const error = await errorOf(w.tokens.getAccessToken(sub));
    expect(error).toMatchObject({ code: 'NEEDS_CONSENT', reason: 'invalid_grant' });
    expect(w.google.refreshed).toHaveLength(1);
    expect(w.sleeps).toEqual([]);
    expect((await w.grant(sub)).status).toBe('needs_consent');
    expect(w.leaseRows(sub)).toEqual([]);
    const later = await errorOf(w.tokens.getAccessToken(sub));
    expect(later).toMatchObject({ code: 'NEEDS_CONSENT', reason: 'needs_consent' });
    expect(w.google.refreshed).toHaveLength(1);
  });

  it.each([
    [
      'Google refuses the OAuth client',
      new BehalfError('CLIENT_MISCONFIGURED', 'Google rejected the client.', { reason: 'invalid_client' }),
    ],
    ["an error that is not behalf's", new TypeError('fetch failed')],
  ])('%s: not retried, the grant stays active, the lease is given back', async (_what, failure) => {
    w = await tokenWorld();
    const sub = await w.signedIn('not-transient');
    w.google.script.push(failure);
    await expect(w.tokens.getAccessToken(sub)).rejects.toBe(failure);
    expect(w.google.refreshed).toHaveLength(1);
    expect(w.sleeps).toEqual([]);
    expect((await w.grant(sub)).status).toBe('active');
    expect(w.leaseRows(sub)).toEqual([]);
  });
});

describe('TokenService and the stored token', () => {
  let w: TokenWorld;
  afterEach(async () => {
    await w.close();
  });

  it('uses the stored token while more than the refresh margin is left, refreshes from the margin on', async () => {
    w = await tokenWorld({ refreshMarginSeconds: 60 });
    const fresh = await w.signedIn('fresh', 60_001);
    const due = await w.signedIn('due', 60_000);
    expect((await w.tokens.getAccessToken(fresh)).token).toBe('ya29.stored-fresh');
    expect((await w.tokens.getAccessToken(due)).token).toBe('ya29.fresh-1');
    expect(w.google.refreshed).toEqual(['1//0g-refresh-due']);
    // A remembered token goes due the same way: one millisecond later, `fresh` is at the margin.
    w.clock.advance(0.001);
    expect((await w.tokens.getAccessToken(fresh)).token).toBe('ya29.fresh-2');
  });

  it('a token reported rejected is replaced once; a caller reporting an older token gets the current one', async () => {
    w = await tokenWorld();
    const sub = await w.signedIn('rejected', 3_600_000);
    expect((await w.tokens.getAccessToken(sub, { rejected: 'ya29.stored-rejected' })).token).toBe(
      'ya29.fresh-1',
    );
    expect((await w.tokens.getAccessToken(sub, { rejected: 'ya29.stored-rejected' })).token).toBe(
      'ya29.fresh-1',
    );
    expect(w.google.refreshed).toHaveLength(1);
    expect((await w.tokens.getAccessToken(sub, { forceRefresh: true })).token).toBe('ya29.fresh-2');
  });

  // Found under load on four instances over Postgres: a caller whose token Google refused joined a
  // load another caller had started a moment before (nothing in memory), which read the same
  // token from the store, and the caller's one retry got a second 401.
  it('a caller reporting a rejected token does not join a load that may hand that token back; one refresh', async () => {
    w = await tokenWorld();
    const sub = await w.signedIn('joined', 3_600_000);
    const [unaware, refused, alsoRefused, later] = await Promise.all([
      w.tokens.getAccessToken(sub),
      w.tokens.getAccessToken(sub, { rejected: 'ya29.stored-joined' }),
      w.tokens.getAccessToken(sub, { rejected: 'ya29.stored-joined' }),
      w.tokens.getAccessToken(sub),
    ]);
    // The first caller knew of no refusal: the stored token, read before anyone reported it.
    expect(unaware.token).toBe('ya29.stored-joined');
    // Those who saw it refused get a new one, minted once, and so does everyone after them.
    expect([refused.token, alsoRefused.token, later.token]).toEqual([
      'ya29.fresh-1',
      'ya29.fresh-1',
      'ya29.fresh-1',
    ]);
    expect(w.google.refreshed).toEqual(['1//0g-refresh-joined']);
    // A forced refresh does not settle for the token a load already running would hand out either.
    const [running, forced] = await Promise.all([
      w.tokens.getAccessToken(sub, { rejected: 'ya29.some-older-token' }),
      w.tokens.getAccessToken(sub, { forceRefresh: true }),
    ]);
    expect(running.token).toBe('ya29.fresh-1');
    expect(forced.token).toBe('ya29.fresh-2');
  });

  it('a user without a stored refresh token needs consent, and Google is not asked', async () => {
    w = await tokenWorld();
    await w.vault.saveSignIn({
      user: profile('online-only'),
      clientId: CLIENT_ID,
      scopes: ['openid'],
      refreshToken: undefined,
      accessToken: 'ya29.stored-online-only',
      accessTokenExpiresAt: w.clock.now() - 1,
      now: w.clock.now(),
    });
    const error = await errorOf(w.tokens.getAccessToken('online-only'));
    // A first sign-in without a refresh token leaves the grant needing consent.
    expect(error).toMatchObject({ code: 'NEEDS_CONSENT', reason: 'needs_consent' });
    expect(w.google.refreshed).toEqual([]);
    expect(await errorOf(w.tokens.getAccessToken('nobody'))).toMatchObject({ code: 'USER_NOT_FOUND' });
  });
});

/** Issue 16: the lease handed back, the waiters, and single-flight proven in-process on its own. */
describe('TokenService refresh lease, on a SQLite store', () => {
  let w: TokenWorld;
  afterEach(async () => {
    await w.close();
  });

  it('gives the lease back with the token it stores: no lease row is left, another holder takes it at once', async () => {
    w = await tokenWorld();
    const sub = await w.signedIn('released');
    expect((await w.tokens.getAccessToken(sub)).token).toBe('ya29.fresh-1');
    expect(w.takes.count).toBe(1);
    expect(w.leaseRows(sub)).toEqual([]);
    expect(await w.vault.acquireRefreshLease(sub, CLIENT_ID, 'another process', 60_000)).toBe(true);
  });

  it('holds the lease while Google answers, and renews it when Google takes longer than a third of it', async () => {
    w = await tokenWorld({ leaseMs: 300 });
    const sub = await w.signedIn('renewed');
    // Google answers only once the lease has been renewed twice (every 100 ms of real time).
    w.google.script.push(w.renewals.reached(2));
    const pending = w.tokens.getAccessToken(sub);
    await w.google.calls.reached(1);
    expect(w.leaseRows(sub)).toHaveLength(1);
    expect(await w.vault.acquireRefreshLease(sub, CLIENT_ID, 'another process', 60_000)).toBe(false);
    expect((await pending).token).toBe('ya29.fresh-1');
    expect(w.renewals.count).toBeGreaterThanOrEqual(2);
    expect(w.leaseRows(sub)).toEqual([]);
  });

  it('a waiter wakes on the change notification, not at its next look: the grant revoked meanwhile answers NEEDS_CONSENT', async () => {
    // The waiter would next look at the store in a minute: only the change can answer it in time.
    w = await tokenWorld({ leasePollMs: 60_000, leaseMs: 600_000 });
    const sub = await w.signedIn('woken');
    expect(await w.vault.acquireRefreshLease(sub, CLIENT_ID, 'another process', 600_000)).toBe(true);
    const waiter = errorOf(w.tokens.getAccessToken(sub));
    await w.refusedTakes.reached(1);
    // What the waiter does after its refused take, up to waiting for a change, needs no I/O: done by the next turn.
    await new Promise((resolve) => setImmediate(resolve));
    expect(await w.vault.revokeGrant(sub, CLIENT_ID, w.clock.now())).toBe(true);
    expect(await waiter).toMatchObject({ code: 'NEEDS_CONSENT', reason: 'revoked' });
    // One take by the other process, one (refused) by the waiter: it never looked again on its own.
    expect([w.takes.count, w.refusedTakes.count]).toEqual([2, 1]);
    expect(w.google.refreshed).toEqual([]);
  });

  it('a waiter that hears no notification finds the token another process stored at its next look', async () => {
    w = await tokenWorld({ leasePollMs: 1 });
    const sub = await w.signedIn('looked');
    // Another process, on its own connection to the file, holds the lease.
    const otherStore = await openSqliteStore(w.path);
    const other = new Vault(otherStore, KEYRING);
    try {
      expect(await other.acquireRefreshLease(sub, CLIENT_ID, 'other process', 600_000)).toBe(true);
      const waiter = w.tokens.getAccessToken(sub);
      await w.refusedTakes.reached(1);
      const { version } = (await other.getGrant(sub, CLIENT_ID))!;
      const stored = {
        accessToken: 'ya29.from-the-other-process',
        accessTokenExpiresAt: w.clock.now() + 3_600_000,
        now: w.clock.now(),
        releaseLeaseOf: 'other process',
      };
      expect(await other.saveAccessToken(sub, CLIENT_ID, stored, version)).toBe(true);
      expect((await waiter).token).toBe('ya29.from-the-other-process');
      expect(w.google.refreshed).toEqual([]);
    } finally {
      await otherStore.close();
    }
  });

  it('a waiter takes over a lease whose holder died (it ran out) and refreshes once', async () => {
    w = await tokenWorld({ leasePollMs: 1 });
    const sub = await w.signedIn('orphaned');
    expect(await w.vault.acquireRefreshLease(sub, CLIENT_ID, 'crashed process', 600_000)).toBe(true);
    const waiter = w.tokens.getAccessToken(sub);
    await w.refusedTakes.reached(1);
    // The crashed holder's lease runs out (lease time is the database's real time: set, not waited for).
    w.sqlite.database.connection
      .prepare('UPDATE refresh_leases SET expires_at = ? WHERE sub = ?')
      .run(Date.now() - 1, sub);
    expect((await waiter).token).toBe('ya29.fresh-1');
    expect(w.google.refreshed).toHaveLength(1);
    expect(w.leaseRows(sub)).toEqual([]);
  });

  it('a waiter gives up with a retryable GOOGLE_UNAVAILABLE once the holder has had its deadline and a lease', async () => {
    w = await tokenWorld({ leasePollMs: 1, leaseMs: 60_000, retry: { deadlineMs: 15_000 } });
    const sub = await w.signedIn('stuck');
    expect(await w.vault.acquireRefreshLease(sub, CLIENT_ID, 'slow process', 600_000)).toBe(true);
    const waiter = errorOf(w.tokens.getAccessToken(sub));
    await w.refusedTakes.reached(1);
    // Exactly the wait allowed (deadline + lease): the waiter keeps waiting, and takes two more looks.
    w.clock.advance(75);
    const keptWaiting = w.refusedTakes.reached(w.refusedTakes.count + 2).then(() => 'kept waiting');
    expect(await Promise.race([keptWaiting, waiter.then(() => 'gave up')])).toBe('kept waiting');
    w.clock.advance(0.001);
    expect(await waiter).toMatchObject({
      code: 'GOOGLE_UNAVAILABLE',
      reason: 'refresh_in_progress',
      retryAfter: 1,
    });
    expect(w.google.refreshed).toEqual([]);
  });

  it('1,000 concurrent callers in one process with a lease that always grants: exactly one lease taken, one refresh', async () => {
    // No lease at all: only the in-process map of loads in flight keeps the callers to one refresh.
    w = await tokenWorld({ alwaysGrant: true });
    const sub = await w.signedIn('crowd');
    const answers = await Promise.all(Array.from({ length: 1000 }, () => w.tokens.getAccessToken(sub)));
    expect(new Set(answers.map((a) => a.token))).toEqual(new Set(['ya29.fresh-1']));
    expect(w.google.refreshed).toHaveLength(1);
    expect(w.takes.count).toBe(1);
  });
});
