import { LogController, type FastifyReply, type FastifyRequest, type FastifyServerOptions } from 'fastify';

/**
 * Request log lines carry the path, never the query string. A query can hold a secret the
 * client should not have put there but did (`?key=…` for the API key, a proxied Google call's
 * `?access_token=…`), and a log line outlives the request.
 */

/** The path of a request target: everything before the first `?` (and `#`, should one arrive). */
export function requestPath(url: string): string {
  const end = url.search(/[?#]/);
  return end === -1 ? url : url.slice(0, end);
}

interface LoggedRequest {
  method?: string;
  url?: string;
  host?: string;
  ip?: string;
  headers?: Record<string, string | string[] | undefined>;
  socket?: { remotePort?: number } | null;
}

/** Fastify's `req` serializer (method, url, version, host, remote address and port), the url cut to its path. */
export function serializeRequest(request: LoggedRequest): Record<string, unknown> {
  return {
    method: request.method,
    url: request.url === undefined ? undefined : requestPath(request.url),
    version: request.headers?.['accept-version'],
    host: request.host,
    remoteAddress: request.ip,
    remotePort: request.socket?.remotePort,
  };
}

/**
 * Every per-request logger gets the path-only `req` serializer. Set here, on the child, because a
 * child's serializers win over its parent's: the logger behalf is handed (ours, or an embedding
 * app's pino with its own `req` serializer) cannot bring the query string back.
 */
export const childLoggerFactory: NonNullable<FastifyServerOptions['childLoggerFactory']> = function (
  logger,
  bindings,
  options,
) {
  return logger.child(bindings, {
    ...options,
    serializers: { ...options.serializers, req: serializeRequest },
  });
};

/**
 * Fastify's request log lines, with the one that puts the raw URL into its message (the default
 * 404 handler's "Route GET:/x?key=… not found") cut to the path. The others log `{ req }`, which
 * goes through {@link serializeRequest}.
 */
export class PathOnlyLogController extends LogController {
  override routeNotFound(request: FastifyRequest, _reply: FastifyReply): void {
    if (this.isLogDisabled(request)) return;
    request.log.info(`Route ${request.method}:${requestPath(request.url)} not found`);
  }
}
