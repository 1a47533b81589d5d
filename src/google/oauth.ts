import { z } from 'zod';
import type { Clock } from '../clock.js';
import { BehalfError, type ErrorCode, type GoogleErrorFields } from '../errors.js';
import type { GoogleDiscovery } from './discovery.js';
import {
  parseOAuthErrorBody,
  parseRetryAfter,
  sendToGoogle,
  type FetchLike,
  type GoogleErrorBody,
  type GoogleObserver,
  type RefreshOutcome,
} from './http.js';

export interface OAuthClientCredentials {
  clientId: string;
  clientSecret: string;
}

/** A token endpoint answer, in behalf's own names (wire names stay in this file). */
export interface TokenSet {
  accessToken: string;
  /** Seconds the access token lives from now, as Google reported it. */
  expiresIn: number;
  refreshToken: string | undefined;
  /** Granted scopes exactly as Google reported them. */
  scopes: string[];
  idToken: string | undefined;
  /** Seconds until the refresh token expires (time-based access, Testing-mode apps). */
  refreshTokenExpiresIn: number | undefined;
}

// Size limits are Google's (access ≤ 2048 bytes, refresh ≤ 512,
// https://developers.google.com/identity/protocols/oauth2#size); a little headroom is allowed.
const TokenResponse = z.object({
  access_token: z.string().min(1).max(4096),
  expires_in: z
    .number()
    .int()
    .positive()
    .max(86_400 * 7),
  refresh_token: z.string().min(1).max(1024).optional(),
  scope: z.string().max(8192).optional(),
  token_type: z.string().refine((value) => value.toLowerCase() === 'bearer', 'token_type must be Bearer'),
  id_token: z.string().min(1).max(16_384).optional(),
  refresh_token_expires_in: z.number().int().nonnegative().optional(),
});

export type TokenOperation = 'exchange' | 'refresh';

/**
 * Talks to Google's token and revocation endpoints: build the request (client_secret_post, as
 * google-auth-library does), send it through the injected client, parse and validate the answer,
 * and turn Google's errors into behalf's stable codes.
 */
export class GoogleOAuthClient {
  constructor(
    private readonly credentials: OAuthClientCredentials,
    private readonly discovery: GoogleDiscovery,
    private readonly fetchImpl: FetchLike,
    private readonly clock: Clock,
    private readonly timeoutMs = 10_000,
    private readonly observer?: GoogleObserver,
  ) {}

  get clientId(): string {
    return this.credentials.clientId;
  }

  /**
   * Redeem a one-time server auth code
   * (https://developers.google.com/identity/protocols/oauth2/web-server#exchange-authorization-code).
   * Not retried: a code works once.
   */
  async exchangeCode(input: { code: string; redirectUri: string; codeVerifier?: string }): Promise<TokenSet> {
    const form = new URLSearchParams({
      grant_type: 'authorization_code',
      code: input.code,
      client_id: this.credentials.clientId,
      client_secret: this.credentials.clientSecret,
      redirect_uri: input.redirectUri,
    });
    if (input.codeVerifier !== undefined) form.set('code_verifier', input.codeVerifier);
    return this.#postToken(form, 'exchange');
  }

  /**
   * Mint a new access token from a refresh token
   * (https://developers.google.com/identity/protocols/oauth2/web-server#offline). One attempt;
   * callers decide on retries.
   */
  async refreshAccessToken(refreshToken: string): Promise<TokenSet> {
    const form = new URLSearchParams({
      grant_type: 'refresh_token',
      refresh_token: refreshToken,
      client_id: this.credentials.clientId,
      client_secret: this.credentials.clientSecret,
    });
    try {
      const tokens = await this.#postToken(form, 'refresh');
      this.observer?.refresh('ok');
      return tokens;
    } catch (error) {
      this.observer?.refresh(refreshOutcome(error));
      throw error;
    }
  }

  /**
   * Revoke a token at Google (https://developers.google.com/identity/protocols/oauth2/web-server#tokenrevoke): revoking the refresh token ends the whole grant.
   * Returns 'revoked', or 'already_invalid' when Google no longer knows the token (also success
   * from the caller's point of view: nothing is left to revoke).
   */
  async revokeToken(token: string): Promise<'revoked' | 'already_invalid'> {
    const { revocationEndpoint } = await this.discovery.endpoints();
    const response = await sendToGoogle(
      this.fetchImpl,
      revocationEndpoint,
      {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ token }).toString(),
      },
      this.timeoutMs,
      'token revocation',
      (seconds) => this.observer?.request('revocation', seconds),
    );
    const text = await response.text().catch(() => '');
    if (response.ok) return 'revoked';
    const google = parseOAuthErrorBody(text);
    if (
      response.status === 400 &&
      (google?.error === 'invalid_token' || google?.error === 'invalid_request')
    ) {
      return 'already_invalid';
    }
    throw this.#errorFor('refresh', response, google, 'revocation');
  }

  async #postToken(form: URLSearchParams, operation: TokenOperation): Promise<TokenSet> {
    const { tokenEndpoint } = await this.discovery.endpoints();
    const response = await sendToGoogle(
      this.fetchImpl,
      tokenEndpoint,
      {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
        body: form.toString(),
      },
      this.timeoutMs,
      operation === 'exchange' ? 'code exchange' : 'token refresh',
      (seconds) => this.observer?.request('token', seconds),
    );
    const text = await response.text().catch(() => '');
    if (!response.ok) throw this.#errorFor(operation, response, parseOAuthErrorBody(text), 'token endpoint');

    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    const parsed = TokenResponse.safeParse(json);
    if (!parsed.success) {
      throw new BehalfError(
        'GOOGLE_ERROR',
        `Google's token endpoint answered with a malformed token response.`,
        {
          reason: 'malformed_response',
        },
      );
    }
    const body = parsed.data;
    return {
      accessToken: body.access_token,
      expiresIn: body.expires_in,
      refreshToken: body.refresh_token,
      scopes: body.scope === undefined ? [] : body.scope.split(' ').filter((s) => s.length > 0),
      idToken: body.id_token,
      refreshTokenExpiresIn: body.refresh_token_expires_in,
    };
  }

  #errorFor(
    operation: TokenOperation,
    response: Response,
    google: ReturnType<typeof parseOAuthErrorBody>,
    what: string,
  ): BehalfError {
    const status = response.status;
    const retryAfter = parseRetryAfter(response.headers.get('retry-after'), this.clock.now());
    const fields = google === undefined ? undefined : { ...toFields(google), status };
    // Rate limits (429, https://www.rfc-editor.org/rfc/rfc6585#section-4, or 403, sometimes with an
    // HTML body: https://cloud.google.com/apis/design/errors) and server errors: try again later.
    if (status >= 500 || status === 429 || (status === 403 && google === undefined)) {
      return new BehalfError(
        'GOOGLE_UNAVAILABLE',
        `Google's ${what} is unavailable (HTTP ${status}); retry later.`,
        {
          google: fields,
          retryAfter: retryAfter ?? 1,
          reason: status === 429 || status === 403 ? 'rate_limited' : 'server_error',
        },
      );
    }
    const { code, reason, message } = classify(operation, google);
    return new BehalfError(code, message, { google: fields, reason });
  }
}

/** A failed refresh as the metrics count it (see {@link RefreshOutcome}). */
function refreshOutcome(error: unknown): RefreshOutcome {
  if (!(error instanceof BehalfError)) return 'error';
  if (error.code === 'NEEDS_CONSENT') return 'invalid_grant';
  return error.code === 'GOOGLE_UNAVAILABLE' ? 'transient' : 'error';
}

function toFields(google: GoogleErrorBody): GoogleErrorFields {
  const { error, errorDescription, errorSubtype } = google;
  return {
    error,
    ...(errorDescription === undefined ? {} : { errorDescription }),
    ...(errorSubtype === undefined ? {} : { errorSubtype }),
  };
}

/**
 * Google's token endpoint errors as behalf's codes. Three get their own reason and message, because
 * what fixes them is not what fixes their neighbours
 * (https://developers.google.com/identity/protocols/oauth2/web-server#authorization-errors,
 * https://developers.google.com/identity/protocols/oauth2#expiration):
 * - `invalid_grant` with `error_subtype: invalid_rapt`: a Workspace session-control policy wants the
 *   user to reauthenticate; the grant is dead until they sign in again (`reauth_required`).
 * - `deleted_client`: this server's OAuth client was deleted in the Cloud console.
 * - `admin_policy_enforced`: the user's Workspace administrator restricted the app's scopes.
 */
function classify(
  operation: TokenOperation,
  google: GoogleErrorBody | undefined,
): { code: ErrorCode; reason: string | undefined; message: string } {
  const error = google?.error;
  if (operation === 'refresh' && error === 'invalid_grant' && google?.errorSubtype === 'invalid_rapt') {
    return {
      code: 'NEEDS_CONSENT',
      reason: 'reauth_required',
      message:
        "The user's Google Workspace session-control policy requires them to sign in again (reauthentication, invalid_rapt): ask them to sign in with Google again.",
    };
  }
  if (error === 'deleted_client') {
    return {
      code: 'CLIENT_MISCONFIGURED',
      reason: 'deleted_client',
      message:
        "Google says this server's OAuth client was deleted in the Google Cloud console (Credentials): restore it (possible for 30 days after deletion) or configure a new client.",
    };
  }
  if (error === 'admin_policy_enforced') {
    return {
      code: 'NEEDS_CONSENT',
      reason: 'admin_policy_enforced',
      message:
        "The user's Google Workspace administrator restricted the scopes this app asks for (admin_policy_enforced): the administrator must allow the app (Admin console, API controls); then the user signs in again.",
    };
  }
  const code = codeFor(operation, error);
  return { code, reason: error, message: messageFor(code, operation) };
}

function codeFor(operation: TokenOperation, error: string | undefined): ErrorCode {
  switch (error) {
    case 'invalid_grant':
      return operation === 'exchange' ? 'CODE_INVALID' : 'NEEDS_CONSENT';
    case 'redirect_uri_mismatch':
      return 'REDIRECT_URI_MISMATCH';
    case 'invalid_client':
    case 'unauthorized_client':
    case 'org_internal':
      return 'CLIENT_MISCONFIGURED';
    case 'invalid_request':
      return operation === 'exchange' ? 'CODE_INVALID' : 'GOOGLE_ERROR';
    default:
      return 'GOOGLE_ERROR';
  }
}

function messageFor(code: ErrorCode, operation: TokenOperation): string {
  switch (code) {
    case 'CODE_INVALID':
      return 'The server auth code is invalid, expired or already used. Get a new one from Google Sign-In and send it once.';
    case 'NEEDS_CONSENT':
      return "Google no longer accepts this user's grant (revoked or expired). Ask the user to sign in again with consent.";
    case 'REDIRECT_URI_MISMATCH':
      return "The redirect URI does not match the one the code was issued for: '' for iOS/Android codes, 'postmessage' for the web popup flow.";
    case 'CLIENT_MISCONFIGURED':
      return "Google rejected this server's OAuth client (client id/secret, client type or policy). Check the client secret file.";
    default:
      return `Google refused the ${operation === 'exchange' ? 'code exchange' : 'token refresh'}.`;
  }
}
