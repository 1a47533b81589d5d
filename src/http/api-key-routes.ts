import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import type { ApiKeySummary } from '../vault/index.js';
import {
  ApiKeyList,
  errorAnswers,
  IdParams,
  NoContent,
  SERVICE_SECURITY,
  UNAUTHENTICATED,
} from './schemas.js';

/** What the API key routes may do: list the keys, revoke one (see src/vault/api-keys.ts). */
export interface ApiKeyAdmin {
  list(): Promise<ApiKeySummary[]>;
  /** Throws INVALID_REQUEST for a malformed id, NOT_FOUND for an unknown one. */
  revoke(id: string): Promise<void>;
}

/**
 * The service API's key routes (inside its authenticated scope, see ./service-routes.ts): list
 * the service API keys (id, name, created, last used; never a key) and revoke one by id. Keys are
 * created with `behalf keys create-api-key` or the admin console, where the key is shown once.
 */
export function registerApiKeyRoutes(plain: FastifyInstance, apiKeys: ApiKeyAdmin): void {
  const app = plain.withTypeProvider<ZodTypeProvider>();
  app.get(
    '/v1/api-keys',
    {
      schema: {
        summary: 'List the service API keys (never a key itself)',
        tags: ['api-keys'],
        security: SERVICE_SECURITY,
        response: { 200: ApiKeyList, ...errorAnswers({ 401: UNAUTHENTICATED }) },
      },
    },
    async () => ({
      api_keys: (await apiKeys.list()).map((key) => ({
        id: key.id,
        name: key.name,
        created_at: new Date(key.createdAt).toISOString(),
        last_used_at: key.lastUsedAt === null ? null : new Date(key.lastUsedAt).toISOString(),
      })),
    }),
  );

  app.delete(
    '/v1/api-keys/:id',
    {
      // A malformed id is refused by revoke() itself, with the same code as the CLI's.
      attachValidation: true,
      schema: {
        summary: 'Revoke a service API key',
        tags: ['api-keys'],
        security: SERVICE_SECURITY,
        params: IdParams,
        response: {
          204: NoContent,
          ...errorAnswers({
            400: 'INVALID_REQUEST: the id is malformed.',
            401: UNAUTHENTICATED,
            404: 'NOT_FOUND: no such key.',
          }),
        },
      },
    },
    async (request, reply) => {
      await apiKeys.revoke(request.validationError === undefined ? request.params.id : '');
      return reply.code(204).send();
    },
  );
}
