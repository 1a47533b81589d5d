import { createHash, randomBytes, timingSafeEqual, verify } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { NO_STORE, sendOAuthError } from './errors.js';
import type { SigningKeys } from './keys.js';
import {
  ID_TOKEN_LIFETIME_S,
  SCOPE_EMAIL,
  SCOPE_PROFILE,
  stripUndefined,
  type AccessRecord,
  type EmulatorState,
  type EmulatorUser,
} from './state.js';
import type { EmulatorClients } from './types.js';

export interface OAuthContext {
  state: EmulatorState;
  keys: SigningKeys;
  clients: EmulatorClients;
  issuer: string;
  baseUrl: () => string;
  /** Claims a fault replaces in the ID token issued for this request (see faults.ts). */
  idTokenClaims: (request: FastifyRequest) => Record<string, unknown> | undefined;
}

const TOKEN_PATHS = ['/token', '/oauth2/v4/token', '/oauth2/v3/token', '/o/oauth2/token'];

/** Google's OAuth 2.0 / OpenID Connect endpoints (https://developers.google.com/identity/protocols/oauth2/web-server, https://developers.google.com/identity/openid-connect/openid-connect). */
export function registerOAuthRoutes(app: FastifyInstance, ctx: OAuthContext): void {
  app.get('/.well-known/openid-configuration', async (_request, reply) => {
    const base = ctx.baseUrl();
    reply.header('cache-control', 'public, max-age=3600').header('access-control-allow-origin', '*');
    // Key order as Google serves it (https://developers.google.com/identity/openid-connect/openid-connect#discovery);
    // endpoints point here, and only what the emulator does is listed: no device flow, no
    // jwt-bearer grant, the code flow only.
    return {
      issuer: ctx.issuer,
      authorization_endpoint: `${base}/o/oauth2/v2/auth`,
      token_endpoint: `${base}/token`,
      userinfo_endpoint: `${base}/v1/userinfo`,
      revocation_endpoint: `${base}/revoke`,
      jwks_uri: `${base}/oauth2/v3/certs`,
      response_types_supported: ['code'],
      subject_types_supported: ['public'],
      id_token_signing_alg_values_supported: ['RS256'],
      scopes_supported: ['openid', 'email', 'profile'],
      token_endpoint_auth_methods_supported: ['client_secret_post', 'client_secret_basic'],
      claims_supported: [
        'aud',
        'email',
        'email_verified',
        'exp',
        'family_name',
        'given_name',
        'iat',
        'iss',
        'name',
        'picture',
        'sub',
      ],
      code_challenge_methods_supported: ['plain', 'S256'],
      grant_types_supported: ['authorization_code', 'refresh_token'],
    };
  });

  // RISC discovery (https://developers.google.com/identity/protocols/risc, content as served); the
  // management endpoints point here.
  app.get('/.well-known/risc-configuration', async (_request, reply) => {
    const base = ctx.baseUrl();
    reply.header('cache-control', 'public, max-age=3600');
    return {
      issuer: ctx.issuer,
      jwks_uri: `${base}/oauth2/v3/certs`,
      delivery_methods_supported: ['https://schemas.openid.net/secevent/risc/delivery-method/push'],
      add_subject_endpoint: `${base}/risc/v1beta/subjects:add`,
      get_status_endpoint: `${base}/risc/v1beta/stream/status`,
      get_configuration_endpoint: `${base}/risc/v1beta/stream`,
      update_configuration_endpoint: `${base}/risc/v1beta/stream:update`,
      verification_endpoint: `${base}/risc/v1beta/stream:verify`,
    };
  });

  app.get('/oauth2/v3/certs', async (_request, reply) => {
    reply.header(
      'cache-control',
      `public, max-age=${ctx.keys.maxAgeSeconds()}, must-revalidate, no-transform`,
    );
    return ctx.keys.jwks();
  });
  app.get('/oauth2/v1/certs', async (_request, reply) => {
    reply.header(
      'cache-control',
      `public, max-age=${ctx.keys.maxAgeSeconds()}, must-revalidate, no-transform`,
    );
    return ctx.keys.pems();
  });

  for (const path of TOKEN_PATHS) {
    app.post(path, (request, reply) => token(ctx, request, reply));
    // GET on the token endpoint: not documented; a 405 with an OAuth error is the likely answer (docs/emulator.md).
    app.get(path, async (_request, reply) =>
      sendOAuthError(reply.header('allow', 'POST'), 405, 'invalid_request', 'Method Not Allowed'),
    );
  }

  app.post('/revoke', (request, reply) => revoke(ctx, request, reply));
  app.post('/o/oauth2/revoke', (request, reply) => revoke(ctx, request, reply));
  // Old samples GET the legacy URL (https://developers.google.com/identity/protocols/oauth2/web-server#tokenrevoke); a GET to the new endpoint is a 404 HTML page.
  app.get('/o/oauth2/revoke', (request, reply) => revoke(ctx, request, reply));
  app.get('/revoke', async (_request, reply) =>
    reply
      .code(404)
      .type('text/html; charset=UTF-8')
      .send(
        '<!DOCTYPE html><html><title>Error 404 (Not Found)</title><p><b>404.</b> That’s an error.</html>',
      ),
  );

  // The legacy v1/v2 paths answer their own shapes (legacy-routes.ts).
  for (const path of ['/tokeninfo', '/oauth2/v3/tokeninfo']) {
    app.get(path, (request, reply) => tokenInfo(ctx, request, reply));
    app.post(path, (request, reply) => tokenInfo(ctx, request, reply));
  }
  for (const path of ['/v1/userinfo', '/oauth2/v3/userinfo', '/openidconnect/v1/userinfo']) {
    app.get(path, (request, reply) => userInfo(ctx, request, reply));
    app.post(path, (request, reply) => userInfo(ctx, request, reply));
  }
}

/** Form parameters, also accepted in the query string (as publicly observed); a repeated parameter is an error (RFC 6749 §3.1). */
function params(request: FastifyRequest): Record<string, string> | 'duplicate' {
  const out: Record<string, string> = {};
  const sources = [
    request.query,
    typeof request.body === 'object' && request.body !== null && !Buffer.isBuffer(request.body)
      ? request.body
      : {},
  ];
  for (const source of sources) {
    for (const [key, value] of Object.entries(source as Record<string, unknown>)) {
      if (typeof value !== 'string') return 'duplicate';
      if (key in out && out[key] !== value) return 'duplicate';
      out[key] = value;
    }
  }
  return out;
}

async function token(ctx: OAuthContext, request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
  const p = params(request);
  if (p === 'duplicate')
    return sendOAuthError(reply, 400, 'invalid_request', 'A parameter was repeated or malformed.');
  const grantType = p.grant_type ?? '';
  if (grantType !== 'authorization_code' && grantType !== 'refresh_token') {
    return sendOAuthError(reply, 400, 'unsupported_grant_type', `Invalid grant_type: ${grantType}`);
  }
  ctx.state.stats.token_requests[grantType]++;

  // Client authentication: HTTP Basic or the body (RFC 6749 §2.3.1; both listed in https://developers.google.com/identity/openid-connect/openid-connect#discovery).
  let clientId = p.client_id;
  let clientSecret = p.client_secret;
  const basic = /^Basic\s+([A-Za-z0-9+/=]+)$/i.exec(request.headers.authorization ?? '');
  if (basic?.[1] !== undefined) {
    const decoded = Buffer.from(basic[1], 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon > 0) {
      clientId = safeDecode(decoded.slice(0, colon));
      clientSecret = safeDecode(decoded.slice(colon + 1));
    }
  }
  // Google's answers to a request without a client id or secret, as publicly reported (e.g.
  // github.com/openid/AppAuth-iOS/issues/226, github.com/googleapis/google-api-nodejs-client/issues/1582);
  // an empty secret counts as missing.
  if (clientId === undefined || clientId === '')
    return sendOAuthError(reply, 400, 'invalid_request', 'Could not determine client ID from request.');
  const server = ctx.clients.server;
  const appIds: string[] = Object.values(ctx.clients.apps);
  if (clientId !== server.clientId) {
    if (appIds.includes(clientId)) {
      // Installed-app clients have no secret and cannot redeem server auth codes (publicly observed, docs/emulator.md).
      return sendOAuthError(
        reply,
        401,
        'unauthorized_client',
        'Client is unauthorized to retrieve access tokens using this method, or client not authorized for any of the scopes requested.',
      );
    }
    return sendOAuthError(reply, 401, 'invalid_client', 'The OAuth client was not found.');
  }
  if (clientSecret === undefined || clientSecret === '')
    return sendOAuthError(reply, 400, 'invalid_request', 'client_secret is missing.');
  if (!constantTimeEqual(clientSecret, server.clientSecret)) {
    return sendOAuthError(reply, 401, 'invalid_client', 'Unauthorized');
  }
  const overrides = ctx.idTokenClaims(request);
  return grantType === 'authorization_code'
    ? redeemCode(ctx, p, clientId, reply, overrides)
    : refresh(ctx, p, clientId, reply, overrides);
}

type ClaimOverrides = Record<string, unknown> | undefined;

function redeemCode(
  ctx: OAuthContext,
  p: Record<string, string>,
  clientId: string,
  reply: FastifyReply,
  overrides: ClaimOverrides,
): FastifyReply {
  const { state } = ctx;
  const codeValue = p.code;
  if (codeValue === undefined || codeValue === '')
    return sendOAuthError(reply, 400, 'invalid_request', 'Missing required parameter: code');
  const code = state.codes.get(codeValue);
  // Unknown, truncated, or still percent-encoded codes (publicly observed texts, docs/emulator.md).
  if (code === undefined) return sendOAuthError(reply, 400, 'invalid_grant', 'Malformed auth code.');
  // The current text for a redeemed code is not documented: the generic "Bad Request" (docs/emulator.md).
  if (code.used || code.expiresAt <= state.nowSeconds() || code.clientId !== clientId) {
    return sendOAuthError(reply, 400, 'invalid_grant', 'Bad Request');
  }
  // An absent redirect_uri counts as '' (what mobile codes use,
  // https://developers.google.com/identity/sign-in/android/offline-access; google-auth-library omits an empty one).
  if ((p.redirect_uri ?? '') !== code.redirectUri)
    return sendOAuthError(reply, 400, 'redirect_uri_mismatch', 'Bad Request');
  // An empty code_verifier is treated as absent (not documented; docs/emulator.md).
  const verifier = p.code_verifier === '' ? undefined : p.code_verifier;
  if (code.codeChallenge !== undefined) {
    if (verifier === undefined) return sendOAuthError(reply, 400, 'invalid_grant', 'Missing code verifier.');
    const expected =
      code.codeChallengeMethod === 'S256'
        ? createHash('sha256').update(verifier).digest('base64url')
        : verifier;
    if (!constantTimeEqual(expected, code.codeChallenge))
      return sendOAuthError(reply, 400, 'invalid_grant', 'Invalid code verifier.');
  } else if (verifier !== undefined) {
    return sendOAuthError(reply, 400, 'invalid_grant', 'code_verifier or verifier is not needed');
  }
  // Only a successful redemption uses the code (whether a failed one does is not documented).
  code.used = true;
  const grant = state.grantOf(code.sub);
  // A disabled account's grants were revoked when it was disabled; the explicit check keeps that true
  // should a code ever outlive the revocation.
  if (
    grant === undefined ||
    grant.revoked ||
    grant.generation !== code.generation ||
    state.isDisabled(code.sub)
  ) {
    return sendOAuthError(reply, 400, 'invalid_grant', 'Bad Request');
  }
  const base = { sub: code.sub, clientId, azp: code.azp, scopes: code.scopes, generation: code.generation };
  const { token: accessToken, expiresIn } = state.issueAccessToken(base);
  const refresh = code.issueRefreshToken
    ? state.issueRefreshToken(base, code.refreshTokenLifetimeSeconds)
    : undefined;
  const idToken = code.scopes.includes('openid')
    ? issueIdToken(ctx, base, accessToken, code.nonce, overrides)
    : undefined;
  // Field order as in real responses (https://developers.google.com/identity/protocols/oauth2/web-server#exchange-authorization-code).
  return reply
    .headers(NO_STORE)
    .type('application/json; charset=utf-8')
    .send({
      access_token: accessToken,
      expires_in: expiresIn,
      ...(refresh === undefined ? {} : { refresh_token: refresh.token }),
      scope: code.scopes.join(' '),
      token_type: 'Bearer',
      ...(idToken === undefined ? {} : { id_token: idToken }),
      // Testing-mode apps and time-based access
      // (https://developers.google.com/identity/protocols/oauth2/web-server#exchange-authorization-code).
      ...(refresh?.expiresIn === undefined ? {} : { refresh_token_expires_in: refresh.expiresIn }),
    });
}

function refresh(
  ctx: OAuthContext,
  p: Record<string, string>,
  clientId: string,
  reply: FastifyReply,
  overrides: ClaimOverrides,
): FastifyReply {
  const { state } = ctx;
  const value = p.refresh_token;
  if (value === undefined || value === '')
    return sendOAuthError(reply, 400, 'invalid_request', 'Missing required parameter: refresh_token');
  const record = state.refreshTokens.get(value);
  if (record === undefined || record.clientId !== clientId)
    return sendOAuthError(reply, 400, 'invalid_grant', 'Bad Request');
  if (!state.isLive(record))
    return sendOAuthError(reply, 400, 'invalid_grant', 'Token has been expired or revoked.');
  record.lastUsedAt = state.nowSeconds();
  state.stats.refreshes_by_sub[record.sub] = (state.stats.refreshes_by_sub[record.sub] ?? 0) + 1;
  const base = {
    sub: record.sub,
    clientId,
    azp: record.azp,
    scopes: record.scopes,
    generation: record.generation,
  };
  const { token: accessToken, expiresIn } = state.issueAccessToken(base);
  // https://developers.google.com/identity/openid-connect/openid-connect allows an ID token on refresh; with openid granted it comes here.
  const idToken = record.scopes.includes('openid')
    ? issueIdToken(ctx, base, accessToken, undefined, overrides)
    : undefined;
  // No refresh_token: Google does not rotate it (https://developers.google.com/identity/protocols/oauth2/web-server#offline).
  return reply
    .headers(NO_STORE)
    .type('application/json; charset=utf-8')
    .send({
      access_token: accessToken,
      expires_in: expiresIn,
      scope: record.scopes.join(' '),
      token_type: 'Bearer',
      ...(idToken === undefined ? {} : { id_token: idToken }),
      // The time the refresh token has left (not documented on refresh; docs/emulator.md).
      ...(record.expiresAt === undefined
        ? {}
        : { refresh_token_expires_in: record.expiresAt - state.nowSeconds() }),
    });
}

/** An ID token as Google issues it for a server-side exchange (https://developers.google.com/identity/openid-connect/openid-connect#an-id-tokens-payload). */
export function idTokenClaims(
  ctx: Pick<OAuthContext, 'issuer' | 'state'>,
  user: EmulatorUser,
  input: { aud: string; azp: string; scopes: string[]; accessToken?: string; nonce?: string | undefined },
): Record<string, unknown> {
  const iat = ctx.state.nowSeconds();
  const email = input.scopes.includes(SCOPE_EMAIL) || input.scopes.includes('email');
  const profile = input.scopes.includes(SCOPE_PROFILE) || input.scopes.includes('profile');
  return stripUndefined({
    iss: ctx.issuer,
    azp: input.azp,
    aud: input.aud,
    sub: user.sub,
    hd: user.hd,
    email: email ? user.email : undefined,
    email_verified: email ? user.email_verified : undefined,
    at_hash: input.accessToken === undefined ? undefined : atHash(input.accessToken),
    nonce: input.nonce,
    name: profile ? user.name : undefined,
    picture: profile ? user.picture : undefined,
    given_name: profile ? user.given_name : undefined,
    family_name: profile ? user.family_name : undefined,
    locale: profile ? user.locale : undefined,
    iat,
    exp: iat + ID_TOKEN_LIFETIME_S,
    // Real ID tokens carry a jti of 40 hex characters (observed; not in Google's claims table).
    jti: randomBytes(20).toString('hex'),
  });
}

function issueIdToken(
  ctx: OAuthContext,
  base: { sub: string; clientId: string; azp: string; scopes: string[] },
  accessToken: string,
  nonce: string | undefined,
  overrides: ClaimOverrides,
): string | undefined {
  const user = ctx.state.users.get(base.sub);
  if (user === undefined) return undefined;
  const claims = {
    ...idTokenClaims(ctx, user, {
      aud: base.clientId,
      azp: base.azp,
      scopes: base.scopes,
      accessToken,
      nonce,
    }),
    ...overrides,
  };
  const token = ctx.keys.signJwt(
    Object.fromEntries(Object.entries(claims).filter(([, value]) => value !== null)),
  );
  ctx.state.logIdToken(token, base.sub, base.clientId);
  return token;
}

/** OIDC at_hash: left half of SHA-256 of the access token, base64url (OpenID Connect Core §3.1.3.6). */
export function atHash(accessToken: string): string {
  return createHash('sha256').update(accessToken).digest().subarray(0, 16).toString('base64url');
}

async function revoke(
  ctx: OAuthContext,
  request: FastifyRequest,
  reply: FastifyReply,
): Promise<FastifyReply> {
  const p = params(request);
  const value = p === 'duplicate' ? undefined : p.token;
  if (value === undefined || value === '')
    return sendOAuthError(reply, 400, 'invalid_request', 'Missing required parameter: token');
  const { state } = ctx;
  const sub = state.refreshTokens.get(value)?.sub ?? state.accessTokens.get(value)?.sub;
  const alive =
    (state.refreshTokens.has(value) && state.isLive(state.refreshTokens.get(value)!)) ||
    state.validAccessToken(value) !== undefined;
  // A made-up or dead token: 400 invalid_token (https://developers.google.com/identity/protocols/oauth2/web-server#tokenrevoke).
  if (sub === undefined || !alive)
    return sendOAuthError(reply, 400, 'invalid_token', 'Token expired or revoked');
  // Revoking either token of a grant revokes the grant (https://developers.google.com/identity/protocols/oauth2/web-server#tokenrevoke).
  state.revokeGrant(sub);
  return reply.headers(NO_STORE).type('application/json; charset=utf-8').send({});
}

function bearer(request: FastifyRequest): string | undefined {
  const match = /^Bearer\s+(\S+)$/i.exec(request.headers.authorization ?? '');
  return match?.[1];
}

async function tokenInfo(
  ctx: OAuthContext,
  request: FastifyRequest,
  reply: FastifyReply,
): Promise<FastifyReply> {
  const p = params(request);
  const query = p === 'duplicate' ? {} : p;
  // Invalid tokens: v1's shape, as publicly observed (docs/emulator.md).
  const invalid = () => sendOAuthError(reply, 400, 'invalid_token', 'Invalid Value');
  if (query.id_token !== undefined) {
    const claims = verifyOwnIdToken(ctx, query.id_token);
    if (claims === undefined) return invalid();
    // tokeninfo answers every value as a string (https://developers.google.com/identity/openid-connect/openid-connect#validatinganidtoken), plus the header's alg and kid.
    return reply.send(Object.fromEntries(Object.entries(claims).map(([k, v]) => [k, String(v)])));
  }
  const value = query.access_token ?? bearer(request);
  const record = value === undefined ? undefined : ctx.state.validAccessToken(value);
  if (record === undefined) return invalid();
  const user = ctx.state.users.get(record.sub);
  const now = ctx.state.nowSeconds();
  const hasEmail = record.scopes.includes(SCOPE_EMAIL);
  return reply.send({
    azp: record.azp,
    aud: record.clientId,
    sub: record.sub,
    scope: record.scopes.join(' '),
    exp: String(record.expiresAt),
    expires_in: String(record.expiresAt - now),
    ...(hasEmail && user !== undefined
      ? { email: user.email, email_verified: String(user.email_verified) }
      : {}),
    access_type: 'offline',
  });
}

async function userInfo(
  ctx: OAuthContext,
  request: FastifyRequest,
  reply: FastifyReply,
): Promise<FastifyReply> {
  // Or the access_token system parameter (https://cloud.google.com/apis/docs/system-parameters).
  const query = request.query as Record<string, unknown>;
  const value = bearer(request) ?? (typeof query.access_token === 'string' ? query.access_token : undefined);
  const record: AccessRecord | undefined =
    value === undefined ? undefined : ctx.state.validAccessToken(value);
  if (record === undefined) {
    // Observed on /oauth2/v3/userinfo; the same is assumed for /v1/userinfo (docs/emulator.md).
    return sendOAuthError(
      reply.header('www-authenticate', 'Bearer realm="https://accounts.google.com/", error="invalid_token"'),
      401,
      'invalid_request',
      'Invalid Credentials',
    );
  }
  return reply.send(userInfoClaims(ctx.state.users.get(record.sub)!, record.scopes));
}

/**
 * What the userinfo endpoints tell of a user (OpenID Connect names): email claims only under the
 * email scope, profile claims only under the profile scope
 * (https://developers.google.com/identity/openid-connect/openid-connect#obtaininguserprofileinformation).
 */
export function userInfoClaims(user: EmulatorUser, scopes: readonly string[]) {
  const email = scopes.includes(SCOPE_EMAIL);
  const profile = scopes.includes(SCOPE_PROFILE);
  return stripUndefined({
    sub: user.sub,
    name: profile ? user.name : undefined,
    given_name: profile ? user.given_name : undefined,
    family_name: profile ? user.family_name : undefined,
    picture: profile ? user.picture : undefined,
    email: email ? user.email : undefined,
    email_verified: email ? user.email_verified : undefined,
    locale: profile ? user.locale : undefined,
    hd: user.hd,
  });
}

/** Checks a JWT the emulator signed (for tokeninfo?id_token=). */
export function verifyOwnIdToken(ctx: OAuthContext, token: string): Record<string, unknown> | undefined {
  const parts = token.split('.');
  if (parts.length !== 3) return undefined;
  try {
    const header = JSON.parse(Buffer.from(parts[0]!, 'base64url').toString('utf8')) as {
      kid?: string;
      alg?: string;
    };
    const jwk = ctx.keys.jwks().keys.find((k) => k.kid === header.kid);
    if (jwk === undefined || header.alg !== 'RS256') return undefined;
    const ok = verify(
      'RSA-SHA256',
      Buffer.from(`${parts[0]}.${parts[1]}`),
      { key: jwk, format: 'jwk' },
      Buffer.from(parts[2]!, 'base64url'),
    );
    if (!ok) return undefined;
    const claims = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8')) as Record<
      string,
      unknown
    >;
    if (typeof claims.exp !== 'number' || claims.exp <= ctx.state.nowSeconds()) return undefined;
    return { ...claims, alg: header.alg, kid: header.kid };
  } catch {
    return undefined;
  }
}

function constantTimeEqual(a: string, b: string): boolean {
  const x = createHash('sha256').update(a).digest();
  const y = createHash('sha256').update(b).digest();
  return timingSafeEqual(x, y);
}

function safeDecode(value: string): string {
  try {
    return decodeURIComponent(value.replace(/\+/g, ' '));
  } catch {
    return value;
  }
}
