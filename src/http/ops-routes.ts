import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { BehalfError } from '../errors.js';
import type { Metrics, Readiness } from '../observability/index.js';
import { errorAnswers, Health, jsonAnswer, Ready, Unready } from './schemas.js';

export interface OpsRouteOptions {
  metrics: Metrics;
  readiness: Readiness;
  /** When set, /metrics wants `Authorization: Bearer <this>` (BEHALF_METRICS_TOKEN). */
  metricsToken: string | undefined;
}

/** A request that matched no route is counted under this route label. */
const NO_ROUTE = '(none)';

/**
 * The operator's routes, none of which needs a service API key: /healthz (the process serves),
 * /readyz (it can do its work: database, schema, Google's keys) and /metrics (Prometheus). Every
 * answered request is counted by its route pattern, never by its path (which holds a user's sub).
 */
export function registerOpsRoutes(plain: FastifyInstance, options: OpsRouteOptions): void {
  const app = plain.withTypeProvider<ZodTypeProvider>();
  const { metrics, readiness } = options;
  app.addHook('onResponse', async (request, reply) => {
    metrics.httpRequest(
      request.method,
      request.routeOptions.url ?? NO_ROUTE,
      reply.statusCode,
      reply.elapsedTime / 1000,
    );
  });

  const probe = { tags: ['operations'] };
  app.get(
    '/healthz',
    { schema: { ...probe, summary: 'The process serves', response: { 200: Health } } },
    async (_request, reply) => {
      reply.header('cache-control', 'no-store');
      return { status: 'ok' as const };
    },
  );

  const readySchema = {
    ...probe,
    summary: "behalf can do its work: database, schema, Google's keys and discovery document",
    response: {
      200: jsonAnswer('Every check passed.', Ready),
      503: jsonAnswer('A check failed: each one says "ok" or why.', Unready),
    },
  };
  app.get('/readyz', { schema: readySchema }, async (_request, reply) => {
    const { ready, checks } = await readiness.check();
    reply.header('cache-control', 'no-store');
    return ready
      ? reply.code(200).send({ status: 'ready', checks })
      : reply.code(503).send({ status: 'unready', checks });
  });

  const expected = options.metricsToken === undefined ? undefined : digest(options.metricsToken);
  const metricsSchema = {
    ...probe,
    summary: 'Prometheus metrics (text exposition format)',
    description: 'Protected by BEHALF_METRICS_TOKEN (Bearer) when it is set.',
    security: [{}, { metricsToken: [] }],
    response: {
      200: {
        description: 'The metrics, in the Prometheus text format.',
        content: { 'text/plain': { schema: z.string() } },
      },
      ...errorAnswers({ 401: 'UNAUTHENTICATED: BEHALF_METRICS_TOKEN is set and was not sent.' }),
    },
  };
  app.get('/metrics', { schema: metricsSchema }, async (request, reply) => {
    if (expected !== undefined) {
      const presented = /^Bearer ([\x21-\x7e]{1,512})$/i.exec(request.headers.authorization ?? '')?.[1];
      // Digests of equal length: the comparison takes the same time whatever was presented.
      if (presented === undefined || !timingSafeEqual(digest(presented), expected)) {
        throw new BehalfError(
          'UNAUTHENTICATED',
          'Send the metrics token as "Authorization: Bearer <token>" (BEHALF_METRICS_TOKEN).',
        );
      }
    }
    const { contentType, body } = await metrics.exposition();
    return reply.header('cache-control', 'no-store').type(contentType).send(body);
  });
}

function digest(value: string): Buffer {
  return createHash('sha256').update(value, 'utf8').digest();
}
