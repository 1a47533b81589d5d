import type { GrantChanges } from '../database/index.js';
import type { UserSearch, UserSearchPage } from './user-search.js';

export type { UserSearch, UserSearchPage } from './user-search.js';
import type { GrantChangeReason } from '../webhooks/outbox.js';

/**
 * The storage contract. One interface, implemented by SQLite (embedded default) and Postgres;
 * one contract test suite runs unchanged against each. The store only ever sees ciphertext for
 * tokens: encryption happens in the vault layer above it (see ./vault.ts).
 */

export type GrantStatus = 'active' | 'revoked' | 'needs_consent';

/** What Google tells us about a user, from a verified ID token. */
export interface UserProfile {
  sub: string;
  email: string | null;
  emailVerified: boolean;
  name: string | null;
  givenName: string | null;
  familyName: string | null;
  picture: string | null;
  locale: string | null;
  hd: string | null;
}

export interface UserRecord extends UserProfile {
  /** Unix milliseconds. */
  createdAt: number;
  updatedAt: number;
  lastSignInAt: number;
}

/** A grant row as stored: tokens are opaque ciphertext envelopes (see ./envelope.ts). */
export interface StoredGrant {
  sub: string;
  /** The OAuth client the grant belongs to (the server's web client id). */
  clientId: string;
  refreshTokenCiphertext: Buffer | null;
  accessTokenCiphertext: Buffer | null;
  /** Unix milliseconds; null when no access token is cached. */
  accessTokenExpiresAt: number | null;
  /** Scopes as Google reported them (space-separated on the wire, a list here). */
  scopes: string[];
  status: GrantStatus;
  /** Bumped on every write: lets a writer refuse to overwrite a newer row. */
  version: number;
  /** Unix milliseconds of the refresh token currently stored; null when none. */
  refreshTokenIssuedAt: number | null;
  /**
   * Unix milliseconds when Google said the stored refresh token stops working
   * (`refresh_token_expires_in`: a Testing-mode app's 7 days, or time-based access); null when it
   * gave no expiry.
   */
  refreshTokenExpiresAt: number | null;
  createdAt: number;
  updatedAt: number;
}

export interface SignInWrite {
  user: UserProfile;
  clientId: string;
  scopes: string[];
  /** A new refresh token's ciphertext, or undefined to keep the stored one (repeat sign-in). */
  refreshTokenCiphertext: Buffer | undefined;
  /** When the new refresh token expires (Unix ms), or null; ignored when the stored one is kept. */
  refreshTokenExpiresAt?: number | null;
  accessTokenCiphertext: Buffer;
  accessTokenExpiresAt: number;
  now: number;
}

export interface AccessTokenWrite {
  accessTokenCiphertext: Buffer;
  accessTokenExpiresAt: number;
  /** Replace the recorded scopes when Google reports them on refresh. */
  scopes?: string[];
  now: number;
  /**
   * Also give back this holder's refresh lease on the grant, in the same transaction and whatever
   * the update's outcome: a refresh then ends in one write, not two.
   */
  releaseLeaseOf?: string;
  /**
   * Also record the refresh that got this token (as recordRefresh does), in the same transaction
   * and whatever the update's outcome: Google did answer.
   */
  refreshed?: RefreshRecord;
}

export interface ApiKeyRecord {
  /** Public, non-secret identifier (the part of the key before the secret). */
  id: string;
  /** SHA-256 of the whole key; the key itself is never stored. */
  hash: Buffer;
  name: string;
  createdAt: number;
}

/** What may be shown about a service API key: never the key, nor its hash. */
export interface ApiKeySummary {
  id: string;
  name: string;
  createdAt: number;
  /** When the key was last used (to the minute), or null: never since this was recorded. */
  lastUsedAt: number | null;
}

/** A value encrypted under one key id, to tell at start-up that the key's bytes are the same. */
export interface KeyCheckRecord {
  keyId: string;
  checkValue: Buffer;
  createdAt: number;
}

/** How a grant's refresh at Google ended. */
export interface RefreshRecord {
  /** Unix milliseconds. */
  at: number;
  /** `ok`, or the behalf error code it ended with (NEEDS_CONSENT, GOOGLE_UNAVAILABLE, …). */
  outcome: string;
  /** The error's finer reason, if any (e.g. `invalid_grant`). */
  reason: string | null;
}

export interface GrantPage {
  grants: StoredGrant[];
  /** Pass as `after` to get the next page; null at the end. */
  next: { sub: string; clientId: string } | null;
}

export interface Store {
  /** Which backend this is, for messages and benchmarks. */
  readonly kind: 'sqlite' | 'postgres';

  /**
   * Changes to grants, from this process (announced right after each commit here) and from every
   * other process sharing the database (see src/database/grant-changes.ts).
   */
  readonly changes: GrantChanges;

  /**
   * Store a sign-in atomically: upsert the user by sub and the grant by (sub, clientId). A grant
   * that changes status by it records its webhook event in the same transaction (`grant.restored`).
   */
  saveSignIn(write: SignInWrite): Promise<{ user: UserRecord; grant: StoredGrant }>;

  getUser(sub: string): Promise<UserRecord | null>;
  getGrant(sub: string, clientId: string): Promise<StoredGrant | null>;

  /**
   * Cache a freshly minted access token. When `expectedVersion` is given and the row has moved on,
   * nothing is written and false is returned.
   */
  saveAccessToken(
    sub: string,
    clientId: string,
    write: AccessTokenWrite,
    expectedVersion?: number,
  ): Promise<boolean>;

  /**
   * Set the grant status; `revoked`/`needs_consent` also drop the cached access token. A change of
   * status records its webhook event (`grant.*`, with `reason` when given) in the same transaction.
   */
  setGrantStatus(
    sub: string,
    clientId: string,
    status: GrantStatus,
    now: number,
    reason?: GrantChangeReason,
  ): Promise<void>;

  /**
   * Mark the grant revoked and erase both its tokens, in one write (a sign-out), recording
   * `grant.revoked` in the same transaction unless it was revoked already. False when there is
   * no such grant.
   */
  revokeGrant(sub: string, clientId: string, now: number): Promise<boolean>;

  /** Rewrite ciphertexts (key rotation) if the row is still at `expectedVersion`. */
  replaceCiphertexts(
    sub: string,
    clientId: string,
    ciphertexts: { refreshToken: Buffer | null; accessToken: Buffer | null },
    expectedVersion: number,
  ): Promise<boolean>;

  /**
   * Forget the user in one transaction: their profile, grants, refresh leases, security state and
   * job runs, and cancel their queued jobs; `user.deleted` is recorded in it. Returns false when
   * there was no such user.
   */
  deleteUser(sub: string): Promise<boolean>;

  /** Grants in (sub, clientId) order, a page at a time. */
  /**
   * How many active grants hold a refresh token Google said expires before `before` (Unix ms):
   * a Testing-mode client's grants, found at start-up.
   */
  countExpiringGrants(clientId: string, before: number): Promise<number>;

  listGrants(options: {
    after?: { sub: string; clientId: string };
    limit: number;
    status?: GrantStatus;
  }): Promise<GrantPage>;

  createApiKey(record: ApiKeyRecord): Promise<void>;
  findApiKey(id: string): Promise<ApiKeyRecord | null>;
  /** Every service API key, oldest first (then by id). */
  listApiKeys(): Promise<ApiKeySummary[]>;
  /** Delete a key: from then on it authenticates nothing. False when there was no such key. */
  deleteApiKey(id: string): Promise<boolean>;
  /** Note that a key was used at `at` (never moved back). */
  recordApiKeyUse(id: string, at: number): Promise<void>;

  /**
   * Users for the admin console: by email prefix and grant status, a keyset page at a time, off
   * an index on both backends (see ./user-search.ts).
   */
  searchUsers(search: UserSearch): Promise<UserSearchPage>;

  /** Record how a grant's refresh at Google ended (a newer record is never overwritten by an older one). */
  recordRefresh(sub: string, clientId: string, record: RefreshRecord): Promise<void>;
  /** The grant's last refresh at Google, since the grant was created; null when none is recorded. */
  getLastRefresh(sub: string, clientId: string): Promise<RefreshRecord | null>;

  /**
   * Take the refresh lease of a grant for `ttlMs`, unless another holder has one that has not
   * expired: the cross-process half of single-flight refresh. A crashed holder's lease simply
   * runs out. Lease time is the database's own clock where it has one (Postgres `now()`).
   */
  acquireRefreshLease(sub: string, clientId: string, holder: string, ttlMs: number): Promise<boolean>;

  /**
   * Extend `holder`'s lease to `ttlMs` from now, while a refresh runs. False when `holder` no
   * longer holds it (it ran out and another holder took it).
   */
  renewRefreshLease(sub: string, clientId: string, holder: string, ttlMs: number): Promise<boolean>;

  /** Give the lease back early (only if `holder` still holds it). */
  releaseRefreshLease(sub: string, clientId: string, holder: string): Promise<void>;

  /** Every key id's check value (see ./keyring.ts). */
  listKeyChecks(): Promise<KeyCheckRecord[]>;
  /** Record a key id's check value unless one is recorded already; false when one was. */
  addKeyCheck(record: KeyCheckRecord): Promise<boolean>;

  close(): Promise<void>;
}
