import { createHash, randomBytes, randomInt } from 'node:crypto';
import type { OffsetClock } from '../clock.js';

/** Code lifetime: Google publishes none (RFC 6749 §4.1.2 suggests ≤10 min; 10 min chosen). */
export const CODE_LIFETIME_S = 600;
/** The default `expires_in`; `POST /emulator/config` changes it for tokens issued afterwards. */
export const ACCESS_TOKEN_LIFETIME_S = 3599;
/** Bounds of `access_token_lifetime_seconds` (a day at most: longer would hide refresh bugs, not find them). */
export const ACCESS_TOKEN_LIFETIME_RANGE_S = { min: 1, max: 86_400 } as const;
export const ID_TOKEN_LIFETIME_S = 3600;
/** Unused for six months, a refresh token stops working (https://developers.google.com/identity/protocols/oauth2#expiration). */
export const REFRESH_IDLE_LIMIT_S = 183 * 86_400;
/** 100 live refresh tokens per Google Account per client; the oldest is invalidated (https://developers.google.com/identity/protocols/oauth2#expiration). */
export const MAX_REFRESH_TOKENS = 100;
/**
 * A Testing-mode app's refresh tokens: `refresh_token_expires_in` 604799 (7 days less a second, as
 * observed), dead after 7 days (https://support.google.com/cloud/answer/15549945).
 */
export const TESTING_REFRESH_LIFETIME_S = 604_799;

export const SCOPE_EMAIL = 'https://www.googleapis.com/auth/userinfo.email';
export const SCOPE_PROFILE = 'https://www.googleapis.com/auth/userinfo.profile';

export interface EmulatorUser {
  sub: string;
  email: string;
  email_verified: boolean;
  name?: string;
  given_name?: string;
  family_name?: string;
  picture?: string;
  locale?: string;
  hd?: string;
}

/** A user's authorization of this project: all of its clients share it (https://developers.google.com/identity/protocols/oauth2/web-server#incrementalAuth). */
interface Grant {
  scopes: Set<string>;
  /** A refresh token was issued under this generation (the user consented to offline access). */
  offline: boolean;
  /** Bumped on revocation: every token of an older generation is dead. */
  generation: number;
  revoked: boolean;
}

export interface CodeRecord {
  sub: string;
  /** The client that redeems the code (the server's web client). */
  clientId: string;
  /** The app client that asked for it: becomes the ID token's azp. */
  azp: string;
  scopes: string[];
  redirectUri: string;
  nonce: string | undefined;
  codeChallenge: string | undefined;
  codeChallengeMethod: 'S256' | 'plain' | undefined;
  expiresAt: number;
  used: boolean;
  issueRefreshToken: boolean;
  /** Time-based access: the refresh token's lifetime the user chose (seconds), if any. */
  refreshTokenLifetimeSeconds: number | undefined;
  generation: number;
}

export interface RefreshRecord {
  sub: string;
  clientId: string;
  azp: string;
  scopes: string[];
  generation: number;
  issuedAt: number;
  lastUsedAt: number;
  invalidated: boolean;
  /** Unix seconds when it stops working (Testing mode, time-based access); undefined: no expiry. */
  expiresAt: number | undefined;
}

export interface AccessRecord {
  sub: string;
  clientId: string;
  azp: string;
  scopes: string[];
  expiresAt: number;
  generation: number;
}

export interface IssuedToken {
  type: 'code' | 'access_token' | 'refresh_token' | 'id_token';
  value: string;
  sub: string;
  client_id: string;
  issued_at: string;
}

export interface Stats {
  token_requests: { authorization_code: number; refresh_token: number };
  refreshes_by_sub: Record<string, number>;
  api_calls: number;
  faults_served: number;
  revocations: number;
  codes_issued: number;
}

export function emptyStats(): Stats {
  return {
    token_requests: { authorization_code: 0, refresh_token: 0 },
    refreshes_by_sub: {},
    api_calls: 0,
    faults_served: 0,
    revocations: 0,
    codes_issued: 0,
  };
}

/** Everything the emulator knows, in memory. */
export class EmulatorState {
  readonly users = new Map<string, EmulatorUser>();
  readonly #grants = new Map<string, Grant>();
  readonly codes = new Map<string, CodeRecord>();
  readonly refreshTokens = new Map<string, RefreshRecord>();
  readonly accessTokens = new Map<string, AccessRecord>();
  readonly issued: IssuedToken[] = [];
  /** Users whose account Google has disabled (a pushed `account-disabled`): they cannot sign in. */
  readonly #disabled = new Set<string>();
  stats: Stats = emptyStats();
  /** `expires_in` of access tokens issued from now on. */
  accessTokenLifetimeSeconds: number = ACCESS_TOKEN_LIFETIME_S;
  /** The OAuth consent screen's publishing status: `testing` gives refresh tokens a 7-day life. */
  publishingStatus: 'testing' | 'production' = 'production';

  constructor(readonly clock: OffsetClock) {}

  nowSeconds(): number {
    return Math.floor(this.clock.now() / 1000);
  }

  addUser(
    input: { email: string } & { [K in Exclude<keyof EmulatorUser, 'email'>]?: EmulatorUser[K] | undefined },
  ): {
    user: EmulatorUser;
    created: boolean;
  } {
    const email = input.email.toLowerCase();
    const existing = [...this.users.values()].find(
      (u) => u.email === email || (input.sub !== undefined && u.sub === input.sub),
    );
    if (existing !== undefined) return { user: existing, created: false };
    // Real subs are 21-digit strings (as in https://developers.google.com/identity/openid-connect/openid-connect#an-id-tokens-payload).
    const sub = input.sub ?? `1${Array.from({ length: 20 }, () => randomInt(10)).join('')}`;
    const user: EmulatorUser = {
      ...stripUndefined(input),
      sub,
      email,
      email_verified: input.email_verified ?? true,
    };
    this.users.set(sub, user);
    return { user, created: true };
  }

  findUser(key: { sub?: string | undefined; email?: string | undefined }): EmulatorUser | undefined {
    if (key.sub !== undefined) return this.users.get(key.sub);
    const email = key.email?.toLowerCase();
    return email === undefined ? undefined : [...this.users.values()].find((u) => u.email === email);
  }

  grantOf(sub: string): Grant | undefined {
    return this.#grants.get(sub);
  }

  /**
   * Whether signing `sub` in for these scopes needs the consent screen: a first consent (or one
   * after revocation), scopes not granted yet, or offline access asked for the first time. With
   * `prompt=none` this is Google's `consent_required`
   * (https://developers.google.com/identity/openid-connect/openid-connect, `prompt`).
   */
  needsConsent(sub: string, scopes: string[], accessType: AccessType): boolean {
    const grant = this.#grants.get(sub);
    if (grant === undefined || grant.revoked) return true;
    if (normalizeScopes(scopes).some((s) => !grant.scopes.has(s))) return true;
    return accessType === 'offline' && !grant.offline;
  }

  /**
   * The user consents on the consent screen or in the Sign-In SDK: a one-time code. A refresh
   * token comes with it only for `access_type=offline`, and then only on first consent, forced
   * consent (`prompt=consent`), consent to new scopes, or the first offline consent
   * (https://developers.google.com/identity/protocols/oauth2/web-server#offline).
   */
  issueCode(input: {
    sub: string;
    clientId: string;
    azp: string;
    scopes: string[];
    /**
     * The scopes the user left ticked (granular consent): a subset of `scopes`. Basic scopes
     * (openid, email, profile) and scopes granted earlier are always kept. Default: all of them.
     */
    grantedScopes?: string[] | undefined;
    redirectUri: string;
    nonce?: string | undefined;
    prompt?: string | undefined;
    /** `online` (the authorization endpoint's default): no refresh token. */
    accessType: AccessType;
    /** false: the code covers this consent's scopes only, not earlier grants (`include_granted_scopes=false`). */
    includeGrantedScopes: boolean;
    codeChallenge?: string | undefined;
    codeChallengeMethod?: 'S256' | 'plain' | undefined;
    /** Time-based access: the user granted access for this many seconds. */
    refreshTokenLifetimeSeconds?: number | undefined;
  }): string {
    let grant = this.#grants.get(input.sub);
    const requested = normalizeScopes(input.scopes);
    const firstConsent = grant === undefined || grant.revoked;
    const newScopes = grant !== undefined && requested.some((s) => !grant!.scopes.has(s));
    const firstOffline = grant === undefined || !grant.offline;
    const forced = (input.prompt ?? '').split(' ').includes('consent');
    if (grant === undefined) {
      grant = { scopes: new Set(), offline: false, generation: 1, revoked: false };
      this.#grants.set(input.sub, grant);
    } else if (grant.revoked) {
      grant.revoked = false;
      grant.offline = false;
      grant.generation++;
      grant.scopes.clear();
    }
    const ticked = new Set(normalizeScopes(input.grantedScopes ?? input.scopes));
    const live = grant;
    // Granular consent lists only scopes not granted before; basic scopes cannot be unticked
    // (https://developers.google.com/identity/protocols/oauth2/resources/granular-permissions).
    const granted = requested.filter((s) => ticked.has(s) || isBasicScope(s) || live.scopes.has(s));
    for (const s of granted) grant.scopes.add(s);
    // Earlier grants come along only with include_granted_scopes=true (incremental authorization,
    // https://developers.google.com/identity/protocols/oauth2/web-server#incrementalAuth).
    const scopes = input.includeGrantedScopes ? orderScopes([...grant.scopes]) : granted;
    const issueRefreshToken =
      input.accessType === 'offline' && (firstConsent || newScopes || forced || firstOffline);
    if (issueRefreshToken) grant.offline = true;
    const code = `4/0A${randomToken(70)}`;
    this.codes.set(code, {
      sub: input.sub,
      clientId: input.clientId,
      azp: input.azp,
      scopes,
      redirectUri: input.redirectUri,
      nonce: input.nonce,
      codeChallenge: input.codeChallenge,
      codeChallengeMethod:
        input.codeChallenge === undefined ? undefined : (input.codeChallengeMethod ?? 'plain'),
      expiresAt: this.nowSeconds() + CODE_LIFETIME_S,
      used: false,
      issueRefreshToken,
      refreshTokenLifetimeSeconds: input.refreshTokenLifetimeSeconds,
      generation: grant.generation,
    });
    this.stats.codes_issued++;
    this.#log('code', code, input.sub, input.clientId);
    return code;
  }

  /** A new access token, and its `expires_in` (the lifetime set when it was issued). */
  issueAccessToken(input: {
    sub: string;
    clientId: string;
    azp: string;
    scopes: string[];
    generation: number;
  }): { token: string; expiresIn: number } {
    const token = `ya29.a0${randomToken(150)}`;
    const expiresIn = this.accessTokenLifetimeSeconds;
    this.accessTokens.set(token, { ...input, expiresAt: this.nowSeconds() + expiresIn });
    this.#log('access_token', token, input.sub, input.clientId);
    return { token, expiresIn };
  }

  /**
   * A refresh token, and its `refresh_token_expires_in` when it has one: the time-based access the
   * user chose, else a Testing-mode app's 7 days unless only sign-in scopes were granted
   * (https://developers.google.com/identity/protocols/oauth2#expiration).
   */
  issueRefreshToken(
    input: {
      sub: string;
      clientId: string;
      azp: string;
      scopes: string[];
      generation: number;
    },
    lifetimeSeconds?: number,
  ): { token: string; expiresIn: number | undefined } {
    const token = `1//0${randomToken(100)}`;
    const now = this.nowSeconds();
    const expiresIn =
      lifetimeSeconds ??
      (this.publishingStatus === 'testing' && !input.scopes.every(isBasicScope)
        ? TESTING_REFRESH_LIFETIME_S
        : undefined);
    this.refreshTokens.set(token, {
      ...input,
      issuedAt: now,
      lastUsedAt: now,
      invalidated: false,
      expiresAt: expiresIn === undefined ? undefined : now + expiresIn,
    });
    // Past the per-client limit, the oldest live refresh token silently stops working.
    const live = [...this.refreshTokens.values()].filter(
      (r) => r.sub === input.sub && r.clientId === input.clientId && this.isLive(r),
    );
    if (live.length > MAX_REFRESH_TOKENS) {
      live.sort((a, b) => a.issuedAt - b.issuedAt);
      for (const record of live.slice(0, live.length - MAX_REFRESH_TOKENS)) record.invalidated = true;
    }
    this.#log('refresh_token', token, input.sub, input.clientId);
    return { token, expiresIn };
  }

  logIdToken(token: string, sub: string, clientId: string): void {
    this.#log('id_token', token, sub, clientId);
  }

  /** A refresh token still usable: not invalidated, grant not revoked since, not idle too long, not expired. */
  isLive(record: RefreshRecord): boolean {
    const grant = this.#grants.get(record.sub);
    return (
      !record.invalidated &&
      (record.expiresAt === undefined || this.nowSeconds() < record.expiresAt) &&
      grant !== undefined &&
      !grant.revoked &&
      grant.generation === record.generation &&
      this.nowSeconds() - record.lastUsedAt < REFRESH_IDLE_LIMIT_S
    );
  }

  /** A valid, unexpired access token, or undefined. */
  validAccessToken(token: string): AccessRecord | undefined {
    const record = this.accessTokens.get(token);
    if (record === undefined || record.expiresAt <= this.nowSeconds()) return undefined;
    const grant = this.#grants.get(record.sub);
    if (grant === undefined || grant.revoked || grant.generation !== record.generation) return undefined;
    return record;
  }

  /** The user removes the app's access: every token of the grant dies (https://developers.google.com/identity/protocols/oauth2/web-server#tokenrevoke). */
  revokeGrant(sub: string): boolean {
    const grant = this.#grants.get(sub);
    if (grant === undefined || grant.revoked) return false;
    grant.revoked = true;
    this.stats.revocations++;
    return true;
  }

  /**
   * Every live access token of the user expires now, as if its `expires_in` had run out; refresh
   * tokens are untouched. Answers how many were live.
   */
  expireAccessTokens(sub: string): number {
    const now = this.nowSeconds();
    let expired = 0;
    for (const [token, record] of this.accessTokens) {
      if (record.sub !== sub || this.validAccessToken(token) === undefined) continue;
      record.expiresAt = now;
      expired++;
    }
    return expired;
  }

  /**
   * Google disables the account: every grant of the user is revoked, and sign-ins fail until it is
   * enabled again (https://developers.google.com/identity/protocols/risc, `account-disabled`).
   */
  disableUser(sub: string): void {
    this.#disabled.add(sub);
    this.revokeGrant(sub);
  }

  /** Sign-ins work again; tokens revoked while disabled stay revoked (a new consent is needed). */
  enableUser(sub: string): void {
    this.#disabled.delete(sub);
  }

  isDisabled(sub: string): boolean {
    return this.#disabled.has(sub);
  }

  #log(type: IssuedToken['type'], value: string, sub: string, clientId: string): void {
    this.issued.push({
      type,
      value,
      sub,
      client_id: clientId,
      issued_at: new Date(this.clock.now()).toISOString(),
    });
  }
}

export type AccessType = 'online' | 'offline';

/** Scopes a user cannot untick on the consent screen: sign-in itself. */
export function isBasicScope(scope: string): boolean {
  return scope === 'openid' || scope === SCOPE_EMAIL || scope === SCOPE_PROFILE;
}

/**
 * Scopes Google knows: openid, email, profile, and `https://www.googleapis.com/auth/…` or
 * `https://mail.google.com/` ones; anything else is Google's `invalid_scope`
 * (https://developers.google.com/identity/protocols/oauth2/scopes).
 */
export function isKnownScope(scope: string): boolean {
  return (
    ['openid', 'email', 'profile', 'https://mail.google.com/'].includes(scope) ||
    /^https:\/\/www\.googleapis\.com\/auth\/[a-z][a-z0-9._-]{0,100}$/.test(scope)
  );
}

/** `email`/`profile` come back as their full URLs, `openid` last (as Google reports them in `scope`). */
export function normalizeScopes(scopes: string[]): string[] {
  const mapped = scopes.map((s) => (s === 'email' ? SCOPE_EMAIL : s === 'profile' ? SCOPE_PROFILE : s));
  return orderScopes([...new Set(mapped)]);
}

function orderScopes(scopes: string[]): string[] {
  return [...scopes.filter((s) => s !== 'openid'), ...(scopes.includes('openid') ? ['openid'] : [])];
}

export function randomToken(length: number): string {
  return randomBytes(Math.ceil((length * 3) / 4))
    .toString('base64url')
    .slice(0, length);
}

export function stableId(label: string): string {
  return createHash('sha256').update(label).digest('hex');
}

/** The object without its undefined fields (absent rather than undefined in JSON and in state). */
export function stripUndefined<T extends object>(value: T): { [K in keyof T]: Exclude<T[K], undefined> } {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as {
    [K in keyof T]: Exclude<T[K], undefined>;
  };
}
