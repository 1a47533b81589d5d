import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { API_ERRORS, sendOAuthError } from './errors.js';
import { userInfoClaims, verifyOwnIdToken, type OAuthContext } from './oauth-routes.js';
import { SCOPE_EMAIL, stripUndefined, type AccessRecord } from './state.js';

/**
 * Google's legacy OAuth2 API (`oauth2` v2, which googleapis' `oauth2('v2')` client calls; its
 * discovery document: https://www.googleapis.com/discovery/v1/apis/oauth2/v2/rest): its own field
 * names, not the OpenID Connect ones the current endpoints answer (`/oauth2/v3/userinfo`,
 * `/oauth2/v3/tokeninfo`, `/v1/userinfo`).
 *
 * - userinfo (`/oauth2/v1/userinfo`, `/oauth2/v2/userinfo`, `/userinfo/v2/me`): `id`, `email`,
 *   `verified_email`, `name`, `given_name`, `family_name`, `picture`, `locale`, `hd`.
 * - tokeninfo (`/oauth2/v1/tokeninfo`, `/oauth2/v2/tokeninfo`): `issued_to`, `audience`, `user_id`,
 *   `scope`, `expires_in` (a number), `email`, `verified_email` (a boolean), `access_type`.
 *
 * The token may come as `Authorization: Bearer` or as the `access_token` parameter, in the query or
 * the form body (https://cloud.google.com/apis/docs/system-parameters).
 */
export function registerLegacyRoutes(app: FastifyInstance, ctx: OAuthContext): void {
  for (const path of ['/oauth2/v1/tokeninfo', '/oauth2/v2/tokeninfo']) {
    app.get(path, (request, reply) => legacyTokenInfo(ctx, request, reply));
    app.post(path, (request, reply) => legacyTokenInfo(ctx, request, reply));
  }
  for (const path of ['/oauth2/v1/userinfo', '/oauth2/v2/userinfo', '/userinfo/v2/me']) {
    app.get(path, (request, reply) => legacyUserInfo(ctx, request, reply));
    app.post(path, (request, reply) => legacyUserInfo(ctx, request, reply));
  }
}

/** `access_token` / `id_token` from the query or a form body; a parameter given twice counts as absent. */
function parameter(request: FastifyRequest, name: string): string | undefined {
  for (const source of [request.query, request.body]) {
    if (typeof source !== 'object' || source === null || Buffer.isBuffer(source)) continue;
    const value = (source as Record<string, unknown>)[name];
    if (typeof value === 'string' && value !== '') return value;
  }
  return undefined;
}

function accessToken(ctx: OAuthContext, request: FastifyRequest): AccessRecord | undefined {
  const header = /^Bearer\s+(\S+)$/i.exec(request.headers.authorization ?? '')?.[1];
  const value = header ?? parameter(request, 'access_token');
  return value === undefined ? undefined : ctx.state.validAccessToken(value);
}

async function legacyTokenInfo(
  ctx: OAuthContext,
  request: FastifyRequest,
  reply: FastifyReply,
): Promise<FastifyReply> {
  const now = ctx.state.nowSeconds();
  const invalid = () => sendOAuthError(reply, 400, 'invalid_token', 'Invalid Value');
  const idToken = parameter(request, 'id_token');
  if (idToken !== undefined) {
    const claims = verifyOwnIdToken(ctx, idToken);
    if (claims === undefined) return invalid();
    return reply.send(
      stripUndefined({
        issued_to: claims.azp ?? claims.aud,
        audience: claims.aud,
        user_id: claims.sub,
        expires_in: Number(claims.exp) - now,
        email: claims.email,
        verified_email: claims.email_verified,
      }),
    );
  }
  const record = accessToken(ctx, request);
  if (record === undefined) return invalid();
  const user = ctx.state.users.get(record.sub);
  const email = record.scopes.includes(SCOPE_EMAIL) && user !== undefined;
  // Offline when the grant still has a refresh token for this client (access_type=offline).
  const offline = [...ctx.state.refreshTokens.values()].some(
    (r) => r.sub === record.sub && r.clientId === record.clientId && ctx.state.isLive(r),
  );
  return reply.send({
    issued_to: record.azp,
    audience: record.clientId,
    user_id: record.sub,
    scope: record.scopes.join(' '),
    expires_in: record.expiresAt - now,
    ...(email ? { email: user.email, verified_email: user.email_verified } : {}),
    access_type: offline ? 'offline' : 'online',
  });
}

async function legacyUserInfo(
  ctx: OAuthContext,
  request: FastifyRequest,
  reply: FastifyReply,
): Promise<FastifyReply> {
  const record = accessToken(ctx, request);
  // www.googleapis.com answers the legacy API's refusals in the Google API error envelope.
  if (record === undefined) {
    const given =
      request.headers.authorization !== undefined || parameter(request, 'access_token') !== undefined;
    return given ? API_ERRORS.invalidCredentials(reply) : API_ERRORS.missingCredentials(reply);
  }
  // The current answer under the legacy names, in the legacy order.
  const info = userInfoClaims(ctx.state.users.get(record.sub)!, record.scopes);
  return reply.send(
    stripUndefined({
      id: info.sub,
      email: info.email,
      verified_email: info.email_verified,
      name: info.name,
      given_name: info.given_name,
      family_name: info.family_name,
      picture: info.picture,
      locale: info.locale,
      hd: info.hd,
    }),
  );
}
