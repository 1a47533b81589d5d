import formbody from '@fastify/formbody';
import Fastify, { type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { Behalf } from '../behalf.js';
import type { BehalfConfig } from '../config/index.js';
import { BehalfError } from '../errors.js';
import { sendError } from './errors.js';
import { registerServiceRoutes } from './service-routes.js';
import { registerSignInRoutes } from './signin-routes.js';

export interface ServerOptions {
  behalf: Behalf;
  config: Pick<BehalfConfig, 'tls' | 'trustProxy' | 'allowedOrigins'>;
  logger: Logger;
  authenticate: (apiKey: string) => Promise<boolean>;
}

/** The HTTP face of behalf: sign-in for apps, the service API for the app's backend. */
export function buildServer(options: ServerOptions): FastifyInstance {
  const app = Fastify({
    loggerInstance: options.logger,
    ...(options.config.tls === undefined ? {} : { https: { cert: options.config.tls.cert, key: options.config.tls.key } }),
    trustProxy: options.config.trustProxy,
    // Limits against slow or oversized clients; routes may lower bodyLimit further.
    bodyLimit: 64 * 1024,
    connectionTimeout: 30_000,
    requestTimeout: 30_000,
    keepAliveTimeout: 5_000,
    routerOptions: { maxParamLength: 300 },
    return503OnClosing: true,
  }) as unknown as FastifyInstance;

  void app.register(formbody, { bodyLimit: 64 * 1024 });
  app.setErrorHandler((error, request, reply) => sendError(error, request, reply));
  app.setNotFoundHandler((request, reply) =>
    sendError(new BehalfError('NOT_FOUND', `No route ${request.method} ${request.url.split('?')[0] ?? ''}.`), request, reply),
  );

  app.get('/healthz', async () => ({ status: 'ok' }));
  registerSignInRoutes(app, {
    behalf: options.behalf,
    allowedOrigins: options.config.allowedOrigins,
    trustProxy: options.config.trustProxy,
  });
  registerServiceRoutes(app, { behalf: options.behalf, authenticate: options.authenticate });
  return app;
}
