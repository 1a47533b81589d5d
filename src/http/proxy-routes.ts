import type { Readable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { Behalf } from '../behalf.js';
import { BehalfError } from '../errors.js';

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

const Params = z.object({
  sub: z
    .string()
    .min(1)
    .max(255)
    .regex(/^[\x21-\x7e]+$/),
  '*': z.string().max(4096),
});

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
  void app.register(async (scoped) => {
    // Bodies are passed through untouched, whatever their type.
    scoped.removeAllContentTypeParsers();
    scoped.addContentTypeParser('*', (_request, payload, done) => done(null, payload));

    scoped.all('/v1/users/:sub/google/*', async (request, reply) => {
      const parsed = Params.safeParse(request.params);
      if (!parsed.success)
        throw new BehalfError('INVALID_REQUEST', 'The proxied path is malformed.', { reason: 'bad_path' });
      const target = targetUrl(behalf.googleApiUrl, parsed.data['*'], request.url);

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
      const upstream = await behalf.request(parsed.data.sub, target, {
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
    });
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
