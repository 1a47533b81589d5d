import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { BehalfError, isBehalfError } from '../errors.js';

/**
 * The one place that turns any failure into the JSON error body `{"error": CODE, "message": TEXT}`.
 * Fastify's own errors (parsing, limits, content types) become stable 4xx codes; anything
 * unexpected is logged by class only and answered as INTERNAL without detail.
 */
export function sendError(error: unknown, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  const behalfError = toBehalfError(error);
  if (behalfError.code === 'INTERNAL') {
    request.log.error(
      { err: { type: (error as Error | undefined)?.name ?? typeof error } },
      'unexpected error',
    );
  } else if (behalfError.status >= 500) {
    request.log.warn({ code: behalfError.code, reason: behalfError.reason }, behalfError.message);
  }
  if (behalfError.retryAfter !== undefined)
    reply.header('retry-after', String(Math.ceil(behalfError.retryAfter)));
  return reply.code(behalfError.status).type('application/json; charset=utf-8').send(behalfError.toJSON());
}

/** Any failure as a BehalfError: Fastify's own errors as stable 4xx codes, anything unexpected as INTERNAL. */
export function toBehalfError(error: unknown): BehalfError {
  if (isBehalfError(error)) return error;
  const fastifyError = error as Partial<FastifyError> | undefined;
  switch (fastifyError?.code) {
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new BehalfError(
        'UNSUPPORTED_MEDIA_TYPE',
        'Send application/json or application/x-www-form-urlencoded.',
      );
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new BehalfError('PAYLOAD_TOO_LARGE', 'The request body is too large.');
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return new BehalfError('INVALID_REQUEST', 'The request body is not valid JSON.');
    default:
      break;
  }
  if (fastifyError?.validation !== undefined) {
    return new BehalfError('INVALID_REQUEST', `Invalid request: ${fastifyError.message ?? 'bad input'}.`);
  }
  const status = fastifyError?.statusCode;
  if (typeof status === 'number' && status >= 400 && status < 500) {
    // JSON parse errors, bad URLs and other client mistakes Fastify detects.
    if (status === 413) return new BehalfError('PAYLOAD_TOO_LARGE', 'The request body is too large.');
    if (status === 415)
      return new BehalfError(
        'UNSUPPORTED_MEDIA_TYPE',
        'Send application/json or application/x-www-form-urlencoded.',
      );
    return new BehalfError('INVALID_REQUEST', 'The request is malformed.');
  }
  return new BehalfError('INTERNAL', 'Something went wrong inside behalf; it has been logged.');
}
