import type { FastifyInstance } from 'fastify';
import type { Behalf } from '../behalf.js';
import { BehalfError } from '../errors.js';

/** A security event token is a few KiB at most. */
const RISC_BODY_LIMIT = 16 * 1024;

/**
 * `POST /v1/google/risc`: the Cross-Account Protection receiver Google pushes security event
 * tokens to (register this URL with Google's RISC API, stream:update). One signed SET per request,
 * as `application/secevent+jwt` (RFC 8935); 202 once it is verified and acted on, 400 for a token
 * that fails verification, 503 when Google's keys cannot be read (Google retries).
 */
export function registerRiscRoutes(
  app: FastifyInstance,
  options: { behalf: Pick<Behalf, 'receiveSecurityEvent'>; rateLimit: number },
): void {
  void app.register(async (scoped) => {
    scoped.addContentTypeParser(
      ['application/secevent+jwt', 'application/jwt'],
      { parseAs: 'string', bodyLimit: RISC_BODY_LIMIT },
      (_request, body, done) => done(null, body),
    );
    const config = { rateLimit: { max: options.rateLimit, timeWindow: 60_000 } };
    scoped.post('/v1/google/risc', { bodyLimit: RISC_BODY_LIMIT, config }, async (request, reply) => {
      const type = (request.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
      if (
        !['application/secevent+jwt', 'application/jwt', 'text/plain'].includes(type) ||
        typeof request.body !== 'string'
      ) {
        throw new BehalfError(
          'UNSUPPORTED_MEDIA_TYPE',
          'Send one security event token as application/secevent+jwt.',
        );
      }
      const result = await options.behalf.receiveSecurityEvent(request.body.trim());
      return reply
        .code(202)
        .send({ accepted: true, jti: result.jti, duplicate: result.duplicate, events: result.events });
    });
  });
}
