import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import type { Behalf, GrantSummary } from '../behalf.js';
import { BehalfError } from '../errors.js';
import type { UserSecurity } from '../risc/index.js';
import type { UserRecord, UserSearch, UserSearchPage, UserState } from '../vault/index.js';
import { registerApiKeyRoutes, type ApiKeyAdmin } from './api-key-routes.js';
import { registerProxyRoutes } from './proxy-routes.js';
import {
  AccessToken,
  DeleteUserResult,
  errorAnswers,
  SERVICE_SECURITY,
  SignOutResult,
  SubParams,
  UNAUTHENTICATED,
  User,
  UserList,
  UserListQuery,
  VerifiedIdToken,
  VerifyBody,
} from './schemas.js';
import { userJson } from './signin-routes.js';
import { registerWebhookRoutes } from './webhook-routes.js';

/** The user list behind GET /v1/users: the admin console's keyset search, and each page's states. */
export interface UserDirectory {
  search(search: Omit<UserSearch, 'clientId'>): Promise<UserSearchPage>;
  /** Offline access and security state of each listed user, by sub. */
  states(subs: readonly string[]): Promise<Map<string, UserState>>;
}

export interface ServiceRouteOptions {
  behalf: Behalf;
  /** Checks a presented service API key (stored hashed, compared in constant time). */
  authenticate: (apiKey: string) => Promise<boolean>;
  apiKeys: ApiKeyAdmin;
  users: UserDirectory;
}

function badSub(): BehalfError {
  return new BehalfError('INVALID_REQUEST', 'The user id (sub) in the path is malformed.', {
    reason: 'bad_sub',
  });
}

const USER_ERRORS = {
  400: 'INVALID_REQUEST: the sub in the path is malformed.',
  401: UNAUTHENTICATED,
  404: 'USER_NOT_FOUND: no such user is stored.',
} as const;

/**
 * The service API, for the app's own backend (any language), authenticated with API keys that
 * are never given to apps.
 */
export function registerServiceRoutes(app: FastifyInstance, options: ServiceRouteOptions): void {
  const { behalf } = options;

  void app.register(async (plain) => {
    const scoped = plain.withTypeProvider<ZodTypeProvider>();
    scoped.addHook('onRequest', async (request) => {
      const key = bearer(request);
      if (key === undefined || !(await options.authenticate(key))) {
        throw new BehalfError(
          'UNAUTHENTICATED',
          'Send a service API key as "Authorization: Bearer <key>" (create one with `behalf keys create-api-key`).',
        );
      }
    });

    registerProxyRoutes(scoped, behalf);
    registerWebhookRoutes(scoped, behalf.webhooks);
    registerApiKeyRoutes(scoped, options.apiKeys);

    scoped.get(
      '/v1/users',
      {
        schema: {
          summary: 'List users, a page at a time',
          description:
            'Keyset pages in a stable order (by email, or by sub when filtering on status alone): each user appears once however users are added or removed meanwhile. Pass `next_cursor` as `cursor` with the same filters for the next page.',
          tags: ['users'],
          security: SERVICE_SECURITY,
          querystring: UserListQuery,
          response: {
            200: UserList,
            ...errorAnswers({
              400: 'INVALID_REQUEST: a bad filter or limit (reason bad_query), or a cursor that is malformed, altered or from another search (reason bad_cursor).',
              401: UNAUTHENTICATED,
            }),
          },
        },
        schemaErrorFormatter: (errors) =>
          new BehalfError(
            'INVALID_REQUEST',
            `Invalid query: ${errors[0]?.instancePath.slice(1) || 'query'} ${errors[0]?.message ?? ''}`.trim(),
            { reason: 'bad_query' },
          ),
      },
      async (request) => {
        const { status, email, limit, cursor } = request.query;
        const filters = { status, email };
        const page = await options.users.search({
          limit,
          ...(status === undefined ? {} : { status }),
          ...(email === undefined ? {} : { emailPrefix: email }),
          ...(cursor === undefined ? {} : { after: openCursor(cursor, filters) }),
        });
        const states = await options.users.states(page.users.map((entry) => entry.user.sub));
        return {
          users: page.users.map(({ user, grant }) => {
            const state = states.get(user.sub);
            return userDetailsJson(
              user,
              grant === null
                ? null
                : {
                    ...grant,
                    offlineAccess: state?.offlineAccess ?? false,
                    refreshTokenExpiresAt: state?.refreshTokenExpiresAt ?? null,
                  },
              (state?.security ?? null) as UserSecurity | null,
            );
          }),
          next_cursor: page.next === null ? null : sealCursor(page.next, filters),
        };
      },
    );

    scoped.get(
      '/v1/users/:sub',
      {
        schema: {
          summary: "A user's profile, grant and security state",
          tags: ['users'],
          security: SERVICE_SECURITY,
          params: SubParams,
          response: { 200: User, ...errorAnswers(USER_ERRORS) },
        },
        schemaErrorFormatter: badSub,
      },
      async (request) => {
        const found = await behalf.getUser(request.params.sub);
        return userDetailsJson(found.user, found.grant, found.security);
      },
    );

    scoped.post(
      '/v1/users/:sub/access-token',
      {
        schema: {
          summary: 'A fresh Google access token for the user',
          tags: ['users'],
          security: SERVICE_SECURITY,
          params: SubParams,
          response: {
            200: AccessToken,
            ...errorAnswers({
              ...USER_ERRORS,
              409: 'NEEDS_CONSENT: no usable refresh token; the user must sign in again with consent.',
              502: 'GOOGLE_ERROR or CLIENT_MISCONFIGURED: Google refused in a way a retry does not fix.',
              503: 'GOOGLE_UNAVAILABLE: Google could not be reached (retryable).',
            }),
          },
        },
        schemaErrorFormatter: badSub,
      },
      async (request, reply) => {
        const token = await behalf.getAccessToken(request.params.sub);
        reply.header('cache-control', 'no-store');
        return {
          access_token: token.token,
          token_type: 'Bearer' as const,
          expires_at: new Date(token.expiresAt).toISOString(),
          expires_in: Math.max(0, Math.floor((token.expiresAt - behalf.clock.now()) / 1000)),
          scopes: [...token.scopes],
        };
      },
    );

    scoped.post(
      '/v1/users/:sub/sign-out',
      {
        schema: {
          summary: 'Sign the user out: revoke the grant at Google and here (the profile stays)',
          tags: ['users'],
          security: SERVICE_SECURITY,
          params: SubParams,
          response: {
            200: SignOutResult,
            ...errorAnswers({
              ...USER_ERRORS,
              404: 'USER_NOT_FOUND: no grant is stored for this user.',
              503: 'GOOGLE_UNAVAILABLE: Google could not be reached to revoke (retryable).',
            }),
          },
        },
        schemaErrorFormatter: badSub,
      },
      async (request) => {
        const outcome = await behalf.signOut(request.params.sub);
        return { signed_out: true as const, revoked_at_google: outcome.revokedAtGoogle };
      },
    );

    scoped.delete(
      '/v1/users/:sub',
      {
        schema: {
          summary: 'Delete the user: revoke at Google, erase everything stored',
          tags: ['users'],
          security: SERVICE_SECURITY,
          params: SubParams,
          response: {
            200: DeleteUserResult,
            ...errorAnswers({
              ...USER_ERRORS,
              503: 'GOOGLE_UNAVAILABLE: Google could not be reached to revoke (retryable).',
            }),
          },
        },
        schemaErrorFormatter: badSub,
      },
      async (request, reply) => {
        const outcome = await behalf.deleteUser(request.params.sub);
        return reply.code(200).send({ deleted: true, revoked_at_google: outcome.revokedAtGoogle });
      },
    );

    scoped.post(
      '/v1/id-tokens/verify',
      {
        schema: {
          summary: 'Verify a Google ID token an app sent',
          tags: ['id-tokens'],
          security: SERVICE_SECURITY,
          body: VerifyBody,
          response: {
            200: VerifiedIdToken,
            ...errorAnswers({
              400: 'INVALID_REQUEST: the body is not {"id_token": "…"}.',
              401: 'ID_TOKEN_INVALID (with a reason such as expired, bad_signature, bad_audience), or UNAUTHENTICATED.',
              503: "GOOGLE_UNAVAILABLE: Google's signing keys could not be fetched (retryable).",
            }),
          },
        },
        schemaErrorFormatter: () =>
          new BehalfError('INVALID_REQUEST', 'Send {"id_token": "..."}.', { reason: 'bad_body' }),
      },
      async (request) => {
        const { id_token: idToken, nonce } = request.body;
        const result = await behalf.verifyIdToken(idToken, nonce === undefined ? {} : { nonce });
        return {
          claims: {
            iss: result.claims.iss,
            aud: result.claims.aud,
            azp: result.claims.azp,
            iat: result.claims.iat,
            exp: result.claims.exp,
            ...userJson(result.claims),
          },
          grant: result.grant === null ? null : grantJson(result.grant),
        };
      },
    );
  });
}

/** A user as GET /v1/users/{sub} and each entry of GET /v1/users show it. */
function userDetailsJson(user: UserRecord, grant: GrantSummary | null, security: UserSecurity | null): User {
  return {
    user: userJson(user),
    grant: grant === null ? null : grantJson(grant),
    security: security === null ? null : { state: security.state, at: new Date(security.at).toISOString() },
    created_at: new Date(user.createdAt).toISOString(),
    updated_at: new Date(user.updatedAt).toISOString(),
    last_sign_in_at: new Date(user.lastSignInAt).toISOString(),
  };
}

function grantJson(grant: GrantSummary): NonNullable<User['grant']> {
  return {
    status: grant.status,
    offline_access: grant.offlineAccess,
    scopes: grant.scopes,
    offline_access_expires_at:
      grant.refreshTokenExpiresAt === null ? null : new Date(grant.refreshTokenExpiresAt).toISOString(),
  };
}

/**
 * GET /v1/users's cursor: the search's own cursor and a check value over it and the filters, so
 * that a cursor altered in transit, or replayed with other filters, is refused rather than read
 * as another position. (Not a secret: whoever holds the service API key may list every user.)
 */
function sealCursor(
  next: string,
  filters: { status?: string | undefined; email?: string | undefined },
): string {
  return `${next}.${cursorCheck(next, filters)}`;
}

function openCursor(
  cursor: string,
  filters: { status?: string | undefined; email?: string | undefined },
): string {
  const dot = cursor.lastIndexOf('.');
  const next = cursor.slice(0, dot);
  const presented = Buffer.from(cursor.slice(dot + 1));
  const expected = Buffer.from(cursorCheck(next, filters));
  if (dot < 1 || presented.length !== expected.length || !timingSafeEqual(presented, expected)) {
    throw new BehalfError('INVALID_REQUEST', 'The page cursor is malformed, or belongs to another search.', {
      reason: 'bad_cursor',
    });
  }
  return next;
}

function cursorCheck(
  next: string,
  filters: { status?: string | undefined; email?: string | undefined },
): string {
  return createHash('sha256')
    .update(JSON.stringify(['behalf user list', filters.status ?? null, filters.email ?? null, next]))
    .digest('base64url')
    .slice(0, 22);
}

function bearer(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization;
  if (header === undefined) return undefined;
  const match = /^Bearer ([\x21-\x7e]{1,512})$/i.exec(header);
  return match?.[1];
}
