import { describe, expect, it } from 'vitest';
import { OffsetClock } from '../../src/clock.js';
import type { GrantChangeListener } from '../../src/database/index.js';
import type { GoogleOAuthClient } from '../../src/google/oauth.js';
import { TokenService } from '../../src/tokens/index.js';
import type { Grant, Vault } from '../../src/vault/index.js';
import { waitUntil } from '../support/deadline.js';
import { withAccessGrant } from '../support/vault-fakes.js';

const CLIENT_ID = 'server.apps.googleusercontent.com';

/**
 * A store shared with another process (played by the test): grants whose access tokens are due,
 * refresh leases, and the change notifications a real database sends when a grant is written.
 */
function sharedStore(clock: OffsetClock) {
  const tokens = new Map<string, string>();
  const leases = new Map<string, string>();
  const listeners = new Set<GrantChangeListener>();
  const reads = new Map<string, number>();
  /** Reads other than each user's first (a load's own): the waiters' looks. */
  const looks = { inFlight: 0, most: 0, total: 0 };
  const calls = { takes: 0, renewals: 0 };
  const hooks: { beforeRead?: (sub: string, n: number) => Promise<void> | void } = {};
  const grant = (sub: string): Grant => {
    const now = clock.now();
    const token = tokens.get(sub);
    return {
      sub,
      clientId: CLIENT_ID,
      refreshToken: `1//refresh-${sub}`,
      accessToken: token ?? `ya29.due-${sub}`,
      accessTokenExpiresAt: token === undefined ? now - 1000 : now + 3_600_000,
      scopes: ['openid'],
      status: 'active',
      version: token === undefined ? 1 : 2,
      refreshTokenIssuedAt: now,
      refreshTokenExpiresAt: null,
      createdAt: now,
      updatedAt: now,
    };
  };
  const otherStores = (sub: string) => {
    tokens.set(sub, `ya29.from-the-other-process-${sub}`);
    leases.delete(sub);
    for (const listener of listeners) listener.changed(sub);
  };
  const vault = withAccessGrant({
    changes: {
      subscribe: (listener: GrantChangeListener) => {
        listeners.add(listener);
        return () => listeners.delete(listener);
      },
      isCurrent: () => true,
      publish: () => undefined,
      close: async () => undefined,
    },
    getGrant: async (sub: string) => {
      const n = (reads.get(sub) ?? 0) + 1;
      reads.set(sub, n);
      const look = n > 1;
      if (look) {
        looks.total++;
        looks.most = Math.max(looks.most, ++looks.inFlight);
      }
      try {
        await hooks.beforeRead?.(sub, n);
        await new Promise((resolve) => setImmediate(resolve));
        return grant(sub);
      } finally {
        if (look) looks.inFlight--;
      }
    },
    acquireRefreshLease: async (sub: string, _clientId: string, holder: string) => {
      calls.takes++;
      if (leases.has(sub) && leases.get(sub) !== holder) return false;
      leases.set(sub, holder);
      return true;
    },
    renewRefreshLease: async (sub: string, _clientId: string, holder: string) => {
      calls.renewals++;
      return leases.get(sub) === holder;
    },
    releaseRefreshLease: async (sub: string, _clientId: string, holder: string) => {
      if (leases.get(sub) === holder) leases.delete(sub);
    },
    saveAccessToken: async (
      sub: string,
      _clientId: string,
      write: { accessToken: string; releaseLeaseOf?: string },
    ) => {
      tokens.set(sub, write.accessToken);
      if (write.releaseLeaseOf !== undefined && leases.get(sub) === write.releaseLeaseOf) leases.delete(sub);
      return true;
    },
    setGrantStatus: async () => undefined,
    recordRefresh: async () => undefined,
  }) as unknown as Vault;

  return {
    vault,
    looks,
    calls,
    hooks,
    /** The other process holds (or took over) the user's lease. */
    otherHolds(sub: string) {
      leases.set(sub, 'another process');
    },
    /** The other process stores its refreshed token, and the database announces the change. */
    otherStores,
  };
}

function countingGoogle() {
  const refreshed: string[] = [];
  const oauth = {
    clientId: CLIENT_ID,
    refreshAccessToken: async (refreshToken: string) => {
      refreshed.push(refreshToken);
      return { accessToken: `ya29.fresh-${refreshed.length}`, expiresIn: 3599, scopes: ['openid'] };
    },
    revokeToken: async () => 'revoked' as const,
  } as unknown as GoogleOAuthClient;
  return { oauth, refreshed };
}

/** Issue 11, point 4: one refresh per user by design — the lease and the waiters, modelled. */
describe('TokenService refresh lease', () => {
  it('does not call Google when its lease was taken over while it waited for the database', async () => {
    const clock = new OffsetClock();
    const store = sharedStore(clock);
    const { oauth, refreshed } = countingGoogle();
    // A lease of 3 ms: any read under it outlasts a third of it.
    const tokens = new TokenService({ vault: store.vault, oauth, clock, leaseMs: 3 });
    try {
      store.hooks.beforeRead = async (sub, n) => {
        if (n === 2) {
          // The read under the lease waits for a connection; meanwhile the lease runs out and
          // another process takes it over.
          await new Promise((resolve) => setTimeout(resolve, 10));
          store.otherHolds(sub);
        }
        if (n === 3) store.otherStores(sub); // the other process's refresh lands
      };
      expect((await tokens.getAccessToken('u1')).token).toBe('ya29.from-the-other-process-u1');
      // This process confirmed its lease before calling Google, found it gone, and waited.
      expect(refreshed).toEqual([]);
      expect(store.calls.renewals).toBeGreaterThanOrEqual(1);
    } finally {
      tokens.close();
    }
  });

  it('confirms nothing when the lease is fresh: one refresh, no extra write', async () => {
    const clock = new OffsetClock();
    const store = sharedStore(clock);
    const { oauth, refreshed } = countingGoogle();
    const tokens = new TokenService({ vault: store.vault, oauth, clock, leaseMs: 15_000 });
    try {
      expect((await tokens.getAccessToken('u1')).token).toBe('ya29.fresh-1');
      expect(refreshed).toHaveLength(1);
      expect(store.calls.renewals).toBe(0);
    } finally {
      tokens.close();
    }
  });

  it("waiters on another process's refresh wake when the grant changes, not at their next look", async () => {
    const clock = new OffsetClock();
    const store = sharedStore(clock);
    const { oauth, refreshed } = countingGoogle();
    // Waiters would next look in 30-90 s, past the test's timeout: only the change can answer them.
    const tokens = new TokenService({
      vault: store.vault,
      oauth,
      clock,
      leaseMs: 600_000,
      leasePollMs: 60_000,
    });
    try {
      const subs = Array.from({ length: 200 }, (_, i) => `user-${i}`);
      for (const sub of subs) store.otherHolds(sub);
      const pending = subs.map((sub) => tokens.getAccessToken(sub));
      await waitUntil('every load tried the lease and waits', () => store.calls.takes === subs.length, {
        everyMs: 5,
      });
      for (const sub of subs) store.otherStores(sub);
      const answers = await Promise.all(pending);
      expect(answers.map((a) => a.token)).toEqual(subs.map((sub) => `ya29.from-the-other-process-${sub}`));
      expect(refreshed).toEqual([]);
    } finally {
      tokens.close();
    }
  });

  it('however many users wait, their looks at the store are a few at a time', async () => {
    const clock = new OffsetClock();
    const store = sharedStore(clock);
    const { oauth, refreshed } = countingGoogle();
    // Waiters that would look every millisecond or so, for a long time.
    const tokens = new TokenService({ vault: store.vault, oauth, clock, leaseMs: 60_000, leasePollMs: 1 });
    try {
      const subs = Array.from({ length: 200 }, (_, i) => `user-${i}`);
      for (const sub of subs) store.otherHolds(sub);
      const pending = subs.map((sub) => tokens.getAccessToken(sub));
      await waitUntil('the waiters looked many times', () => store.looks.total >= 2_000, { everyMs: 5 });
      expect(store.looks.most).toBeLessThanOrEqual(2);
      for (const sub of subs) store.otherStores(sub);
      await Promise.all(pending);
      expect(refreshed).toEqual([]);
    } finally {
      tokens.close();
    }
  });
});
