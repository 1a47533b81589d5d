import { decryptToken, encryptToken, envelopeKeyId, type TokenColumn } from './envelope.js';
import type { Keyring } from './keyring.js';
import type { GrantPage, GrantStatus, Store, StoredGrant, UserProfile, UserRecord } from './types.js';

/** A grant with its tokens decrypted: only ever held in memory. */
export interface Grant {
  sub: string;
  clientId: string;
  refreshToken: string | null;
  accessToken: string | null;
  accessTokenExpiresAt: number | null;
  scopes: string[];
  status: GrantStatus;
  version: number;
  refreshTokenIssuedAt: number | null;
  updatedAt: number;
}

export interface RotationReport {
  primaryKey: string;
  rows: number;
  reencrypted: number;
  alreadyCurrent: number;
}

/**
 * The layer the rest of behalf uses: plaintext in and out, AES-256-GCM ciphertext in the store,
 * each ciphertext bound to its user, client and column.
 */
export class Vault {
  constructor(
    private readonly store: Store,
    private keyring: Keyring,
  ) {}

  async saveSignIn(input: {
    user: UserProfile;
    clientId: string;
    scopes: string[];
    refreshToken: string | undefined;
    accessToken: string;
    accessTokenExpiresAt: number;
    now: number;
  }): Promise<{ user: UserRecord; grant: Grant }> {
    const { user, clientId } = input;
    const seal = (column: TokenColumn, token: string) => encryptToken(this.keyring, { column, sub: user.sub, clientId }, token);
    const saved = await this.store.saveSignIn({
      user,
      clientId,
      scopes: input.scopes,
      refreshTokenCiphertext: input.refreshToken === undefined ? undefined : seal('refresh_token', input.refreshToken),
      accessTokenCiphertext: seal('access_token', input.accessToken),
      accessTokenExpiresAt: input.accessTokenExpiresAt,
      now: input.now,
    });
    return { user: saved.user, grant: this.#open(saved.grant) };
  }

  getUser(sub: string): Promise<UserRecord | null> {
    return this.store.getUser(sub);
  }

  async getGrant(sub: string, clientId: string): Promise<Grant | null> {
    const stored = await this.store.getGrant(sub, clientId);
    return stored === null ? null : this.#open(stored);
  }

  saveAccessToken(
    sub: string,
    clientId: string,
    write: { accessToken: string; accessTokenExpiresAt: number; scopes?: string[]; now: number },
    expectedVersion?: number,
  ): Promise<boolean> {
    return this.store.saveAccessToken(
      sub,
      clientId,
      {
        accessTokenCiphertext: encryptToken(this.keyring, { column: 'access_token', sub, clientId }, write.accessToken),
        accessTokenExpiresAt: write.accessTokenExpiresAt,
        ...(write.scopes === undefined ? {} : { scopes: write.scopes }),
        now: write.now,
      },
      expectedVersion,
    );
  }

  setGrantStatus(sub: string, clientId: string, status: GrantStatus, now: number): Promise<void> {
    return this.store.setGrantStatus(sub, clientId, status, now);
  }

  deleteUser(sub: string): Promise<boolean> {
    return this.store.deleteUser(sub);
  }

  listGrants(options: { after?: { sub: string; clientId: string }; limit: number; status?: GrantStatus }): Promise<GrantPage> {
    return this.store.listGrants(options);
  }

  /**
   * Re-encrypt every stored token under the primary key. Rows are rewritten one by one with a
   * compare-and-set on their version; a row that changed meanwhile is read again.
   */
  async rotateKeys(): Promise<RotationReport> {
    const report: RotationReport = { primaryKey: this.keyring.primaryId, rows: 0, reencrypted: 0, alreadyCurrent: 0 };
    let after: { sub: string; clientId: string } | undefined;
    for (;;) {
      const page = await this.store.listGrants({ limit: 500, ...(after === undefined ? {} : { after }) });
      for (const row of page.grants) {
        report.rows++;
        let current: StoredGrant | null = row;
        for (let tries = 0; current !== null && tries < 5; tries++) {
          if (this.#isCurrent(current)) {
            report.alreadyCurrent++;
            break;
          }
          const grant = this.#open(current);
          const binding = { sub: grant.sub, clientId: grant.clientId };
          const written = await this.store.replaceCiphertexts(
            grant.sub,
            grant.clientId,
            {
              refreshToken: grant.refreshToken === null ? null : encryptToken(this.keyring, { ...binding, column: 'refresh_token' }, grant.refreshToken),
              accessToken: grant.accessToken === null ? null : encryptToken(this.keyring, { ...binding, column: 'access_token' }, grant.accessToken),
            },
            current.version,
          );
          if (written) {
            report.reencrypted++;
            break;
          }
          current = await this.store.getGrant(row.sub, row.clientId);
        }
      }
      if (page.next === null) break;
      after = page.next;
    }
    return report;
  }

  #isCurrent(grant: StoredGrant): boolean {
    return [grant.refreshTokenCiphertext, grant.accessTokenCiphertext].every(
      (ct) => ct === null || envelopeKeyId(ct) === this.keyring.primaryId,
    );
  }

  #open(stored: StoredGrant): Grant {
    const open = (column: TokenColumn, ct: Buffer | null) =>
      ct === null ? null : decryptToken(this.keyring, { column, sub: stored.sub, clientId: stored.clientId }, ct);
    return {
      sub: stored.sub,
      clientId: stored.clientId,
      refreshToken: open('refresh_token', stored.refreshTokenCiphertext),
      accessToken: open('access_token', stored.accessTokenCiphertext),
      accessTokenExpiresAt: stored.accessTokenExpiresAt,
      scopes: stored.scopes,
      status: stored.status,
      version: stored.version,
      refreshTokenIssuedAt: stored.refreshTokenIssuedAt,
      updatedAt: stored.updatedAt,
    };
  }
}
