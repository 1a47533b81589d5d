import {
  BehalfAuthClient,
  type GoogleHostAllowList,
  type UserFetch,
  type UserRequest,
  type UserRequestAnswer,
  type UserRequestInit,
} from './calls/index.js';
import type { JobRunnerSettings } from './app.js';
import type { Clock } from './clock.js';
import type { JobParamsByName, JobRunner } from './jobs/index.js';
import type { ReceivedEvent, SecurityEventReceiver, SecurityLog, UserSecurity } from './risc/index.js';
import { BehalfError, isBehalfError } from './errors.js';
import type { GoogleOAuthClient } from './google/oauth.js';
import type { IdTokenVerifier, VerifiedIdToken } from './idtoken/index.js';
import type { SignInInput, SignInResult, SignInService } from './signin/index.js';
import type { AccessToken, SweepOptions, SweepReport, TokenService } from './tokens/index.js';
import type { GrantStatus, UserRecord, Vault } from './vault/index.js';
import type { Webhooks } from './webhooks/index.js';

/** What a caller of {@link Behalf.sweep} may choose. */
export type BehalfSweepOptions = Pick<SweepOptions, 'force' | 'concurrency' | 'onProgress' | 'signal'>;

export interface GrantSummary {
  status: GrantStatus;
  /** A refresh token is stored and usable. */
  offlineAccess: boolean;
  scopes: string[];
  /** When Google said the refresh token expires (Unix ms: Testing-mode or time-based access), or null. */
  refreshTokenExpiresAt: number | null;
}

/**
 * behalf as a library: everything the HTTP server does, callable from a Node backend that embeds
 * it. Built by `createBehalf` (./app.ts), which owns the wiring.
 */
export class Behalf {
  constructor(
    private readonly parts: {
      clock: Clock;
      oauth: GoogleOAuthClient;
      verifier: IdTokenVerifier;
      signInService: SignInService;
      tokens: TokenService;
      vault: Vault;
      userFetch: UserFetch;
      userRequest: UserRequest;
      allowList: GoogleHostAllowList;
      googleApiUrl: string;
      securityEvents: SecurityEventReceiver;
      securityLog: SecurityLog;
      webhooks: Webhooks;
      createJobRunner: (options?: JobRunnerSettings) => JobRunner;
      sweep: (options?: BehalfSweepOptions) => Promise<SweepReport>;
      close: () => Promise<void>;
    },
  ) {}

  get clock(): Clock {
    return this.parts.clock;
  }

  /** The server (web) OAuth client id codes are redeemed with. */
  get clientId(): string {
    return this.parts.oauth.clientId;
  }

  /** Redeem a server auth code from an app, verify the ID token, store the user and tokens. */
  signIn(input: SignInInput): Promise<SignInResult> {
    return this.parts.signInService.signIn(input);
  }

  /** Verify a Google ID token an app sent (same strict checks as sign-in), with the user's grant status. */
  async verifyIdToken(
    idToken: string,
    options: { nonce?: string } = {},
  ): Promise<{ claims: VerifiedIdToken; grant: GrantSummary | null }> {
    const claims = await this.parts.verifier.verify(idToken, options);
    return { claims, grant: await this.#grantSummary(claims.sub) };
  }

  /** A valid access token for the user, refreshed when expired or about to expire. */
  getAccessToken(sub: string): Promise<AccessToken> {
    return this.parts.tokens.getAccessToken(sub);
  }

  /**
   * `fetch` a Google API as the user: adds their access token, refreshes and retries once on 401,
   * honours Retry-After on 429/503 and retries idempotent requests on transient errors. Only Google
   * API hosts (and the configured API base URL) can be called.
   */
  fetch(sub: string, url: string | URL, init?: RequestInit): Promise<Response> {
    return this.parts.userFetch(sub, url, init);
  }

  /**
   * `fetch`'s rules on Node streams (undici's `request`): for proxies and large transfers, where a
   * stream body goes out and the answer comes back as a Readable, undecoded, headers as Google sent them.
   */
  request(sub: string, url: string | URL, init?: UserRequestInit): Promise<UserRequestAnswer> {
    return this.parts.userRequest(sub, url, init);
  }

  /**
   * An auth client for the `googleapis` package, acting as the user:
   * `google.drive({ version: 'v3', auth: behalf.authFor(sub) })`.
   */
  authFor(sub: string): BehalfAuthClient {
    return new BehalfAuthClient(sub, this.parts.tokens, this.parts.allowList);
  }

  /**
   * A runner for background work done for users while they are offline, over behalf's database:
   * `define` jobs, `start()`, then `enqueue(name, sub, params)` or `enqueueForScope(name, scope)`.
   * `params` is checked against the job's parameter type: chain `define(...)` (each returns the
   * runner knowing that job), or declare every job's up front, `createJobRunner<{ resize: { width: number } }>()`.
   */
  createJobRunner<Jobs extends JobParamsByName = JobParamsByName>(
    options?: JobRunnerSettings,
  ): JobRunner<Jobs> {
    // One runner class for every typing: the types only describe which names and params it takes.
    return this.parts.createJobRunner(options) as unknown as JobRunner<Jobs>;
  }

  /**
   * The token health sweep: checks every grant (refreshing where due) and reports who must sign
   * in again; `onProgress` sees the counts as it goes, and `signal` stops it.
   */
  sweep(options?: BehalfSweepOptions): Promise<SweepReport> {
    return this.parts.sweep(options);
  }

  /**
   * Signed webhooks to the app's backend (docs/webhooks.md): add, list and remove endpoints, see
   * recent deliveries, and `start()` sending them (`behalf serve` does).
   */
  get webhooks(): Webhooks {
    return this.parts.webhooks;
  }

  /** The Google APIs base URL (`https://www.googleapis.com`, or the emulator's). */
  get googleApiUrl(): string {
    return this.parts.googleApiUrl;
  }

  async getUser(
    sub: string,
  ): Promise<{ user: UserRecord; grant: GrantSummary | null; security: UserSecurity | null }> {
    const user = await this.parts.vault.getUser(sub);
    if (user === null)
      throw new BehalfError('USER_NOT_FOUND', 'No such user: they have not signed in, or were deleted.');
    const [grant, security] = await Promise.all([
      this.#grantSummary(sub),
      this.parts.securityLog.getState(sub),
    ]);
    return { user, grant, security };
  }

  /**
   * Act on a security event token Google pushed (Cross-Account Protection / RISC), after verifying
   * it as strictly as an ID token. Duplicates (Google redelivers) are acted on once.
   */
  async receiveSecurityEvent(
    token: string,
  ): Promise<{ jti: string; duplicate: boolean; events: ReceivedEvent[] }> {
    try {
      return await this.parts.securityEvents.receive(token);
    } catch (error) {
      if (isBehalfError(error) && error.code === 'ID_TOKEN_INVALID') {
        throw new BehalfError('SECURITY_EVENT_INVALID', error.message, {
          ...(error.reason === undefined ? {} : { reason: error.reason }),
        });
      }
      throw error;
    }
  }

  /**
   * Sign the user out of offline access: revoke the grant at Google, then erase the stored tokens
   * (the grant is kept as `revoked`, the profile stays). A new sign-in with consent restores it.
   */
  async signOut(sub: string): Promise<{ revokedAtGoogle: boolean }> {
    const { vault, oauth, clock } = this.parts;
    const grant = await vault.getGrant(sub, oauth.clientId);
    if (grant === null) throw new BehalfError('USER_NOT_FOUND', 'No grant is stored for this user.');
    const revokedAtGoogle = await this.#revokeAtGoogle(grant);
    // One write; every instance's token cache hears of it (see src/database/grant-changes.ts).
    await vault.revokeGrant(sub, oauth.clientId, clock.now());
    return { revokedAtGoogle };
  }

  /**
   * Revoke the user's grant at Google, then delete everything stored about them in one
   * transaction (profile, grants, security state, job runs; their queued jobs are cancelled). If
   * Google cannot be reached the data is kept and a retryable error is raised, so a revocation is
   * never skipped.
   */
  async deleteUser(sub: string): Promise<{ revokedAtGoogle: boolean }> {
    const { vault, oauth } = this.parts;
    const [user, grant] = await Promise.all([vault.getUser(sub), vault.getGrant(sub, oauth.clientId)]);
    if (user === null && grant === null)
      throw new BehalfError('USER_NOT_FOUND', 'No such user: they have not signed in, or were deleted.');
    const revokedAtGoogle = grant === null ? false : await this.#revokeAtGoogle(grant);
    await vault.deleteUser(sub);
    return { revokedAtGoogle };
  }

  close(): Promise<void> {
    return this.parts.close();
  }

  /** Revoke a grant at Google; unreachable Google is an error (retry), any other refusal means nothing is left to revoke. */
  async #revokeAtGoogle(grant: {
    refreshToken: string | null;
    accessToken: string | null;
    status: GrantStatus;
  }): Promise<boolean> {
    const token = grant.refreshToken ?? grant.accessToken;
    if (token === null || grant.status === 'revoked') return false;
    try {
      return (await this.parts.oauth.revokeToken(token)) === 'revoked';
    } catch (error) {
      if (isBehalfError(error) && error.code === 'GOOGLE_UNAVAILABLE') throw error;
      return false;
    }
  }

  async #grantSummary(sub: string): Promise<GrantSummary | null> {
    const grant = await this.parts.vault.getGrant(sub, this.parts.oauth.clientId);
    if (grant === null) return null;
    return {
      status: grant.status,
      offlineAccess: grant.status === 'active' && grant.refreshToken !== null,
      scopes: grant.scopes,
      refreshTokenExpiresAt: grant.refreshTokenExpiresAt,
    };
  }
}
