import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { BehalfError } from '../errors.js';
import type { WebhookEndpoint, Webhooks } from '../webhooks/index.js';

const AddBody = z.strictObject({
  url: z.string().max(4096),
  events: z.array(z.string().max(100)).max(20).optional(),
});
const IdParams = z.object({ id: z.string().max(100) });

/**
 * The service API's webhook routes (inside its authenticated scope, see ./service-routes.ts):
 * add an endpoint (its signing secret is in that answer only), list them, remove one.
 */
export function registerWebhookRoutes(app: FastifyInstance, webhooks: Webhooks): void {
  app.post('/v1/webhooks', async (request, reply) => {
    const parsed = AddBody.safeParse(request.body);
    if (!parsed.success) {
      throw new BehalfError(
        'INVALID_REQUEST',
        'Send {"url": "https://…", "events"?: ["grant.revoked", …]}.',
        { reason: 'bad_body' },
      );
    }
    const { endpoint, secret } = await webhooks.addEndpoint(parsed.data);
    reply.code(201).header('cache-control', 'no-store');
    return { id: endpoint.id, url: endpoint.url, events: endpoint.events, secret };
  });

  app.get('/v1/webhooks', async () => ({ webhooks: (await webhooks.listEndpoints()).map(endpointJson) }));

  app.delete('/v1/webhooks/:id', async (request, reply) => {
    const parsed = IdParams.safeParse(request.params);
    if (!parsed.success || !(await webhooks.removeEndpoint(parsed.data.id))) {
      throw new BehalfError('WEBHOOK_NOT_FOUND', 'No such webhook endpoint.');
    }
    return reply.code(204).send();
  });
}

function endpointJson(endpoint: WebhookEndpoint): Record<string, unknown> {
  return {
    id: endpoint.id,
    url: endpoint.url,
    events: endpoint.events,
    status: endpoint.status,
    disabled_reason: endpoint.disabledReason,
    created_at: new Date(endpoint.createdAt).toISOString(),
    updated_at: new Date(endpoint.updatedAt).toISOString(),
    deliveries: endpoint.deliveries,
  };
}
