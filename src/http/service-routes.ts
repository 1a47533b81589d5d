import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { Behalf } from '../behalf.js';
import { BehalfError } from '../errors.js';
import { registerApiKeyRoutes, type ApiKeyAdmin } from './api-key-routes.js';
import { registerProxyRoutes } from './proxy-routes.js';
import { userJson } from './signin-routes.js';
import { registerWebhookRoutes } from './webhook-routes.js';

export interface ServiceRouteOptions {
  behalf: Behalf;
  /** Checks a presented service API key (stored hashed, compared in constant time). */
  authenticate: (apiKey: string) => Promise<boolean>;
  apiKeys: ApiKeyAdmin;
}

const SubParams = z.object({
  sub: z
    .string()
    .min(1)
    .max(255)
    .regex(/^[\x21-\x7e]+$/),
});
const VerifyBody = z.object({
  id_token: z.string().min(1).max(16_384),
  nonce: z.string().max(1024).optional(),
});

/**
 * The service API, for the app's own backend (any language), authenticated with API keys that
 * are never given to apps.
 */
export function registerServiceRoutes(app: FastifyInstance, options: ServiceRouteOptions): void {
  const { behalf } = options;

  void app.register(async (scoped) => {
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

    scoped.get('/v1/users/:sub', async (request) => {
      const { sub } = parseSub(request.params);
      const found = await behalf.getUser(sub);
      return {
        user: userJson(found.user),
        grant: found.grant === null ? null : grantJson(found.grant),
        security:
          found.security === null
            ? null
            : { state: found.security.state, at: new Date(found.security.at).toISOString() },
        created_at: new Date(found.user.createdAt).toISOString(),
        updated_at: new Date(found.user.updatedAt).toISOString(),
        last_sign_in_at: new Date(found.user.lastSignInAt).toISOString(),
      };
    });

    scoped.post('/v1/users/:sub/access-token', async (request, reply) => {
      const { sub } = parseSub(request.params);
      const token = await behalf.getAccessToken(sub);
      reply.header('cache-control', 'no-store');
      return {
        access_token: token.token,
        token_type: 'Bearer',
        expires_at: new Date(token.expiresAt).toISOString(),
        expires_in: Math.max(0, Math.floor((token.expiresAt - behalf.clock.now()) / 1000)),
        scopes: token.scopes,
      };
    });

    scoped.post('/v1/users/:sub/sign-out', async (request) => {
      const { sub } = parseSub(request.params);
      const outcome = await behalf.signOut(sub);
      return { signed_out: true, revoked_at_google: outcome.revokedAtGoogle };
    });

    scoped.delete('/v1/users/:sub', async (request, reply) => {
      const { sub } = parseSub(request.params);
      const outcome = await behalf.deleteUser(sub);
      return reply.code(200).send({ deleted: true, revoked_at_google: outcome.revokedAtGoogle });
    });

    scoped.post('/v1/id-tokens/verify', async (request) => {
      const parsed = VerifyBody.safeParse(request.body);
      if (!parsed.success)
        throw new BehalfError('INVALID_REQUEST', 'Send {"id_token": "..."}.', { reason: 'bad_body' });
      const result = await behalf.verifyIdToken(
        parsed.data.id_token,
        parsed.data.nonce === undefined ? {} : { nonce: parsed.data.nonce },
      );
      return {
        claims: {
          iss: result.claims.iss,
          aud: result.claims.aud,
          azp: result.claims.azp,
          sub: result.claims.sub,
          iat: result.claims.iat,
          exp: result.claims.exp,
          ...userJson(result.claims),
        },
        grant: result.grant === null ? null : grantJson(result.grant),
      };
    });
  });
}

function grantJson(grant: {
  status: string;
  scopes: string[];
  offlineAccess: boolean;
}): Record<string, unknown> {
  return { status: grant.status, offline_access: grant.offlineAccess, scopes: grant.scopes };
}

function parseSub(params: unknown): { sub: string } {
  const parsed = SubParams.safeParse(params);
  if (!parsed.success)
    throw new BehalfError('INVALID_REQUEST', 'The user id (sub) in the path is malformed.', {
      reason: 'bad_sub',
    });
  return parsed.data;
}

function bearer(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization;
  if (header === undefined) return undefined;
  const match = /^Bearer ([\x21-\x7e]{1,512})$/i.exec(header);
  return match?.[1];
}
