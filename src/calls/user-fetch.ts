import type { Readable } from 'node:stream';
import { request, type Dispatcher } from 'undici';
import type { Clock } from '../clock.js';
import { BehalfError, isBehalfError } from '../errors.js';
import { parseRetryAfter, type FetchLike } from '../google/http.js';
import type { TokenService } from '../tokens/index.js';
import type { GoogleHostAllowList } from './allow-list.js';

export interface CallPolicy {
  /** Attempts in all, the first included. */
  maxAttempts: number;
  /** No retry starts after this long. */
  deadlineMs: number;
  /** A Retry-After longer than this is not waited for: the response goes back to the caller. */
  maxRetryAfterSeconds: number;
  baseDelayMs: number;
  maxDelayMs: number;
}

export const DEFAULT_CALL_POLICY: CallPolicy = {
  maxAttempts: 4,
  deadlineMs: 60_000,
  maxRetryAfterSeconds: 30,
  baseDelayMs: 250,
  maxDelayMs: 8_000,
};

export interface UserFetchDeps {
  tokens: TokenService;
  fetch: FetchLike;
  clock: Clock;
  allowList: GoogleHostAllowList;
  policy?: Partial<CallPolicy>;
  sleep?: (ms: number) => Promise<void>;
  random?: () => number;
}

/** `fetch` for one user: adds their token and applies behalf's refresh and retry rules. */
export type UserFetch = (sub: string, input: string | URL, init?: RequestInit) => Promise<Response>;

/**
 * An HTTP request on Node streams, shaped like undici's `request()` (the default): no WHATWG
 * Request, Headers or web streams between the sockets. Injected so tests can fence the network.
 */
export type HttpRequestLike = (
  url: URL,
  options: {
    method: string;
    headers: Record<string, string>;
    body?: Readable | string | Buffer | null;
    signal?: AbortSignal;
  },
) => Promise<{ statusCode: number; headers: Record<string, string | string[] | undefined>; body: Readable }>;

/** undici's `request` as an {@link HttpRequestLike}: its global keep-alive agent, its timeouts. */
export const undiciRequest: HttpRequestLike = (url, options) =>
  request(url, { ...options, method: options.method as Dispatcher.HttpMethod });

export interface UserRequestInit {
  method?: string;
  headers?: Record<string, string>;
  /** A stream is sent once (no retry can replay it); a string or Buffer can be sent again. */
  body?: Readable | string | Buffer | null;
  signal?: AbortSignal;
}

export interface UserRequestAnswer {
  status: number;
  /** As Google sent them, lower-case names (content-encoding included: the body is not decoded). */
  headers: Record<string, string | string[] | undefined>;
  body: Readable;
}

/** {@link UserFetch} on Node streams, for proxies and large transfers: same token, refresh and retry rules. */
export type UserRequest = (
  sub: string,
  input: string | URL,
  init?: UserRequestInit,
) => Promise<UserRequestAnswer>;

const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE']);

/** What the rules need to see of one attempt's answer, whatever the HTTP client. */
interface Attempt {
  status: number;
  retryAfter: string | null;
  wwwAuthenticate: string | null;
  /** Throw the body away before trying again. */
  discard(): Promise<void>;
}

interface Call<R> {
  sub: string;
  url: URL;
  method: string;
  /** The body can be sent again (absent, or held in memory). */
  replayable: boolean;
  /** The caller's own signal: once it aborts, nothing is retried and its error is the answer. */
  signal?: AbortSignal | null | undefined;
  send(token: string): Promise<R>;
  view(answer: R): Attempt;
}

/**
 * Calls a Google API as the user:
 * - the user's access token is added (refreshed first when due);
 * - a 401 (token revoked or expired at Google mid-flight) gets a new token and one retry;
 * - 429 and 503 with Retry-After are retried after the wait Google asks for (within limits);
 * - other 5xx and network errors are retried, with backoff and jitter, for idempotent methods only;
 * - bodies that cannot be replayed (streams) are sent once.
 * Only Google API hosts are called (see GoogleHostAllowList). The HTTP client is the caller's:
 * `fetch` for {@link createUserFetch}, undici's `request` for {@link createUserRequest}.
 */
function createCaller(deps: Omit<UserFetchDeps, 'fetch'>): <R>(call: Call<R>) => Promise<R> {
  const policy = { ...DEFAULT_CALL_POLICY, ...deps.policy };
  const sleep = deps.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  const random = deps.random ?? Math.random;

  return async ({ sub, url, method, replayable, signal, send, view }) => {
    const retrySafe = IDEMPOTENT.has(method) && replayable;
    const deadline = deps.clock.now() + policy.deadlineMs;
    let token = await deps.tokens.getAccessToken(sub);
    let refreshedAfter401 = false;

    for (let attempt = 1; ; attempt++) {
      const canRetry = attempt < policy.maxAttempts;
      const backoff = () => Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (attempt - 1)) * random();
      const fitsDeadline = (delay: number) => deps.clock.now() + delay < deadline;

      let answer;
      try {
        answer = await send(token.token);
      } catch (error) {
        if (isBehalfError(error) || signal?.aborted === true) throw error;
        const delay = backoff();
        if (retrySafe && canRetry && fitsDeadline(delay)) {
          await sleep(delay);
          continue;
        }
        throw new BehalfError('GOOGLE_UNAVAILABLE', `${url.host} could not be reached; retry later.`, {
          reason: 'network',
          cause: new Error((error as Error | undefined)?.name ?? 'network error'),
        });
      }
      const response = view(answer);

      if (response.status === 401 && !refreshedAfter401 && replayable) {
        // The token was refused at Google (revoked, expired early): get a new one, retry once.
        refreshedAfter401 = true;
        await response.discard();
        token = await deps.tokens.getAccessToken(sub, { rejected: token.token });
        continue;
      }
      // Stryker disable next-line StringLiteral: a missing header, as '' or as any other text without error="insufficient_scope", is not a match
      if (response.status === 403 && /\berror="insufficient_scope"/.test(response.wwwAuthenticate ?? '')) {
        // The user withheld a scope this call needs (granular consent): no token will do; only
        // asking the user for it will (RFC 6750 §3.1,
        // https://developers.google.com/identity/protocols/oauth2/resources/granular-permissions).
        await response.discard();
        // Stryker disable next-line StringLiteral: the header matched just above, so it is never null here
        throw scopeNotGranted(url, token.scopes, response.wwwAuthenticate ?? '');
      }
      if ((response.status === 429 || response.status === 503) && replayable && canRetry) {
        const retryAfter = parseRetryAfter(response.retryAfter, deps.clock.now());
        const mayRetry = response.status === 429 || retryAfter !== undefined || IDEMPOTENT.has(method);
        const delay = retryAfter === undefined ? backoff() : retryAfter * 1000;
        if (mayRetry && (retryAfter ?? 0) <= policy.maxRetryAfterSeconds && fitsDeadline(delay)) {
          await response.discard();
          await sleep(delay);
          continue;
        }
        return answer;
      }
      if (response.status >= 500 && retrySafe && canRetry) {
        const delay = backoff();
        if (fitsDeadline(delay)) {
          await response.discard();
          await sleep(delay);
          continue;
        }
      }
      return answer;
    }
  };
}

/** `fetch` as the user (see {@link createCaller} for the rules). */
export function createUserFetch(deps: UserFetchDeps): UserFetch {
  const call = createCaller(deps);
  return async (sub, input, init = {}) => {
    const url = deps.allowList.check(input instanceof URL ? input.href : input);
    const method = (init.method ?? 'GET').toUpperCase();
    return call({
      sub,
      url,
      method,
      replayable: isReplayable(init.body),
      signal: init.signal,
      send: (token) => {
        const headers = new Headers(init.headers);
        headers.set('authorization', `Bearer ${token}`);
        return deps.fetch(url, { ...init, method, headers });
      },
      view: (response) => ({
        status: response.status,
        retryAfter: response.headers.get('retry-after'),
        wwwAuthenticate: response.headers.get('www-authenticate'),
        discard: async () => {
          await response.body?.cancel();
        },
      }),
    });
  };
}

/**
 * The same calls on Node streams (the proxy's path). In the proxy benchmark fetch's WHATWG
 * layers (Headers, web streams, Readable.fromWeb) cost more CPU than the rest of a proxied call;
 * undici's request() serves about twice the calls per second on the same cores.
 */
export function createUserRequest(
  deps: Omit<UserFetchDeps, 'fetch'> & { request: HttpRequestLike },
): UserRequest {
  const call = createCaller(deps);
  return async (sub, input, init = {}) => {
    const url = deps.allowList.check(input instanceof URL ? input.href : input);
    const method = (init.method ?? 'GET').toUpperCase();
    const { body = null, signal } = init;
    const answer = await call({
      sub,
      url,
      method,
      replayable: body === null || typeof body === 'string' || Buffer.isBuffer(body),
      signal,
      send: (token) => {
        const headers: Record<string, string> = {};
        for (const [name, value] of Object.entries(init.headers ?? {})) headers[name.toLowerCase()] = value;
        headers.authorization = `Bearer ${token}`;
        return deps.request(url, { method, headers, body, ...(signal === undefined ? {} : { signal }) });
      },
      view: (response) => ({
        status: response.statusCode,
        retryAfter: headerValue(response.headers['retry-after']),
        wwwAuthenticate: headerValue(response.headers['www-authenticate']),
        discard: () => discardBody(response.body),
      }),
    });
    return { status: answer.statusCode, headers: answer.headers, body: answer.body };
  };
}

/**
 * SCOPE_NOT_GRANTED for a 403 `insufficient_scope`: the scopes the user granted, and the ones the
 * API named as enough (the header's `scope`, when Google sends one) that the user has not granted.
 */
function scopeNotGranted(url: URL, granted: readonly string[], header: string): BehalfError {
  const named =
    /\bscope="([^"]*)"/
      .exec(header)?.[1]
      ?.split(' ')
      .filter((s) => s.length > 0) ?? [];
  const missing = named.filter((s) => !granted.includes(s));
  return new BehalfError(
    'SCOPE_NOT_GRANTED',
    `${url.host} refused the call: it needs a scope the user did not grant. Ask the user for it (sign in again requesting that scope), then retry.`,
    {
      reason: 'insufficient_scope',
      details: {
        action: 'request_scopes',
        granted_scopes: granted,
        ...(missing.length === 0 ? {} : { missing_scopes: missing }),
      },
    },
  );
}

/** Read a small answer to its end, so its connection can serve the next call; give up on a large one. */
async function discardBody(body: Readable): Promise<void> {
  // undici reports a body destroyed before its end as an error: nothing here wants to hear it.
  // Stryker disable next-line StringLiteral: Node's for-await iterator below keeps its own 'error' listener, after a break too, so no test can hear the difference
  body.on('error', () => undefined);
  let bytes = 0;
  try {
    for await (const chunk of body) {
      bytes += (chunk as Buffer).length;
      if (bytes > 64 * 1024) break; // leaving the loop destroys the body
    }
  } catch {
    // A body cut short has nothing left to say.
  }
}

function headerValue(value: string | string[] | undefined): string | null {
  return (Array.isArray(value) ? value[0] : value) ?? null;
}

/** Bodies fetch can send again: absent, strings, bytes, URLSearchParams, Blob, FormData. */
function isReplayable(body: RequestInit['body']): boolean {
  return (
    body === undefined ||
    body === null ||
    typeof body === 'string' ||
    body instanceof ArrayBuffer ||
    ArrayBuffer.isView(body) ||
    body instanceof URLSearchParams ||
    body instanceof Blob ||
    body instanceof FormData
  );
}
