import { request, type Dispatcher } from 'undici';
import type { FetchLike } from './http.js';

/** More than any answer of Google's OAuth or OpenID endpoints (a few KiB): the rest is refused. */
const MAX_BODY_BYTES = 1024 * 1024;
/** Answers that carry no body, which `new Response` refuses one for. */
const NULL_BODY_STATUSES = new Set([101, 204, 205, 304]);

/**
 * The default HTTP client for Google's OAuth and OpenID endpoints (token, revocation, discovery,
 * signing keys): a `fetch` over undici's `request()`, answering a WHATWG `Response` whose body
 * was read whole. Measured against the global `fetch` on a loopback server: ~350 µs of CPU per
 * call for `fetch`, ~140 µs for this (~80 µs for the bare `request`), and a sign-in or a refresh
 * makes one such call; the refresh storm and sign-in benchmarks carry it.
 *
 * It does what behalf's calls need and hands anything else to the global `fetch`: string and
 * URLSearchParams bodies, headers as a plain object or `Headers`, an abort signal (a timeout
 * rejects with the signal's reason, as `fetch` does), redirects followed for GET only. Failures
 * reject as `fetch`'s do (a TypeError whose `cause` is the network error), so callers cannot tell
 * the two apart. `behalf.fetch` and the proxy do not use it: their answers may be large streams.
 */
export const requestFetch: FetchLike = async (input, init = {}) => {
  const { body, contentType } = bodyOf(init.body);
  if (input instanceof Request || body === UNSUPPORTED) return globalThis.fetch(input, init);
  const method = (init.method ?? 'GET').toUpperCase();
  const headers = headersOf(init.headers);
  if (
    contentType !== undefined &&
    !Object.keys(headers).some((name) => name.toLowerCase() === 'content-type')
  )
    headers['content-type'] = contentType;
  if (init.signal?.aborted) throw init.signal.reason;
  let answer: Dispatcher.ResponseData;
  try {
    answer = await request(input, {
      method: method as Dispatcher.HttpMethod,
      headers,
      body,
      signal: init.signal ?? undefined,
      ...(method === 'GET' ? { maxRedirections: 5 } : {}),
    });
  } catch (error) {
    throw init.signal?.aborted === true && error === init.signal.reason
      ? error
      : new TypeError('fetch failed', { cause: error });
  }
  const bytes = await readCapped(answer.body, init.signal);
  const responseHeaders = new Headers();
  for (const [name, value] of Object.entries(answer.headers)) {
    if (Array.isArray(value)) for (const one of value) responseHeaders.append(name, one);
    else if (value !== undefined) responseHeaders.append(name, value);
  }
  return new Response(NULL_BODY_STATUSES.has(answer.statusCode) ? null : bytes, {
    status: answer.statusCode,
    headers: responseHeaders,
  });
};

const UNSUPPORTED = Symbol('unsupported body');

function bodyOf(body: RequestInit['body']): {
  body: string | null | typeof UNSUPPORTED;
  contentType?: string;
} {
  if (body === undefined || body === null) return { body: null };
  if (typeof body === 'string') return { body, contentType: 'text/plain;charset=UTF-8' };
  if (body instanceof URLSearchParams)
    return { body: body.toString(), contentType: 'application/x-www-form-urlencoded;charset=UTF-8' };
  return { body: UNSUPPORTED };
}

function headersOf(headers: RequestInit['headers']): Record<string, string> {
  if (headers === undefined) return {};
  if (headers instanceof Headers || Array.isArray(headers)) return Object.fromEntries(new Headers(headers));
  return { ...(headers as Record<string, string>) };
}

async function readCapped(
  body: Dispatcher.ResponseData['body'],
  signal: AbortSignal | null | undefined,
): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of body as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        body.destroy();
        throw new Error(`the answer is larger than ${MAX_BODY_BYTES} bytes`);
      }
      chunks.push(chunk);
    }
  } catch (error) {
    throw signal?.aborted === true ? signal.reason : new TypeError('fetch failed', { cause: error });
  }
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size);
}
