import type { Clock } from '../clock.js';
import { BehalfError, isBehalfError } from '../errors.js';
import type { GoogleOAuthClient, TokenSet } from '../google/oauth.js';
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { performance } from 'node:perf_hooks';
import PQueue from 'p-queue';
import type { GrantChanges } from '../database/index.js';
import type { AccessGrant, Grant, Vault } from '../vault/index.js';

export interface AccessToken {
  token: string;
  /** Unix milliseconds. */
  expiresAt: number;
  /** Frozen: the list a remembered token holds is shared with every user granted the same scopes. */
  scopes: readonly string[];
}

export interface RetryPolicy {
  /** Give up retrying a refresh after this long (the caller then gets a retryable error). */
  deadlineMs: number;
  baseDelayMs: number;
  maxDelayMs: number;
}

export interface TokenServiceOptions {
  vault: Vault;
  oauth: GoogleOAuthClient;
  clock: Clock;
  /** Refresh when fewer than this many seconds of validity are left. Default 300. */
  refreshMarginSeconds?: number;
  /** Most users whose access tokens are kept in memory. Default 50,000. */
  memoryCacheSize?: number;
  retry?: Partial<RetryPolicy>;
  /**
   * How long a refresh lease lasts (default 15 s): a crashed holder blocks a user at most this
   * long. A live holder renews it every third of that while its refresh runs, however long Google
   * takes, so two refreshes of one grant never overlap.
   */
  leaseMs?: number;
  /**
   * How soon a process waiting on another's refresh first looks at the store again (default
   * 50 ms); each further look waits twice as long, up to a quarter of the lease. A change to the
   * user's grant (the holder storing its token) ends the wait at once.
   */
  leasePollMs?: number;
  /** Injected so tests need not wait for real backoff. */
  sleep?: (ms: number) => Promise<void>;
  random?: () => number;
}

const DEFAULT_RETRY: RetryPolicy = { deadlineMs: 15_000, baseDelayMs: 250, maxDelayMs: 4_000 };
/** Distinct scope lists shared by remembered tokens, at most (see TokenService.#sharedScopes). */
const SHARED_SCOPE_LISTS = 1_000;
/** Waiters' looks at the store in flight at once, per process (see TokenService.#waiterLooks). */
const WAITER_LOOKS = 2;

/** Thrown inside a refresh when the lease turns out to be someone else's before Google is called. */
const LEASE_LOST = Symbol('refresh lease lost');

/** One load of a user's token in progress, shared by every caller who asks meanwhile. */
interface Load {
  promise: Promise<AccessToken>;
  /** Set when the user's grant changed while this load ran: its result must not be remembered. */
  stale: boolean;
  /** The token it will not hand out (see {@link covers}). */
  rejected: Rejected;
}

/**
 * Hands out fresh access tokens for a user: from memory, else from the store, else by one refresh
 * at Google shared by every concurrent caller for that user (the in-process half of single-flight;
 * google-auth-library keeps the same kind of map of in-flight refresh promises).
 *
 * Memory is coherent with the database: any change to a grant, made here or by another instance
 * or process, drops the user from memory (at once here, within the staleness bound elsewhere, see
 * src/database/grant-changes.ts), and memory is not used at all while changes may be going
 * unheard. A token reaches the store only by a compare-and-set on the grant's version, so a
 * refresh that finishes after the grant was revoked, deleted or replaced is thrown away.
 */
export class TokenService {
  readonly #memory = new Map<string, AccessToken>();
  readonly #inflight = new Map<string, Load>();
  readonly #changes: GrantChanges;
  readonly #unsubscribe: () => void;
  readonly #margin: number;
  readonly #cacheSize: number;
  readonly #retry: RetryPolicy;
  readonly #sleep: (ms: number) => Promise<void>;
  readonly #random: () => number;
  readonly #leaseMs: number;
  readonly #pollMs: number;
  /**
   * Loads waiting on another's refresh are woken when their user's grant changes (the holder
   * stored its token, or the grant was revoked); until then they look at the store now and then,
   * through this queue, a few at a time: however many users wait, the holders' own queries (read,
   * renew, store the token) never queue behind more than a few of theirs for a connection.
   * Without both, on a loaded machine, hundreds of polling waiters kept the pool's queue seconds
   * long and holders' leases ran out before they could use them.
   */
  readonly #waiterLooks = new PQueue({ concurrency: WAITER_LOOKS });
  readonly #wakers = new Map<string, Set<() => void>>();
  /**
   * The scope lists of remembered tokens, by their text: an app asks for a few sets of scopes, so
   * a token shares its list with every user granted the same ones instead of holding its own
   * (about 200 of the 690 bytes a remembered user took; measured with 50,000 users).
   */
  readonly #scopeLists = new Map<string, readonly string[]>();
  /** Who this process is, for refresh leases. */
  readonly #holder = `${hostname()}:${process.pid}:${randomUUID()}`;
  /** Calls answered from memory, and the others (for metrics: counted here, read at a scrape). */
  readonly #cacheStats = { hits: 0, misses: 0 };

  constructor(private readonly options: TokenServiceOptions) {
    this.#margin = (options.refreshMarginSeconds ?? 300) * 1000;
    this.#cacheSize = options.memoryCacheSize ?? 50_000;
    this.#retry = { ...DEFAULT_RETRY, ...options.retry };
    this.#sleep = options.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms)));
    this.#random = options.random ?? Math.random;
    this.#leaseMs = options.leaseMs ?? 15_000;
    this.#pollMs = options.leasePollMs ?? 50;
    this.#changes = options.vault.changes;
    this.#unsubscribe = this.#changes.subscribe({
      changed: (sub) => {
        this.forget(sub);
        for (const wake of [...(this.#wakers.get(sub) ?? [])]) wake();
      },
      reset: () => this.forgetAll(),
    });
  }

  /** Stop listening for changes (the runtime closes it with the database). */
  close(): void {
    this.#unsubscribe();
    this.forgetAll();
  }

  /**
   * A valid access token for `sub`, refreshed when it is expired or about to expire. With
   * `rejected`, the caller reports that Google refused that token (401): it is dropped and a new
   * one minted, unless another caller already replaced it.
   */
  async getAccessToken(
    sub: string,
    options: { rejected?: string; forceRefresh?: boolean } = {},
  ): Promise<AccessToken> {
    // isCurrent first: on SQLite it is what reads the other processes' changes into memory.
    if (this.#changes.isCurrent()) {
      const cached = this.#memory.get(sub);
      if (cached !== undefined) {
        if (
          options.forceRefresh === true ||
          (options.rejected !== undefined && cached.token === options.rejected)
        ) {
          this.#memory.delete(sub);
        } else if (this.#fresh(cached)) {
          this.#cacheStats.hits++;
          return cached;
        }
      }
    }
    this.#cacheStats.misses++;
    const rejected = options.forceRefresh === true ? ANY_STORED : options.rejected;
    const running = this.#inflight.get(sub);
    if (running !== undefined && covers(running.rejected, rejected)) return running.promise;
    // A load that may hand out the token this caller saw refused (it was started without that
    // report, and the store may still hold the token) is no answer to it: a new load, which reads
    // the store again once the running one is done (so its refresh, if any, is seen, not repeated).
    const started: Load = { promise: undefined as unknown as Promise<AccessToken>, stale: false, rejected };
    const after = running === undefined ? Promise.resolve() : running.promise.then(noop, noop);
    started.promise = after
      .then(() => this.#load(sub, rejected, started))
      .finally(() => {
        if (this.#inflight.get(sub) === started) this.#inflight.delete(sub);
      });
    this.#inflight.set(sub, started);
    return started.promise;
  }

  /** How many calls were answered from memory, and how many were not (a store read or a refresh). */
  get cacheStats(): { readonly hits: number; readonly misses: number } {
    return { ...this.#cacheStats };
  }

  /**
   * Forget what is known in memory about a user: the cached token, and the result of any load in
   * progress (callers who ask from now on start a new one). Called on every change to the grant.
   */
  forget(sub: string): void {
    this.#memory.delete(sub);
    const load = this.#inflight.get(sub);
    if (load !== undefined) {
      load.stale = true;
      this.#inflight.delete(sub);
    }
  }

  /** Forget every user (changes may have been missed). */
  forgetAll(): void {
    this.#memory.clear();
    for (const load of this.#inflight.values()) load.stale = true;
    this.#inflight.clear();
  }

  #fresh(token: AccessToken): boolean {
    return token.expiresAt - this.#margin > this.options.clock.now();
  }

  #remember(sub: string, token: AccessToken, load: Load): AccessToken {
    // Read before the grant changed: good for the callers who asked then, not for later ones.
    if (load.stale) return token;
    const remembered = { ...token, scopes: this.#sharedScopes(token.scopes) };
    this.#memory.delete(sub);
    this.#memory.set(sub, remembered);
    if (this.#memory.size > this.#cacheSize) this.#evictOldest();
    return remembered;
  }

  /** The frozen list of these scopes every remembered token shares (a copy of its own past the first 1,000 lists). */
  #sharedScopes(scopes: readonly string[]): readonly string[] {
    const text = scopes.join(' ');
    const shared = this.#scopeLists.get(text);
    if (shared !== undefined) return shared;
    const list = Object.freeze([...scopes]);
    if (this.#scopeLists.size < SHARED_SCOPE_LISTS) this.#scopeLists.set(text, list);
    return list;
  }

  /**
   * Forget the oldest 1% in one pass. Evicting one at a time with `keys().next()` is a cliff in
   * V8: each call walks every deleted slot at the head of the table, measured at ~35 µs per new
   * user once 50,000 are cached, against ~1 µs in batches.
   */
  #evictOldest(): void {
    let left = Math.max(1, Math.ceil(this.#cacheSize / 100));
    for (const sub of this.#memory.keys()) {
      this.#memory.delete(sub);
      if (--left === 0) break;
    }
  }

  async #load(sub: string, rejected: Rejected, load: Load): Promise<AccessToken> {
    const grant = await this.#activeGrant(sub);
    const stored = this.#usableStored(grant, rejected);
    if (stored !== undefined) return this.#remember(sub, stored, load);
    if (!grant.hasRefreshToken) {
      throw new BehalfError('NEEDS_CONSENT', needsConsentMessage, { reason: 'no_refresh_token' });
    }
    await this.#refuseExpired(grant);
    return this.#refreshUnderLease(sub, rejected, load);
  }

  /**
   * One refresh per grant across every process sharing the store: whoever takes the lease
   * refreshes, renewing the lease while Google answers; the others wait for its result to appear
   * in the store. A holder that dies loses the lease when it runs out, and a waiter then takes over.
   */
  async #refreshUnderLease(sub: string, rejected: Rejected, load: Load): Promise<AccessToken> {
    const { vault, oauth, clock } = this.options;
    // Long enough for a live holder's whole refresh (its retries end by the deadline, its lease
    // renewed meanwhile), and for a dead holder's lease to run out.
    const waitUntil = clock.now() + this.#retry.deadlineMs + this.#leaseMs;
    let asked = performance.now();
    // Waiting: look for the holder's result, else try to take over a lease that ran out.
    const look = async (): Promise<AccessToken | boolean> => {
      const stored = this.#usableStored(await this.#activeGrant(sub), rejected);
      if (stored !== undefined) return stored;
      asked = performance.now();
      return vault.acquireRefreshLease(sub, oauth.clientId, this.#holder, this.#leaseMs);
    };
    let taken = await vault.acquireRefreshLease(sub, oauth.clientId, this.#holder, this.#leaseMs);
    for (let polls = 0; ; polls++) {
      if (taken) {
        const renewal = this.#renewWhileRefreshing(sub, asked);
        let released = false;
        try {
          // Another process may have refreshed between our read and taking the lease.
          const grant = await this.#grantToRefresh(sub);
          const stored = this.#usableStored(grant, rejected);
          if (stored !== undefined) return this.#remember(sub, stored, load);
          if (grant.refreshToken === null) {
            throw new BehalfError('NEEDS_CONSENT', needsConsentMessage, { reason: 'no_refresh_token' });
          }
          await this.#refuseExpired(grant);
          const token = await this.#refresh(sub, grant, renewal);
          released = true; // the new token was stored (or refused) and the lease given back in one write
          return this.#remember(sub, token, load);
        } catch (error) {
          // Another process took the lease over before we called Google: wait for its result.
          if (error !== LEASE_LOST) throw error;
        } finally {
          renewal.stop();
          if (!released)
            await vault.releaseRefreshLease(sub, oauth.clientId, this.#holder).catch(() => undefined);
        }
      }
      if (clock.now() > waitUntil) {
        throw new BehalfError(
          'GOOGLE_UNAVAILABLE',
          "A refresh of this user's token is taking too long elsewhere; retry shortly.",
          {
            reason: 'refresh_in_progress',
            retryAfter: 1,
          },
        );
      }
      const pause =
        Math.min(this.#leaseMs / 4, this.#pollMs * 2 ** Math.min(polls, 10)) * (0.5 + this.#random());
      // Woken by a change, look at once; after a timeout, with the other waiters, a few at a time.
      const looked = (await this.#untilChanged(sub, pause))
        ? await look()
        : await this.#waiterLooks.add(look);
      if (typeof looked !== 'boolean') return this.#remember(sub, looked, load);
      taken = looked;
    }
  }

  /** Resolves true when `sub`'s grant changes, false after `ms` (real time: the lease is) without a change. */
  #untilChanged(sub: string, ms: number): Promise<boolean> {
    return new Promise((resolve) => {
      let wakers = this.#wakers.get(sub);
      if (wakers === undefined) this.#wakers.set(sub, (wakers = new Set()));
      const waiting = wakers;
      const end = (changed: boolean) => {
        clearTimeout(timer);
        waiting.delete(wake);
        if (waiting.size === 0 && this.#wakers.get(sub) === waiting) this.#wakers.delete(sub);
        resolve(changed);
      };
      const wake = () => end(true);
      const timer = setTimeout(() => end(false), ms);
      waiting.add(wake);
    });
  }

  /**
   * Renew the lease every third of its length until stopped. Real time: the lease is.
   *
   * A renewal, like any query, can wait behind others for a connection (a busy pool, a loaded
   * machine), and the lease may run out and be taken over meanwhile. So before each call to Google
   * the holder also confirms it (`holds()`): the lease runs until at least `leaseMs` after the last
   * take or renewal that succeeded was sent, so within a third of that nothing can have taken it
   * over; later, a renewal (a compare-and-set on the holder) must succeed first. With the defaults
   * (a 15 s lease, Google calls cut at 10 s) a call so started ends before the lease can run out
   * even if no renewal gets through meanwhile; with a lease shorter than 1.5 times the Google
   * timeout, the renewals carry it.
   */
  #renewWhileRefreshing(sub: string, takenAt: number): Renewal {
    const { vault, oauth } = this.options;
    let lost = false;
    let confirmedAt = takenAt;
    const renew = async (): Promise<boolean> => {
      const sent = performance.now();
      const held = await vault.renewRefreshLease(sub, oauth.clientId, this.#holder, this.#leaseMs);
      if (held) confirmedAt = Math.max(confirmedAt, sent);
      else lost = true;
      return held;
    };
    const timer = setInterval(
      () => {
        renew().catch(() => undefined); // the database is away: the next renewal tries again
      },
      Math.max(100, Math.floor(this.#leaseMs / 3)),
    );
    timer.unref();
    return {
      stop: () => clearInterval(timer),
      get lost() {
        return lost;
      },
      holds: async () => {
        if (lost) return false;
        if (performance.now() - confirmedAt < this.#leaseMs / 3) return true;
        return renew().catch(() => false);
      },
    };
  }

  /** The user's active grant as a lookup needs it (the refresh token not decrypted); throws when there is none. */
  async #activeGrant(sub: string): Promise<AccessGrant> {
    return active(await this.options.vault.getAccessGrant(sub, this.options.oauth.clientId));
  }

  /** The user's active grant with its refresh token decrypted, to refresh it; throws when there is none. */
  async #grantToRefresh(sub: string): Promise<Grant> {
    return active(await this.options.vault.getGrant(sub, this.options.oauth.clientId));
  }

  /**
   * A refresh token past the expiry Google gave with it (a Testing-mode app's 7 days, time-based
   * access: https://developers.google.com/identity/protocols/oauth2#expiration) is dead: Google is
   * not asked; the grant is marked needs_consent and the caller told why (`grant_expired`).
   */
  async #refuseExpired(grant: Pick<Grant, 'sub' | 'refreshTokenExpiresAt'>): Promise<void> {
    const { vault, oauth, clock } = this.options;
    if (grant.refreshTokenExpiresAt === null || clock.now() < grant.refreshTokenExpiresAt) return;
    await vault.setGrantStatus(grant.sub, oauth.clientId, 'needs_consent', clock.now(), 'grant_expired');
    throw new BehalfError(
      'NEEDS_CONSENT',
      "This user's Google grant expired (Google gave its refresh token an expiry: a Testing-mode OAuth client's 7 days, or time-based access). Ask them to sign in again.",
      { reason: 'grant_expired' },
    );
  }

  /** The stored access token, if it is fresh and not the one the caller saw rejected. */
  #usableStored(
    grant: Pick<Grant, 'accessToken' | 'accessTokenExpiresAt' | 'scopes'>,
    rejected: Rejected,
  ): AccessToken | undefined {
    if (grant.accessToken === null || grant.accessTokenExpiresAt === null) return undefined;
    if (rejected === ANY_STORED || grant.accessToken === rejected) return undefined;
    const token = { token: grant.accessToken, expiresAt: grant.accessTokenExpiresAt, scopes: grant.scopes };
    return this.#fresh(token) ? token : undefined;
  }

  /**
   * Refresh at Google and store the new token by a compare-and-set on the grant's version, giving
   * the lease back in the same write. When the grant changed meanwhile, the token is stored only
   * if the grant still holds the refresh token it came from; a grant revoked or deleted meanwhile
   * gets nothing back, and the token is revoked at Google (best effort).
   */
  async #refresh(sub: string, grant: Grant, renewal: Renewal): Promise<AccessToken> {
    const { vault, oauth, clock } = this.options;
    const refreshToken = grant.refreshToken!;
    let tokens: TokenSet;
    try {
      tokens = await this.#refreshWithRetry(refreshToken, renewal);
    } catch (error) {
      if (isBehalfError(error) && error.code === 'NEEDS_CONSENT') {
        // invalid_grant: the grant is dead at Google; stop using it until the user signs in again.
        await vault.setGrantStatus(sub, oauth.clientId, 'needs_consent', clock.now(), 'refresh_refused');
      }
      if (error !== LEASE_LOST) {
        const reason = isBehalfError(error) ? (error.reason ?? error.google?.error ?? null) : null;
        await this.#recordRefresh(sub, isBehalfError(error) ? error.code : 'INTERNAL', reason);
      }
      throw error;
    }
    const now = clock.now();
    const scopes = tokens.scopes.length > 0 ? tokens.scopes : grant.scopes;
    const token: AccessToken = {
      token: tokens.accessToken,
      expiresAt: now + tokens.expiresIn * 1000,
      scopes,
    };
    const save = {
      accessToken: token.token,
      accessTokenExpiresAt: token.expiresAt,
      scopes,
      now,
      releaseLeaseOf: this.#holder,
    };
    let version = grant.version;
    for (let attempt = 0; attempt < 3; attempt++) {
      // The first write also records the refresh (for people: the admin console shows it).
      const write = attempt === 0 ? { ...save, refreshed: { at: now, outcome: 'ok', reason: null } } : save;
      if (await vault.saveAccessToken(sub, oauth.clientId, write, version)) return token;
      // The grant changed while Google answered (the lease was given back all the same).
      const current = await vault.getGrant(sub, oauth.clientId);
      if (current === null || current.status !== 'active' || current.refreshToken === null) {
        // Revoked, deleted, or found dead: the new token must not outlive the grant.
        oauth.revokeToken(token.token).catch(() => undefined);
        await this.#activeGrant(sub); // throws USER_NOT_FOUND or NEEDS_CONSENT
        throw new BehalfError('NEEDS_CONSENT', needsConsentMessage, { reason: 'no_refresh_token' });
      }
      if (current.refreshToken !== refreshToken) {
        // A new sign-in replaced the grant: its tokens stand, ours is not kept. (Not revoked:
        // at Google that would revoke the user's new grant too.)
        const stored = this.#usableStored(current, undefined);
        if (stored !== undefined) return stored;
        throw new BehalfError(
          'GOOGLE_UNAVAILABLE',
          'The user signed in again while their token was being refreshed; retry.',
          {
            reason: 'refresh_raced',
            retryAfter: 1,
          },
        );
      }
      // Same grant, another write in between (a key rotation, a status flip back): try again on it.
      version = current.version;
    }
    if (renewal.lost) {
      throw new BehalfError(
        'GOOGLE_UNAVAILABLE',
        'The refresh lease was lost while Google answered; retry.',
        { reason: 'lease_lost', retryAfter: 1 },
      );
    }
    throw new BehalfError(
      'GOOGLE_UNAVAILABLE',
      "This user's grant kept changing while it was refreshed; retry.",
      { reason: 'refresh_raced', retryAfter: 1 },
    );
  }

  /**
   * Note how a refresh at Google ended, for people (the admin console shows the last one): a
   * record that cannot be written costs the refresh nothing.
   */
  async #recordRefresh(sub: string, outcome: string, reason: string | null): Promise<void> {
    const { vault, oauth, clock } = this.options;
    await vault
      .recordRefresh(sub, oauth.clientId, { at: clock.now(), outcome, reason })
      .catch(() => undefined);
  }

  /**
   * 5xx, 429 and timeouts are retried with exponential backoff and full jitter, within a deadline.
   * Each attempt starts only once the lease is confirmed ours, else LEASE_LOST is thrown: a lease
   * taken over while this process waited must not lead to a second refresh at Google.
   */
  async #refreshWithRetry(refreshToken: string, renewal: Renewal): Promise<TokenSet> {
    const { oauth, clock } = this.options;
    const deadline = clock.now() + this.#retry.deadlineMs;
    for (let attempt = 0; ; attempt++) {
      if (!(await renewal.holds())) throw LEASE_LOST;
      try {
        return await oauth.refreshAccessToken(refreshToken);
      } catch (error) {
        if (!isBehalfError(error) || error.code !== 'GOOGLE_UNAVAILABLE') throw error;
        const backoff =
          Math.min(this.#retry.maxDelayMs, this.#retry.baseDelayMs * 2 ** attempt) * this.#random();
        const delay = Math.max(backoff, (error.retryAfter ?? 0) * 1000);
        if (clock.now() + delay >= deadline) throw error;
        await this.#sleep(delay);
      }
    }
  }
}

/** A refresh lease held while a refresh runs (see TokenService.#renewWhileRefreshing). */
interface Renewal {
  stop(): void;
  /** A renewal found the lease taken over. */
  readonly lost: boolean;
  /** Whether the lease is surely still ours, renewing it first when it was last confirmed too long ago. */
  holds(): Promise<boolean>;
}

/** `rejected` value meaning "do not use any stored token" (a forced refresh). */
const ANY_STORED = Symbol('any stored token');
type Rejected = string | typeof ANY_STORED | undefined;

/**
 * Whether a load that will not hand out `running` answers a caller who will not take `wanted`:
 * yes when the caller refused nothing, refused the same token, or the load refreshes whatever is
 * stored. A caller who saw Google refuse a token and joined a load started before (by a caller
 * who had not) got that same token back from the store and a second 401.
 */
function covers(running: Rejected, wanted: Rejected): boolean {
  return wanted === undefined || running === wanted || running === ANY_STORED;
}

function noop(): void {}

/** The grant when it is active; else USER_NOT_FOUND (none stored) or NEEDS_CONSENT (its status). */
function active<G extends { status: Grant['status'] }>(grant: G | null): G {
  if (grant === null) {
    throw new BehalfError(
      'USER_NOT_FOUND',
      'No grant is stored for this user; they have not signed in with a server auth code.',
    );
  }
  if (grant.status !== 'active') {
    throw new BehalfError('NEEDS_CONSENT', needsConsentMessage, { reason: grant.status });
  }
  return grant;
}

const needsConsentMessage =
  "This user's Google grant can no longer be used (revoked, expired or never offline). Ask them to sign in again with consent.";
