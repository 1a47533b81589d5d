import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Behalf } from '../behalf.js';
import { BehalfError } from '../errors.js';
import { errorAnswers, SecurityEventAccepted } from './schemas.js';

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
  void app.register(async (plain) => {
    const scoped = plain.withTypeProvider<ZodTypeProvider>();
    scoped.addContentTypeParser(
      ['application/secevent+jwt', 'application/jwt'],
      { parseAs: 'string', bodyLimit: RISC_BODY_LIMIT },
      (_request, body, done) => done(null, body),
    );
    const config = { rateLimit: { max: options.rateLimit, timeWindow: 60_000 } };
    const schema = {
      summary: 'Receive a security event token from Google (Cross-Account Protection)',
      description:
        "Google's RISC push endpoint (https://developers.google.com/identity/protocols/risc): one signed security event token per request, RFC 8935. No service API key: the token's signature is the authentication.",
      tags: ['risc'],
      consumes: ['application/secevent+jwt', 'application/jwt', 'text/plain'],
      body: z.string().describe('The security event token (a JWT signed by Google).'),
      response: {
        202: SecurityEventAccepted,
        ...errorAnswers({
          400: 'SECURITY_EVENT_INVALID: the token failed verification (reason says which check).',
          415: 'UNSUPPORTED_MEDIA_TYPE: not a security event token.',
          429: 'RATE_LIMITED.',
          503: "GOOGLE_UNAVAILABLE: Google's signing keys could not be fetched (Google retries).",
        }),
      },
    };
    // The body's type is checked in the handler (415), before the body itself.
    const route = { bodyLimit: RISC_BODY_LIMIT, config, schema, attachValidation: true };
    scoped.post('/v1/google/risc', route, async (request, reply) => {
      const type = (request.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
      if (
        !['application/secevent+jwt', 'application/jwt', 'text/plain'].includes(type) ||
        request.validationError !== undefined
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
