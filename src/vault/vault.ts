import { BehalfError } from '../errors.js';
import { decryptToken, encryptToken, envelopeKeyId, type TokenColumn } from './envelope.js';
import type { Keyring } from './keyring.js';
import type { GrantChangeReason } from '../webhooks/outbox.js';
import type {
  GrantPage,
  GrantStatus,
  RefreshRecord,
  Store,
  StoredGrant,
  UserProfile,
  UserRecord,
} from './types.js';

/** A grant with its tokens decrypted: only ever held in memory. */
export interface Grant {
  sub: string;
  clientId: string;
  refreshToken: string | null;
  accessToken: string | null;
  /** Unix milliseconds; null when no access token is cached. */
  accessTokenExpiresAt: number | null;
  scopes: string[];
  status: GrantStatus;
  /** Pass back as `expectedVersion` to write only if nobody wrote in between. */
  version: number;
  refreshTokenIssuedAt: number | null;
  /** Unix milliseconds when Google said the refresh token stops working; null: no expiry given. */
  refreshTokenExpiresAt: number | null;
  createdAt: number;
  updatedAt: number;
}

/**
 * A grant as a token lookup reads it: the access token decrypted, the refresh token left sealed
 * in the store (only whether there is one). See {@link Vault.getAccessGrant}.
 */
export type AccessGrant = Omit<Grant, 'refreshToken'> & { hasRefreshToken: boolean };

/** A sign-in to store, with plaintext tokens. */
export interface SignInSave {
  user: UserProfile;
  clientId: string;
  /** Scopes as Google reported them. */
  scopes: string[];
  /** A new refresh token, or undefined to keep the stored one (a repeat sign-in). */
  refreshToken?: string | undefined;
  /** When that new refresh token expires (Unix ms; Google's `refresh_token_expires_in`), if it does. */
  refreshTokenExpiresAt?: number | null;
  accessToken: string;
  /** Unix milliseconds. */
  accessTokenExpiresAt: number;
  now: number;
}

export interface AccessTokenSave {
  accessToken: string;
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

/** What `rotateKeys` did. Counts are grant rows. */
export interface RotationReport {
  /** The key everything is now encrypted with. */
  primaryKey: string;
  /** Grant rows looked at. */
  rows: number;
  /** Rows rewritten under the primary key. */
  reencrypted: number;
  /** Rows that were already under the primary key (or hold no tokens). */
  alreadyCurrent: number;
  /** Compare-and-set attempts that lost to a concurrent write and were read again. */
  retried: number;
  /** Rows deleted while the rotation ran. */
  vanished: number;
}

export interface RotateOptions {
  /** Rows read per page. Default 500. */
  pageSize?: number;
  /** Attempts per row before giving up on a row that keeps changing. Default 10. */
  maxAttempts?: number;
  /** Told the counts so far after each row (a terminal's progress line). */
  onProgress?: (report: Readonly<RotationReport>) => void;
}

/**
 * The layer the rest of behalf uses: plaintext tokens in and out, AES-256-GCM envelopes in the
 * store (./envelope.ts), each bound to its user, client and column.
 */
export class Vault {
  constructor(
    private readonly store: Store,
    private readonly keyring: Keyring,
  ) {}

  /** The backend underneath (`sqlite` or `postgres`). */
  get storeKind(): Store['kind'] {
    return this.store.kind;
  }

  /** Changes to grants made here or by any process sharing the database. */
  get changes(): Store['changes'] {
    return this.store.changes;
  }

  /**
   * Store a sign-in in one transaction. Without `refreshToken` the stored one is kept; with one,
   * it replaces the stored one and sets the grant back to `active`.
   */
  async saveSignIn(input: SignInSave): Promise<{ user: UserRecord; grant: Grant }> {
    const { user, clientId } = input;
    const saved = await this.store.saveSignIn({
      user,
      clientId,
      scopes: input.scopes,
      refreshTokenCiphertext:
        input.refreshToken === undefined
          ? undefined
          : this.#seal('refresh_token', user.sub, clientId, input.refreshToken),
      accessTokenCiphertext: this.#seal('access_token', user.sub, clientId, input.accessToken),
      accessTokenExpiresAt: input.accessTokenExpiresAt,
      refreshTokenExpiresAt: input.refreshTokenExpiresAt ?? null,
      now: input.now,
    });
    return { user: saved.user, grant: this.#open(saved.grant) };
  }

  getUser(sub: string): Promise<UserRecord | null> {
    return this.store.getUser(sub);
  }

  /** The grant with its tokens decrypted, or null. Fails loudly on a ciphertext that does not authenticate. */
  async getGrant(sub: string, clientId: string): Promise<Grant | null> {
    const stored = await this.store.getGrant(sub, clientId);
    return stored === null ? null : this.#open(stored);
  }

  /**
   * The grant with only its access token decrypted, or null: what answering a token lookup from
   * the store needs. Decrypting the refresh token too was a fifth of a cold lookup's CPU time
   * (profiled on SQLite); a refresh reads the whole grant with {@link getGrant}. Fails loudly on an
   * access token ciphertext that does not authenticate. The fields are listed here as in #open
   * rather than spread from one shared object: in V8 that spread measured ~3 µs a call against
   * ~30 ns for the literal, on the path every cold lookup takes.
   */
  async getAccessGrant(sub: string, clientId: string): Promise<AccessGrant | null> {
    const stored = await this.store.getGrant(sub, clientId);
    if (stored === null) return null;
    return {
      sub: stored.sub,
      clientId: stored.clientId,
      hasRefreshToken: stored.refreshTokenCiphertext !== null,
      accessToken: this.#unseal('access_token', stored, stored.accessTokenCiphertext),
      accessTokenExpiresAt: stored.accessTokenExpiresAt,
      scopes: stored.scopes,
      status: stored.status,
      version: stored.version,
      refreshTokenIssuedAt: stored.refreshTokenIssuedAt,
      refreshTokenExpiresAt: stored.refreshTokenExpiresAt,
      createdAt: stored.createdAt,
      updatedAt: stored.updatedAt,
    };
  }

  /**
   * Cache a freshly minted access token. With `expectedVersion`, nothing is written (and false
   * returned) if the grant changed since it was read; a grant that is not active never takes one.
   */
  saveAccessToken(
    sub: string,
    clientId: string,
    write: AccessTokenSave,
    expectedVersion?: number,
  ): Promise<boolean> {
    return this.store.saveAccessToken(
      sub,
      clientId,
      {
        accessTokenCiphertext: this.#seal('access_token', sub, clientId, write.accessToken),
        accessTokenExpiresAt: write.accessTokenExpiresAt,
        ...(write.scopes === undefined ? {} : { scopes: write.scopes }),
        ...(write.releaseLeaseOf === undefined ? {} : { releaseLeaseOf: write.releaseLeaseOf }),
        ...(write.refreshed === undefined ? {} : { refreshed: write.refreshed }),
        now: write.now,
      },
      expectedVersion,
    );
  }

  /**
   * Set the grant status; `revoked` and `needs_consent` also drop the cached access token. A change
   * of status records its webhook event, with `reason`, in the same transaction.
   */
  setGrantStatus(
    sub: string,
    clientId: string,
    status: GrantStatus,
    now: number,
    reason?: GrantChangeReason,
  ): Promise<void> {
    return this.store.setGrantStatus(sub, clientId, status, now, reason);
  }

  /** Mark the grant revoked and erase both its tokens, in one write; false when there is no such grant. */
  revokeGrant(sub: string, clientId: string, now: number): Promise<boolean> {
    return this.store.revokeGrant(sub, clientId, now);
  }

  /** Forget the user in one transaction (grants, security state, job runs; queued jobs cancelled); false when there was no such user. */
  deleteUser(sub: string): Promise<boolean> {
    return this.store.deleteUser(sub);
  }

  /** Grants a page at a time, in (sub, clientId) order. Tokens stay encrypted: use getGrant to read them. */
  /** Active grants whose refresh token Google said expires before `before` (Unix ms). */
  countExpiringGrants(clientId: string, before: number): Promise<number> {
    return this.store.countExpiringGrants(clientId, before);
  }

  listGrants(options: {
    after?: { sub: string; clientId: string };
    limit: number;
    status?: GrantStatus;
  }): Promise<GrantPage> {
    return this.store.listGrants(options);
  }

  /**
   * Every grant (optionally of one status), read a page at a time in (sub, clientId) order: the one
   * walk over all grants (key rotation, the health sweep, jobs for a scope, security events).
   * Tokens stay encrypted: use getGrant to read them.
   */
  async *eachGrant(options: { status?: GrantStatus; pageSize?: number } = {}): AsyncGenerator<StoredGrant> {
    let after: { sub: string; clientId: string } | undefined;
    for (;;) {
      const page = await this.store.listGrants({
        limit: options.pageSize ?? 500,
        ...(options.status === undefined ? {} : { status: options.status }),
        ...(after === undefined ? {} : { after }),
      });
      yield* page.grants;
      if (page.next === null) return;
      after = page.next;
    }
  }

  /** Erase both stored tokens of a grant if it is still at `expectedVersion` (a dropped grant). */
  eraseTokens(sub: string, clientId: string, expectedVersion: number): Promise<boolean> {
    return this.store.replaceCiphertexts(
      sub,
      clientId,
      { refreshToken: null, accessToken: null },
      expectedVersion,
    );
  }

  /** See Store.acquireRefreshLease: the cross-process half of single-flight refresh. */
  /** Record how a refresh of the grant at Google ended (the admin console shows the last one). */
  recordRefresh(sub: string, clientId: string, record: RefreshRecord): Promise<void> {
    return this.store.recordRefresh(sub, clientId, record);
  }

  acquireRefreshLease(sub: string, clientId: string, holder: string, ttlMs: number): Promise<boolean> {
    return this.store.acquireRefreshLease(sub, clientId, holder, ttlMs);
  }

  renewRefreshLease(sub: string, clientId: string, holder: string, ttlMs: number): Promise<boolean> {
    return this.store.renewRefreshLease(sub, clientId, holder, ttlMs);
  }

  releaseRefreshLease(sub: string, clientId: string, holder: string): Promise<void> {
    return this.store.releaseRefreshLease(sub, clientId, holder);
  }

  /**
   * Re-encrypt every stored token under the primary key (`behalf keys rotate`). Rows are read a
   * page at a time and rewritten one by one with a compare-and-set on their version; a row that
   * changed meanwhile is read again. Old keys must stay configured until this has finished
   * without error. Running it again is harmless.
   *
   * Rows that cannot be rotated (a key that is not configured, a ciphertext that does not
   * authenticate, a row that kept changing) do not stop the walk; at the end they are reported in
   * one BehalfError whose `details.report` holds the counts and `details.failed` the rows.
   */
  async rotateKeys(options: RotateOptions = {}): Promise<RotationReport> {
    const pageSize = options.pageSize ?? 500;
    const maxAttempts = options.maxAttempts ?? 10;
    const report: RotationReport = {
      primaryKey: this.keyring.primaryId,
      rows: 0,
      reencrypted: 0,
      alreadyCurrent: 0,
      retried: 0,
      vanished: 0,
    };
    const failed: Array<{ sub: string; clientId: string; reason: string }> = [];

    for await (const row of this.eachGrant({ pageSize })) {
      report.rows++;
      const failure = await this.#rotateRow(row, maxAttempts, report);
      if (failure !== undefined) failed.push({ sub: row.sub, clientId: row.clientId, reason: failure });
      options.onProgress?.(report);
    }

    if (failed.length > 0) {
      const unknownKey = failed.some((f) => f.reason === 'unknown_key_id');
      const sample = failed
        .slice(0, 5)
        .map((f) => `${f.sub} (${f.reason})`)
        .join(', ');
      throw new BehalfError(
        unknownKey ? 'CONFIG_INVALID' : 'INTERNAL',
        `Key rotation could not re-encrypt ${failed.length} of ${report.rows} grant(s): ${sample}${failed.length > 5 ? ', …' : ''}. ` +
          `The other ${report.reencrypted + report.alreadyCurrent} are under key '${report.primaryKey}'. Keep every old key in BEHALF_ENCRYPTION_KEYS until a rotation finishes without error.`,
        { reason: 'rotation_incomplete', details: { report, failed } },
      );
    }
    return report;
  }

  /** Rotate one row; the reason when it could not be. */
  async #rotateRow(
    row: StoredGrant,
    maxAttempts: number,
    report: RotationReport,
  ): Promise<string | undefined> {
    let current: StoredGrant | null = row;
    for (let attempt = 0; attempt < maxAttempts; attempt++) {
      if (attempt > 0) {
        report.retried++;
        current = await this.store.getGrant(row.sub, row.clientId);
      }
      if (current === null) {
        report.vanished++;
        return undefined;
      }
      if (this.#isCurrent(current)) {
        report.alreadyCurrent++;
        return undefined;
      }
      let grant: Grant;
      try {
        grant = this.#open(current);
      } catch (error) {
        return error instanceof BehalfError && error.reason !== undefined ? error.reason : 'decrypt_failed';
      }
      const written = await this.store.replaceCiphertexts(
        grant.sub,
        grant.clientId,
        {
          refreshToken:
            grant.refreshToken === null
              ? null
              : this.#seal('refresh_token', grant.sub, grant.clientId, grant.refreshToken),
          accessToken:
            grant.accessToken === null
              ? null
              : this.#seal('access_token', grant.sub, grant.clientId, grant.accessToken),
        },
        current.version,
      );
      if (written) {
        report.reencrypted++;
        return undefined;
      }
    }
    return 'kept_changing';
  }

  #isCurrent(grant: StoredGrant): boolean {
    return [grant.refreshTokenCiphertext, grant.accessTokenCiphertext].every(
      (ciphertext) => ciphertext === null || envelopeKeyId(ciphertext) === this.keyring.primaryId,
    );
  }

  #seal(column: TokenColumn, sub: string, clientId: string, token: string): Buffer {
    return encryptToken(this.keyring, { column, sub, clientId }, token);
  }

  #unseal(column: TokenColumn, stored: StoredGrant, ciphertext: Buffer | null): string | null {
    return ciphertext === null
      ? null
      : decryptToken(this.keyring, { column, sub: stored.sub, clientId: stored.clientId }, ciphertext);
  }

  #open(stored: StoredGrant): Grant {
    return {
      sub: stored.sub,
      clientId: stored.clientId,
      refreshToken: this.#unseal('refresh_token', stored, stored.refreshTokenCiphertext),
      accessToken: this.#unseal('access_token', stored, stored.accessTokenCiphertext),
      accessTokenExpiresAt: stored.accessTokenExpiresAt,
      scopes: stored.scopes,
      status: stored.status,
      version: stored.version,
      refreshTokenIssuedAt: stored.refreshTokenIssuedAt,
      refreshTokenExpiresAt: stored.refreshTokenExpiresAt,
      createdAt: stored.createdAt,
      updatedAt: stored.updatedAt,
    };
  }
}
