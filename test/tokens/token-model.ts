import type { GrantChangeListener } from '../../src/database/index.js';
import type { GoogleOAuthClient, TokenSet } from '../../src/google/oauth.js';
import { TokenService, type TokenServiceOptions } from '../../src/tokens/index.js';
import type { Grant, GrantStatus, Vault } from '../../src/vault/index.js';
import { withAccessGrant } from '../support/vault-fakes.js';

export const CLIENT_ID = 'server.apps.googleusercontent.com';
export const T0 = 1_760_000_000_000;

interface Row {
  refreshToken: string | null;
  accessToken: string | null;
  accessTokenExpiresAt: number | null;
  scopes: string[];
  status: GrantStatus;
  version: number;
  refreshTokenExpiresAt: number | null;
}

/** Resolves when called `resolve()`: a gate the test opens. */
export function gate() {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}

/** Every microtask and I/O callback queued now has run (setImmediate is never faked here). */
export const settle = async (): Promise<void> => {
  for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve));
};

/**
 * A model of the store TokenService talks to (grants, refresh leases, change notifications) and of
 * Google's token endpoint, every call logged, with hooks to act in the middle of a read, a save or
 * a refresh; a clock that moves only when told, and an injected backoff sleep that moves it.
 * A read answers the grant as it was when the read began.
 */
export function tokenModel(options: Partial<TokenServiceOptions> & { alwaysGrant?: boolean } = {}) {
  let now = T0;
  const clock = {
    now: () => now,
    advance: (ms: number) => (now += ms),
  };
  const rows = new Map<string, Row>();
  const leases = new Map<string, string>();
  const listeners = new Set<GrantChangeListener>();
  /** Store calls, as `op sub`. */
  const calls: string[] = [];
  const records: Array<{ sub: string; outcome: string; reason: string | null }> = [];
  const statuses: Array<{ sub: string; status: GrantStatus; reason: string | undefined }> = [];
  const hooks: {
    read?: (sub: string, n: number) => Promise<void> | void;
    save?: (sub: string, n: number) => Promise<void> | void;
  } = {};
  const state = { current: true, unsubscribed: 0 };
  const count = (op: string, sub: string) => calls.filter((c) => c === `${op} ${sub}`).length;
  const { alwaysGrant, ...serviceOptions } = options;

  const vault = withAccessGrant({
    changes: {
      subscribe: (listener: GrantChangeListener) => {
        listeners.add(listener);
        return () => {
          state.unsubscribed++;
          listeners.delete(listener);
        };
      },
      isCurrent: () => state.current,
      publish: () => undefined,
      close: async () => undefined,
    },
    getGrant: async (sub: string): Promise<Grant | null> => {
      calls.push(`read ${sub}`);
      const row = rows.get(sub);
      const grant =
        row === undefined
          ? null
          : {
              sub,
              clientId: CLIENT_ID,
              ...row,
              scopes: [...row.scopes],
              refreshTokenIssuedAt: T0,
              createdAt: T0,
              updatedAt: T0,
            };
      await hooks.read?.(sub, count('read', sub));
      return grant;
    },
    acquireRefreshLease: async (sub: string, _clientId: string, holder: string) => {
      calls.push(`take ${sub}`);
      const held = leases.get(sub);
      if (alwaysGrant !== true && held !== undefined && held !== holder) return false;
      leases.set(sub, holder);
      return true;
    },
    renewRefreshLease: async (sub: string, _clientId: string, holder: string) => {
      calls.push(`renew ${sub}`);
      return leases.get(sub) === holder;
    },
    releaseRefreshLease: async (sub: string, _clientId: string, holder: string) => {
      calls.push(`release ${sub}`);
      if (leases.get(sub) === holder) leases.delete(sub);
    },
    saveAccessToken: async (
      sub: string,
      _clientId: string,
      save: {
        accessToken: string;
        accessTokenExpiresAt: number;
        scopes?: string[];
        releaseLeaseOf?: string;
        refreshed?: { outcome: string; reason: string | null };
      },
      expectedVersion?: number,
    ) => {
      calls.push(`save ${sub}`);
      await hooks.save?.(sub, count('save', sub));
      if (save.releaseLeaseOf !== undefined && leases.get(sub) === save.releaseLeaseOf) leases.delete(sub);
      if (save.refreshed !== undefined)
        records.push({ sub, outcome: save.refreshed.outcome, reason: save.refreshed.reason });
      const row = rows.get(sub);
      if (row === undefined || row.status !== 'active' || row.version !== expectedVersion) return false;
      row.accessToken = save.accessToken;
      row.accessTokenExpiresAt = save.accessTokenExpiresAt;
      if (save.scopes !== undefined) row.scopes = save.scopes;
      row.version++;
      return true;
    },
    setGrantStatus: async (
      sub: string,
      _clientId: string,
      status: GrantStatus,
      _now: number,
      reason?: string,
    ) => {
      calls.push(`status ${sub}`);
      statuses.push({ sub, status, reason });
      const row = rows.get(sub);
      if (row !== undefined) {
        row.status = status;
        row.version++;
      }
    },
    recordRefresh: async (
      sub: string,
      _clientId: string,
      record: { outcome: string; reason: string | null },
    ) => {
      records.push({ sub, outcome: record.outcome, reason: record.reason });
    },
  }) as unknown as Vault;

  /** Google: each refresh runs the next scripted step (which may throw or wait), then answers a new token. */
  const google = {
    refreshed: [] as string[],
    revoked: [] as string[],
    script: [] as Array<() => Promise<void> | void>,
    /** The scopes Google reports with the next answers. */
    scopes: ['openid'],
  };
  const oauth = {
    clientId: CLIENT_ID,
    refreshAccessToken: async (refreshToken: string): Promise<TokenSet> => {
      google.refreshed.push(refreshToken);
      const n = google.refreshed.length;
      await google.script.shift()?.();
      return {
        accessToken: `ya29.fresh-${n}`,
        expiresIn: 3600,
        refreshToken: undefined,
        scopes: google.scopes,
        idToken: undefined,
        refreshTokenExpiresIn: undefined,
      };
    },
    revokeToken: async (token: string) => {
      google.revoked.push(token);
      return 'revoked' as const;
    },
  } as unknown as GoogleOAuthClient;

  const sleeps: number[] = [];
  const service = (more: Partial<TokenServiceOptions> = {}) =>
    new TokenService({
      vault,
      oauth,
      clock,
      random: () => 1,
      sleep: async (ms) => {
        sleeps.push(ms);
        now += ms;
      },
      ...serviceOptions,
      ...more,
    });

  return {
    clock,
    rows,
    leases,
    calls,
    count,
    records,
    statuses,
    hooks,
    state,
    google,
    sleeps,
    vault,
    oauth,
    service,
    tokens: service(),
    /** A signed-in user; their stored access token is fresh for an hour unless told otherwise. */
    user(sub: string, row: Partial<Row> = {}): string {
      rows.set(sub, {
        refreshToken: `1//refresh-${sub}`,
        accessToken: `ya29.stored-${sub}`,
        accessTokenExpiresAt: now + 3_600_000,
        scopes: ['openid'],
        status: 'active',
        version: 1,
        refreshTokenExpiresAt: null,
        ...row,
      });
      return sub;
    },
    /** The database announces a change to `sub`'s grant. */
    changed(sub: string) {
      for (const listener of [...listeners]) listener.changed(sub);
    },
    /** The database says changes may have been missed. */
    reset() {
      for (const listener of [...listeners]) listener.reset();
    },
    /** Another process stores the token it refreshed, gives its lease back, and the change is announced. */
    otherStores(sub: string, token: string) {
      const row = rows.get(sub)!;
      row.accessToken = token;
      row.accessTokenExpiresAt = now + 3_600_000;
      row.version++;
      leases.delete(sub);
      for (const listener of [...listeners]) listener.changed(sub);
    },
  };
}

/** The promise's outcome so far, without waiting for it. */
export function watch<T>(promise: Promise<T>) {
  const seen: { done: boolean; value?: T; error?: unknown } = { done: false };
  promise.then(
    (value) => Object.assign(seen, { done: true, value }),
    (error: unknown) => Object.assign(seen, { done: true, error }),
  );
  return seen;
}
