import type { Readable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Behalf } from '../behalf.js';
import { BehalfError } from '../errors.js';
import { ProxyParams, SERVICE_SECURITY } from './schemas.js';

// Request headers passed on to Google; everything else (the service API key, cookies, hop-by-hop
// headers) stays here.
const FORWARDED_REQUEST_HEADERS = [
  'accept',
  'accept-encoding',
  'content-type',
  'content-length',
  'content-range',
  'range',
  'if-match',
  'if-none-match',
  'if-modified-since',
  'x-upload-content-type',
  'x-upload-content-length',
];
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'transfer-encoding',
  'te',
  'trailer',
  'upgrade',
  'proxy-authenticate',
  'proxy-authorization',
  'set-cookie',
]);

/**
 * `/v1/users/{sub}/google/{path}` forwards to `BEHALF_GOOGLE_API_URL/{path}` with the user's token;
 * `/v1/users/{sub}/google/{host}.googleapis.com/{path}` reaches another Google API host. Nothing
 * else can be reached (no open proxy). Bodies stream both ways: an upload or a download of any
 * size never sits in memory, and compressed answers pass through compressed (the client's
 * Accept-Encoding is forwarded, Google's Content-Encoding returned). Written on behalf.request
 * (undici's request) rather than a proxy library because the refresh-on-401 and Retry-After rules
 * are behalf's own (see calls/user-fetch.ts).
 */
export function registerProxyRoutes(app: FastifyInstance, behalf: Behalf): void {
  void app.register(async (plain) => {
    const scoped = plain.withTypeProvider<ZodTypeProvider>();
    // Bodies are passed through untouched, whatever their type.
    scoped.removeAllContentTypeParsers();
    scoped.addContentTypeParser('*', (_request, payload, done) => done(null, payload));

    const schema = {
      summary: 'Call a Google API as the user',
      description:
        "Forwarded to BEHALF_GOOGLE_API_URL/{path} (or https://{host}.googleapis.com/{path}) with the user's access token, refreshed when Google answers 401. Any method, body and content type; Google's answer is passed back as is (status, headers, body). behalf's own refusals (no key, malformed path, unknown user, host not allowed, needs consent, a scope the user withheld (SCOPE_NOT_GRANTED, for Google's 403 insufficient_scope), Google unreachable) carry the Error body.",
      tags: ['proxy'],
      security: SERVICE_SECURITY,
      params: ProxyParams,
      response: {
        default: {
          description: "Google's answer, passed through; or behalf's own refusal as an Error body.",
          content: { '*/*': { schema: z.unknown() } },
        },
      },
    };
    const badPath = () =>
      new BehalfError('INVALID_REQUEST', 'The proxied path is malformed.', { reason: 'bad_path' });
    scoped.all(
      '/v1/users/:sub/google/*',
      { schema, schemaErrorFormatter: badPath },
      async (request, reply) => {
        const target = targetUrl(behalf.googleApiUrl, request.params['*'], request.url);

        const headers: Record<string, string> = {};
        for (const name of FORWARDED_REQUEST_HEADERS) {
          const value = request.headers[name];
          if (typeof value === 'string') headers[name] = value;
        }
        // The client went away before the answer was sent: stop talking to Google too.
        const abort = new AbortController();
        reply.raw.once('close', () => {
          if (!reply.raw.writableFinished) abort.abort();
        });
        const hasBody = request.method !== 'GET' && request.method !== 'HEAD' && request.body !== undefined;
        const upstream = await behalf.request(request.params.sub, target, {
          method: request.method,
          headers,
          signal: abort.signal,
          body: hasBody ? (request.body as Readable) : null,
        });

        reply.code(upstream.status);
        for (const [name, value] of Object.entries(upstream.headers)) {
          if (value !== undefined && !HOP_BY_HOP.has(name)) reply.header(name, value);
        }
        reply.header('cache-control', upstream.headers['cache-control'] ?? 'private, no-store');
        return reply.send(upstream.body);
      },
    );
  });
}

/** The Google URL for a proxied path, keeping the query string as sent. */
function targetUrl(apiUrl: string, path: string, requestUrl: string): string {
  const query = requestUrl.includes('?') ? requestUrl.slice(requestUrl.indexOf('?')) : '';
  const [first, ...rest] = path.split('/');
  if (first !== undefined && first.includes('.')) {
    // An explicit host: checked against the allow-list by behalf.fetch.
    return `https://${first}/${rest.join('/')}${query}`;
  }
  return `${apiUrl}/${path}${query}`;
}
