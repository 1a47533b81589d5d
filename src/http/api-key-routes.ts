import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { ApiKeySummary } from '../vault/index.js';

/** What the API key routes may do: list the keys, revoke one (see src/vault/api-keys.ts). */
export interface ApiKeyAdmin {
  list(): Promise<ApiKeySummary[]>;
  /** Throws INVALID_REQUEST for a malformed id, NOT_FOUND for an unknown one. */
  revoke(id: string): Promise<void>;
}

const IdParams = z.object({ id: z.string().max(100) });

/**
 * The service API's key routes (inside its authenticated scope, see ./service-routes.ts): list
 * the service API keys (id, name, created, last used; never a key) and revoke one by id. Keys are
 * created with `behalf keys create-api-key` or the admin console, where the key is shown once.
 */
export function registerApiKeyRoutes(app: FastifyInstance, apiKeys: ApiKeyAdmin): void {
  app.get('/v1/api-keys', async () => ({
    api_keys: (await apiKeys.list()).map((key) => ({
      id: key.id,
      name: key.name,
      created_at: new Date(key.createdAt).toISOString(),
      last_used_at: key.lastUsedAt === null ? null : new Date(key.lastUsedAt).toISOString(),
    })),
  }));

  app.delete('/v1/api-keys/:id', async (request, reply) => {
    // A malformed id is refused by revoke() itself, with the same code as the CLI's.
    await apiKeys.revoke(IdParams.safeParse(request.params).data?.id ?? '');
    return reply.code(204).send();
  });
}
