import type { FastifyReply } from 'fastify';

/**
 * OAuth endpoints' error shape, `{error, error_description}` (RFC 6749 §5.2), with Google's
 * `error_subtype` when there is one (`invalid_rapt`:
 * https://developers.google.com/identity/protocols/oauth2#expiration) and the no-store headers
 * Google sends on them.
 */
export function sendOAuthError(
  reply: FastifyReply,
  status: number,
  error: string,
  description?: string,
  subtype?: string,
): FastifyReply {
  return reply
    .code(status)
    .headers(NO_STORE)
    .type('application/json; charset=utf-8')
    .send({
      error,
      ...(description === undefined ? {} : { error_description: description }),
      ...(subtype === undefined ? {} : { error_subtype: subtype }),
    });
}

export const NO_STORE = {
  'cache-control': 'no-cache, no-store, max-age=0, must-revalidate',
  expires: 'Mon, 01 Jan 1990 00:00:00 GMT',
  pragma: 'no-cache',
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'SAMEORIGIN',
  'x-xss-protection': '0',
};

export interface ApiErrorDetail {
  message: string;
  reason: string;
  domain?: string;
  location?: string;
  locationType?: string;
}

const STATUS_NAMES: Record<number, string> = {
  400: 'INVALID_ARGUMENT',
  401: 'UNAUTHENTICATED',
  403: 'PERMISSION_DENIED',
  404: 'NOT_FOUND',
  413: 'INVALID_ARGUMENT',
  429: 'RESOURCE_EXHAUSTED',
  500: 'INTERNAL',
  503: 'UNAVAILABLE',
};

/**
 * Google APIs' JSON error envelope (https://cloud.google.com/apis/design/errors#http_mapping), with
 * its `details` array when given (e.g. a `google.rpc.ErrorInfo`).
 */
export function sendApiError(
  reply: FastifyReply,
  status: number,
  message: string,
  detail: ApiErrorDetail,
  details?: readonly Record<string, unknown>[],
): FastifyReply {
  return reply
    .code(status)
    .header('cache-control', 'private, max-age=0')
    .header('vary', 'Origin, X-Origin')
    .type('application/json; charset=UTF-8')
    .send({
      error: {
        code: status,
        message,
        errors: [{ domain: 'global', ...detail }],
        status: STATUS_NAMES[status] ?? 'UNKNOWN',
        ...(details === undefined ? {} : { details }),
      },
    });
}

export const API_ERRORS = {
  missingCredentials: (reply: FastifyReply, details?: readonly Record<string, unknown>[]) =>
    sendApiError(
      reply.header('www-authenticate', 'Bearer realm="https://accounts.google.com/"'),
      401,
      'Request is missing required authentication credential. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.',
      { message: 'Login Required.', reason: 'required', location: 'Authorization', locationType: 'header' },
      details,
    ),
  invalidCredentials: (reply: FastifyReply, details?: readonly Record<string, unknown>[]) =>
    sendApiError(
      reply.header('www-authenticate', 'Bearer realm="https://accounts.google.com/", error="invalid_token"'),
      401,
      'Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.',
      {
        message: 'Invalid Credentials',
        reason: 'authError',
        location: 'Authorization',
        locationType: 'header',
      },
      details,
    ),
  insufficientScope: (reply: FastifyReply, details?: readonly Record<string, unknown>[]) =>
    sendApiError(
      reply.header(
        'www-authenticate',
        'Bearer realm="https://accounts.google.com/", error="insufficient_scope"',
      ),
      403,
      'Request had insufficient authentication scopes.',
      { message: 'Insufficient Permission', reason: 'insufficientPermissions' },
      details,
    ),
  // Google does not publish the exact 429 body; this is the usageLimits shape Drive documents for its
  // rate-limit errors (https://developers.google.com/workspace/drive/api/guides/handle-errors).
  rateLimited: (reply: FastifyReply, retryAfterSeconds: number) =>
    sendApiError(reply.header('retry-after', String(retryAfterSeconds)), 429, 'Rate Limit Exceeded', {
      message: 'Rate Limit Exceeded',
      reason: 'rateLimitExceeded',
      domain: 'usageLimits',
    }),
  notFound: (reply: FastifyReply, fileId: string) =>
    sendApiError(reply, 404, `File not found: ${fileId}.`, {
      message: `File not found: ${fileId}.`,
      reason: 'notFound',
      location: 'fileId',
      locationType: 'parameter',
    }),
  badRequest: (reply: FastifyReply, message: string, reason = 'badRequest', location?: string) =>
    sendApiError(reply, 400, message, {
      message,
      reason,
      ...(location === undefined ? {} : { location, locationType: 'parameter' }),
    }),
  notSupportedForAppData: (reply: FastifyReply) =>
    sendApiError(reply, 403, 'Method not supported for files within the Application Data folder.', {
      message: 'Method not supported for files within the Application Data folder.',
      reason: 'notSupportedForAppDataFolderFiles',
    }),
};
