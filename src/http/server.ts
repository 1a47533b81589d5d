import formbody from '@fastify/formbody';
import rateLimit from '@fastify/rate-limit';
import Fastify, { type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { registerAdminRoutes, type AdminConsole } from '../admin/index.js';
import type { Behalf } from '../behalf.js';
import type { BehalfConfig } from '../config/index.js';
import { BehalfError } from '../errors.js';
import type { Metrics, Readiness } from '../observability/index.js';
import { sendError } from './errors.js';
import type { ApiKeyAdmin } from './api-key-routes.js';
import { registerOpenApi } from './openapi.js';
import { registerOpsRoutes } from './ops-routes.js';
import { childLoggerFactory, PathOnlyLogController, requestPath } from './request-log.js';
import { registerRiscRoutes } from './risc-routes.js';
import { registerServiceRoutes, type UserDirectory } from './service-routes.js';
import { registerSignInRoutes } from './signin-routes.js';

export interface ServerOptions {
  behalf: Behalf;
  config: Pick<BehalfConfig, 'tls' | 'trustProxy' | 'allowedOrigins' | 'signInRateLimit' | 'metricsToken'>;
  logger: Logger;
  metrics: Metrics;
  readiness: Readiness;
  authenticate: (apiKey: string) => Promise<boolean>;
  /** Listing and revoking service API keys (GET/DELETE /v1/api-keys). */
  apiKeys: ApiKeyAdmin;
  /** The user list behind GET /v1/users. */
  users: UserDirectory;
  /** The admin console under /admin; none when absent. */
  admin?: AdminConsole;
}

/** The HTTP face of behalf: sign-in for apps, the service API for the app's backend. */
export function buildServer(options: ServerOptions): FastifyInstance {
  const app = Fastify({
    loggerInstance: options.logger,
    // Request log lines name the path only: a query string may carry a key or a token.
    childLoggerFactory,
    logController: new PathOnlyLogController(),
    ...(options.config.tls === undefined
      ? {}
      : { https: { cert: options.config.tls.cert, key: options.config.tls.key } }),
    trustProxy: options.config.trustProxy,
    // Limits against slow or oversized clients; routes may lower bodyLimit further.
    bodyLimit: 64 * 1024,
    // A slow client gets 15 s to send its whole request.
    connectionTimeout: 30_000,
    requestTimeout: 15_000,
    keepAliveTimeout: 5_000,
    routerOptions: { maxParamLength: 300 },
    return503OnClosing: true,
  }) as unknown as FastifyInstance;

  void app.register(formbody, { bodyLimit: 64 * 1024 });
  // Per client address, on the routes that opt in (sign-in): behind BEHALF_TRUST_PROXY the address
  // is the one the proxy reports.
  void app.register(rateLimit, {
    global: false,
    errorResponseBuilder: (_request, context) =>
      new BehalfError('RATE_LIMITED', 'Too many requests from this address; retry later.', {
        retryAfter: Math.ceil(context.ttl / 1000),
      }),
  });
  app.setErrorHandler((error, request, reply) => sendError(error, request, reply));
  app.setNotFoundHandler((request, reply) =>
    sendError(
      new BehalfError('NOT_FOUND', `No route ${request.method} ${requestPath(request.url)}.`),
      request,
      reply,
    ),
  );

  // First: the API description is made of the routes added after it (ops routes included).
  registerOpenApi(app);
  app.after(() =>
    registerOpsRoutes(app, {
      metrics: options.metrics,
      readiness: options.readiness,
      metricsToken: options.config.metricsToken,
    }),
  );
  // Routes load after the plugins above (rate limiting attaches to routes as they are added).
  void app.register(async (routes) => {
    registerSignInRoutes(routes, {
      behalf: options.behalf,
      allowedOrigins: options.config.allowedOrigins,
      trustProxy: options.config.trustProxy,
      rateLimit: options.config.signInRateLimit,
    });
    registerRiscRoutes(routes, {
      behalf: options.behalf,
      rateLimit: Math.max(600, options.config.signInRateLimit),
    });
    registerServiceRoutes(routes, {
      behalf: options.behalf,
      authenticate: options.authenticate,
      apiKeys: options.apiKeys,
      users: options.users,
    });
    if (options.admin !== undefined) {
      registerAdminRoutes(routes, {
        console: options.admin,
        tls: options.config.tls !== undefined,
        trustProxy: options.config.trustProxy,
        rateLimit: options.config.signInRateLimit,
      });
    }
  });
  return app;
}
