import type { Clock } from '../clock.js';
import { BehalfError } from '../errors.js';
import type { GoogleOAuthClient } from '../google/oauth.js';
import { normalizeScopes } from '../google/scopes.js';
import type { IdTokenVerifier, VerifiedIdToken } from '../idtoken/index.js';
import type { UserProfile, Vault } from '../vault/index.js';
import type { GrantStatus } from '../vault/types.js';

export interface SignInInput {
  /** The one-time server auth code the app got from Google Sign-In. */
  code: string;
  /** '' for iOS/Android codes (the default), 'postmessage' for the web popup flow, or a configured URI. */
  redirectUri?: string;
  /** PKCE verifier, when the app's authorization request carried a challenge. */
  codeVerifier?: string;
}

/** What the app needs to know after a sign-in. */
export interface SignInResult {
  user: UserProfile;
  /** True on the first sign-in of this `sub`. */
  created: boolean;
  grant: {
    status: GrantStatus;
    /** A refresh token is stored: behalf can act for the user while they are offline. */
    offlineAccess: boolean;
    /** Google sent a new refresh token with this sign-in (first consent or forced consent). */
    refreshTokenReceived: boolean;
    /** Scopes as Google reported them for this sign-in. */
    scopes: string[];
    /** Required scopes the user did not grant. */
    missingScopes: string[];
  };
  /**
   * What the app should do next: nothing; ask for the missing scopes; or sign in again with
   * forced consent (`prompt=consent` / `forceCodeForRefreshToken`) because no refresh token is stored.
   */
  action: 'none' | 'request_scopes' | 'force_consent';
}

export interface SignInDeps {
  oauth: GoogleOAuthClient;
  verifier: IdTokenVerifier;
  vault: Vault;
  clock: Clock;
  requiredScopes: string[];
  /** Redirect URIs a sign-in may name besides '' and 'postmessage'. */
  redirectUris: string[];
}

// Google's codes are at most 256 bytes (https://developers.google.com/identity/protocols/oauth2#size);
// anything far longer is not a code.
const MAX_CODE_LENGTH = 512;

/**
 * The server-side access flow (https://developers.google.com/identity/sign-in/ios/offline-access,
 * https://developers.google.com/identity/protocols/oauth2/web-server#exchange-authorization-code): redeem the code, verify the ID token strictly,
 * store the user and the encrypted tokens, and only then answer.
 */
export class SignInService {
  constructor(private readonly deps: SignInDeps) {}

  async signIn(input: SignInInput): Promise<SignInResult> {
    const code = checkCode(input.code);
    const redirectUri = this.#checkRedirectUri(input.redirectUri ?? '');
    if (input.codeVerifier !== undefined && !/^[A-Za-z0-9._~-]{43,128}$/.test(input.codeVerifier)) {
      throw new BehalfError(
        'INVALID_REQUEST',
        'code_verifier must be 43-128 characters of [A-Za-z0-9._~-] (RFC 7636).',
      );
    }

    const tokens = await this.deps.oauth.exchangeCode({
      code,
      redirectUri,
      ...(input.codeVerifier === undefined ? {} : { codeVerifier: input.codeVerifier }),
    });
    if (tokens.idToken === undefined) {
      throw new BehalfError(
        'ID_TOKEN_INVALID',
        'Google returned no ID token: the code was issued without the openid scope. Request openid, email and profile in Google Sign-In.',
        { reason: 'missing_id_token' },
      );
    }
    const claims = await this.deps.verifier.verify(tokens.idToken, { accessToken: tokens.accessToken });
    const now = this.deps.clock.now();
    const [existingUser, before] = await Promise.all([
      this.deps.vault.getUser(claims.sub),
      this.deps.vault.getGrant(claims.sub, this.deps.oauth.clientId),
    ]);
    const scopes = normalizeScopes(tokens.scopes);

    await this.deps.vault.saveSignIn({
      user: profileFrom(claims),
      clientId: this.deps.oauth.clientId,
      scopes,
      refreshToken: tokens.refreshToken,
      // Testing-mode clients' and time-based grants' refresh tokens expire
      // (https://developers.google.com/identity/protocols/oauth2/web-server#exchange-authorization-code).
      refreshTokenExpiresAt:
        tokens.refreshToken !== undefined && tokens.refreshTokenExpiresIn !== undefined
          ? now + tokens.refreshTokenExpiresIn * 1000
          : null,
      accessToken: tokens.accessToken,
      accessTokenExpiresAt: now + tokens.expiresIn * 1000,
      now,
    });

    const offlineAccess =
      tokens.refreshToken !== undefined || (before?.refreshToken != null && before.status === 'active');
    const missingScopes = this.deps.requiredScopes.filter((scope) => !scopes.includes(scope));
    return {
      user: profileFrom(claims),
      created: existingUser === null,
      grant: {
        status: offlineAccess ? 'active' : 'needs_consent',
        offlineAccess,
        refreshTokenReceived: tokens.refreshToken !== undefined,
        scopes,
        missingScopes,
      },
      action: !offlineAccess ? 'force_consent' : missingScopes.length > 0 ? 'request_scopes' : 'none',
    };
  }

  #checkRedirectUri(uri: string): string {
    if (uri === '' || uri === 'postmessage' || this.deps.redirectUris.includes(uri)) return uri;
    throw new BehalfError(
      'INVALID_REQUEST',
      "redirect_uri must be '' (iOS/Android), 'postmessage' (web popup) or one of the configured redirect URIs.",
      { reason: 'redirect_uri_not_allowed' },
    );
  }
}

function checkCode(code: string): string {
  if (code.length === 0)
    throw new BehalfError('INVALID_REQUEST', 'code is required.', { reason: 'missing_code' });
  if (code.length > MAX_CODE_LENGTH || !/^[\x21-\x7e]+$/.test(code)) {
    throw new BehalfError('CODE_INVALID', 'The server auth code is malformed.', { reason: 'malformed_code' });
  }
  // A code whose "/" is still percent-encoded ("4%2F...") always fails at Google: it was encoded
  // twice, once more than the form body's encoding (https://www.rfc-editor.org/rfc/rfc6749#appendix-B); apps
  // that double-encode are common, so decode that one known shape instead of burning the code.
  if (/^4%2F/i.test(code)) {
    try {
      return decodeURIComponent(code);
    } catch {
      throw new BehalfError('CODE_INVALID', 'The server auth code is malformed.', {
        reason: 'malformed_code',
      });
    }
  }
  return code;
}

export function profileFrom(claims: VerifiedIdToken): UserProfile {
  return {
    sub: claims.sub,
    email: claims.email,
    emailVerified: claims.emailVerified,
    name: claims.name,
    givenName: claims.givenName,
    familyName: claims.familyName,
    picture: claims.picture,
    locale: claims.locale,
    hd: claims.hd,
  };
}
