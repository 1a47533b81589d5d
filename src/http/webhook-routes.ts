import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { BehalfError } from '../errors.js';
import type { WebhookEndpoint, Webhooks } from '../webhooks/index.js';
import type { WebhookEndpoint as WebhookEndpointAnswer } from './schemas.js';
import {
  errorAnswers,
  IdParams,
  NoContent,
  SERVICE_SECURITY,
  UNAUTHENTICATED,
  WebhookAddBody,
  WebhookCreated,
  WebhookList,
} from './schemas.js';

function webhookNotFound(): BehalfError {
  return new BehalfError('WEBHOOK_NOT_FOUND', 'No such webhook endpoint.');
}

/**
 * The service API's webhook routes (inside its authenticated scope, see ./service-routes.ts):
 * add an endpoint (its signing secret is in that answer only), list them, remove one.
 */
export function registerWebhookRoutes(plain: FastifyInstance, webhooks: Webhooks): void {
  const app = plain.withTypeProvider<ZodTypeProvider>();
  app.post(
    '/v1/webhooks',
    {
      schema: {
        summary: 'Add a webhook endpoint',
        description: 'Its signing secret is in this answer only (Standard Webhooks signatures).',
        tags: ['webhooks'],
        security: SERVICE_SECURITY,
        body: WebhookAddBody,
        response: {
          201: WebhookCreated,
          ...errorAnswers({
            400: 'INVALID_REQUEST: a malformed body, a URL that is not allowed, an unknown event type, or too many endpoints.',
            401: UNAUTHENTICATED,
          }),
        },
      },
      schemaErrorFormatter: () =>
        new BehalfError('INVALID_REQUEST', 'Send {"url": "https://…", "events"?: ["grant.revoked", …]}.', {
          reason: 'bad_body',
        }),
    },
    async (request, reply) => {
      const body = request.body;
      const { endpoint, secret } = await webhooks.addEndpoint({
        url: body.url,
        ...(body.events === undefined ? {} : { events: body.events }),
      });
      reply.code(201).header('cache-control', 'no-store');
      return { id: endpoint.id, url: endpoint.url, events: endpoint.events, secret };
    },
  );

  app.get(
    '/v1/webhooks',
    {
      schema: {
        summary: 'List the webhook endpoints (never a secret)',
        tags: ['webhooks'],
        security: SERVICE_SECURITY,
        response: { 200: WebhookList, ...errorAnswers({ 401: UNAUTHENTICATED }) },
      },
    },
    async () => ({ webhooks: (await webhooks.listEndpoints()).map(endpointJson) }),
  );

  app.delete(
    '/v1/webhooks/:id',
    {
      schema: {
        summary: 'Remove a webhook endpoint',
        tags: ['webhooks'],
        security: SERVICE_SECURITY,
        params: IdParams,
        response: {
          204: NoContent,
          ...errorAnswers({ 401: UNAUTHENTICATED, 404: 'WEBHOOK_NOT_FOUND: no such endpoint.' }),
        },
      },
      schemaErrorFormatter: webhookNotFound,
    },
    async (request, reply) => {
      if (!(await webhooks.removeEndpoint(request.params.id))) throw webhookNotFound();
      return reply.code(204).send();
    },
  );
}

function endpointJson(endpoint: WebhookEndpoint): WebhookEndpointAnswer {
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
