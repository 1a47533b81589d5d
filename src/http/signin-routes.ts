import cors, { type FastifyCorsOptions } from '@fastify/cors';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { BehalfError } from '../errors.js';
import type { Behalf } from '../behalf.js';
import type { SignInResult } from '../signin/index.js';
import { isLoopbackAddress } from './net.js';
import { requestPath } from './request-log.js';
import type { UserProfile } from './schemas.js';
import {
  errorAnswers,
  jsonAnswer,
  SignInBody,
  SignInHeaders,
  SignInResult as SignInAnswer,
} from './schemas.js';

export interface SignInRouteOptions {
  behalf: Pick<Behalf, 'signIn'>;
  allowedOrigins: readonly string[];
  trustProxy: boolean;
  /** Sign-in attempts per client address per minute. */
  rateLimit: number;
}

/** Sign-in request bodies are tiny; a code is at most 256 bytes (the size we allow; Google does not publish one). */
export const SIGNIN_BODY_LIMIT = 8 * 1024;

const SIGNIN_PATH = '/v1/google/signin';

/**
 * `POST /v1/google/signin`: an app hands over its one-time server auth code. A web page on an
 * allowed origin may do so cross-origin: the route, alone on the server, answers CORS.
 */
export function registerSignInRoutes(app: FastifyInstance, options: SignInRouteOptions): void {
  // An encapsulated context under the route's own prefix: the CORS hooks reach the sign-in route
  // only, and the plugin's catch-all OPTIONS route matches nothing outside that path.
  void app.register(
    async (scope) => {
      await scope.register(cors, { delegator: signInCorsPolicy(options.allowedOrigins) });
      registerSignInRoute(scope, options);
    },
    { prefix: SIGNIN_PATH },
  );
}

/**
 * The CORS answer for one request (https://fetch.spec.whatwg.org/#http-cors-protocol): an allowed
 * origin is echoed, with POST and the two headers a sign-in sends, and never credentials (the
 * route reads no cookie). Anything else gets no CORS header at all, and a preflight from an origin
 * that is not allowed is refused outright.
 */
function signInCorsPolicy(
  allowedOrigins: readonly string[],
): (request: FastifyRequest) => Promise<FastifyCorsOptions> {
  const allowed = new Set(allowedOrigins);
  return async (request) => {
    const origin = request.headers.origin;
    if (requestPath(request.url) !== SIGNIN_PATH || origin === undefined) return { origin: false };
    if (!allowed.has(origin)) {
      // A POST sent without a preflight is refused by the route itself (ORIGIN_NOT_ALLOWED after
      // the X-Requested-With check, which a browser cannot pass without a preflight).
      if (request.method === 'OPTIONS') throw originNotAllowed();
      return { origin: false };
    }
    return {
      origin,
      methods: ['POST'],
      allowedHeaders: ['content-type', 'x-requested-with'],
      // The rate limit's 429 carries Retry-After; let the page read it.
      exposedHeaders: ['retry-after'],
      credentials: false,
      maxAge: 600,
    };
  };
}

function originNotAllowed(): BehalfError {
  return new BehalfError(
    'ORIGIN_NOT_ALLOWED',
    'This Origin may not send sign-in codes; add it to BEHALF_ALLOWED_ORIGINS.',
  );
}

function registerSignInRoute(plain: FastifyInstance, options: SignInRouteOptions): void {
  const scope = plain.withTypeProvider<ZodTypeProvider>();
  const config = { rateLimit: { max: options.rateLimit, timeWindow: 60_000 } };
  scope.post(
    '',
    {
      bodyLimit: SIGNIN_BODY_LIMIT,
      config,
      // The body and header are checked in the handler's order (transport, header, origin, type,
      // body), not before it: a request failing several checks gets the same refusal as before.
      attachValidation: true,
      schema: {
        summary: "Sign a user in with the app's one-time server auth code",
        description:
          'Called by the app (iOS, Android or web), not by its backend: no service API key. Answers CORS for the origins in BEHALF_ALLOWED_ORIGINS.',
        tags: ['sign-in'],
        consumes: ['application/json', 'application/x-www-form-urlencoded'],
        headers: SignInHeaders,
        body: SignInBody,
        response: {
          200: jsonAnswer('A returning user signed in.', SignInAnswer),
          201: jsonAnswer("The user's first sign-in.", SignInAnswer),
          ...errorAnswers({
            400: 'INVALID_REQUEST (no code), CODE_INVALID (Google refused the code: used, expired, or for another client) or REDIRECT_URI_MISMATCH.',
            401: "ID_TOKEN_INVALID: Google's ID token for the code failed a check.",
            403: 'CSRF_HEADER_REQUIRED, ORIGIN_NOT_ALLOWED, INSECURE_TRANSPORT (plain HTTP from another host) or HD_NOT_ALLOWED.',
            415: 'UNSUPPORTED_MEDIA_TYPE: send JSON or a form.',
            429: 'RATE_LIMITED: too many sign-ins from this address (Retry-After says when to retry).',
            502: 'GOOGLE_ERROR or CLIENT_MISCONFIGURED.',
            503: 'GOOGLE_UNAVAILABLE: Google could not be reached (retryable).',
          }),
        },
      },
    },
    async (request, reply) => {
      checkTransport(request, options.trustProxy);
      // Google's own sample: the app sets X-Requested-With and the backend refuses requests without
      // it, because a cross-site form post cannot set custom headers
      // (https://developers.google.com/identity/sign-in/web/server-side-flow#step_6_send_the_authorization_code_to_the_server).
      const requestedWith = request.headers['x-requested-with'];
      if (typeof requestedWith !== 'string' || requestedWith.trim() === '') {
        throw new BehalfError(
          'CSRF_HEADER_REQUIRED',
          'Send the X-Requested-With header (e.g. X-Requested-With: XMLHttpRequest).',
        );
      }
      const origin = request.headers.origin;
      if (origin !== undefined && !options.allowedOrigins.includes(origin)) throw originNotAllowed();
      const type = (request.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
      if (type !== 'application/json' && type !== 'application/x-www-form-urlencoded') {
        throw new BehalfError(
          'UNSUPPORTED_MEDIA_TYPE',
          'Send the code as application/json or application/x-www-form-urlencoded.',
        );
      }
      if (request.validationError !== undefined) {
        throw new BehalfError(
          'INVALID_REQUEST',
          request.validationError.validation?.[0]?.message ?? 'Invalid sign-in request.',
          { reason: 'bad_body' },
        );
      }
      const body = request.body;
      const result = await options.behalf.signIn({
        code: body.code,
        ...(body.redirect_uri === undefined ? {} : { redirectUri: body.redirect_uri }),
        ...(body.code_verifier === undefined ? {} : { codeVerifier: body.code_verifier }),
      });
      return reply
        .code(result.created ? 201 : 200)
        .header('cache-control', 'no-store')
        .send(signInJson(result));
    },
  );
}

/**
 * Codes travel over HTTPS only (the seed's premise): over plain HTTP they are accepted from
 * loopback, or behind a TLS-terminating proxy the operator told us about (BEHALF_TRUST_PROXY)
 * unless that proxy says the client came over http.
 */
function checkTransport(request: FastifyRequest, trustProxy: boolean): void {
  if (request.protocol === 'https') return;
  if (trustProxy) {
    const forwarded = request.headers['x-forwarded-proto'];
    if (forwarded === undefined) return;
  } else if (isLoopbackAddress(request.socket.remoteAddress)) {
    return;
  }
  throw new BehalfError(
    'INSECURE_TRANSPORT',
    'Sign-in codes are accepted only over HTTPS. Give behalf a certificate (BEHALF_TLS_CERT/BEHALF_TLS_KEY) or set BEHALF_TRUST_PROXY behind a TLS-terminating proxy.',
  );
}

export function signInJson(result: SignInResult): SignInAnswer {
  return {
    user: userJson(result.user),
    created: result.created,
    grant: {
      status: result.grant.status,
      offline_access: result.grant.offlineAccess,
      refresh_token_received: result.grant.refreshTokenReceived,
      scopes: result.grant.scopes,
      missing_scopes: result.grant.missingScopes,
    },
    action: result.action,
  };
}

export function userJson(user: SignInResult['user']): UserProfile {
  return {
    sub: user.sub,
    email: user.email,
    email_verified: user.emailVerified,
    name: user.name,
    given_name: user.givenName,
    family_name: user.familyName,
    picture: user.picture,
    locale: user.locale,
    hd: user.hd,
  };
}
