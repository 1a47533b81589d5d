import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { BehalfError } from '../errors.js';
import type { Metrics, Readiness } from '../observability/index.js';

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
export function registerOpsRoutes(app: FastifyInstance, options: OpsRouteOptions): void {
  const { metrics, readiness } = options;
  app.addHook('onResponse', async (request, reply) => {
    metrics.httpRequest(
      request.method,
      request.routeOptions.url ?? NO_ROUTE,
      reply.statusCode,
      reply.elapsedTime / 1000,
    );
  });

  app.get('/healthz', async (_request, reply) => {
    reply.header('cache-control', 'no-store');
    return { status: 'ok' };
  });

  app.get('/readyz', async (_request, reply) => {
    const { ready, checks } = await readiness.check();
    return reply
      .code(ready ? 200 : 503)
      .header('cache-control', 'no-store')
      .send({ status: ready ? 'ready' : 'unready', checks });
  });

  const expected = options.metricsToken === undefined ? undefined : digest(options.metricsToken);
  app.get('/metrics', async (request, reply) => {
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
