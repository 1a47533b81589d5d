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

const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE']);

/**
 * Calls a Google API as the user:
 * - the user's access token is added (refreshed first when due);
 * - a 401 (token revoked or expired at Google mid-flight) gets a new token and one retry;
 * - 429 and 503 with Retry-After are retried after the wait Google asks for (within limits);
 * - other 5xx and network errors are retried, with backoff and jitter, for idempotent methods only;
 * - bodies that cannot be replayed (streams) are sent once.
 * Only Google API hosts are called (see GoogleHostAllowList).
 */
export function createUserFetch(deps: UserFetchDeps): UserFetch {
  const policy = { ...DEFAULT_CALL_POLICY, ...deps.policy };
  const sleep = deps.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  const random = deps.random ?? Math.random;

  return async (sub, input, init = {}) => {
    const url = deps.allowList.check(input instanceof URL ? input.href : input);
    const method = (init.method ?? 'GET').toUpperCase();
    const replayable = isReplayable(init.body);
    const retrySafe = IDEMPOTENT.has(method) && replayable;
    const deadline = deps.clock.now() + policy.deadlineMs;
    let token = await deps.tokens.getAccessToken(sub);
    let refreshedAfter401 = false;

    for (let attempt = 1; ; attempt++) {
      const headers = new Headers(init.headers);
      headers.set('authorization', `Bearer ${token.token}`);
      const canRetry = attempt < policy.maxAttempts;
      const backoff = () => Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (attempt - 1)) * random();
      const fitsDeadline = (delay: number) => deps.clock.now() + delay < deadline;

      let response: Response;
      try {
        response = await deps.fetch(url, { ...init, method, headers });
      } catch (error) {
        if (isBehalfError(error)) throw error;
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

      if (response.status === 401 && !refreshedAfter401 && replayable) {
        // The token was refused at Google (revoked, expired early): get a new one, retry once.
        refreshedAfter401 = true;
        await response.body?.cancel();
        token = await deps.tokens.getAccessToken(sub, { rejected: token.token });
        continue;
      }
      if ((response.status === 429 || response.status === 503) && replayable && canRetry) {
        const retryAfter = parseRetryAfter(response.headers.get('retry-after'), deps.clock.now());
        const mayRetry = response.status === 429 || retryAfter !== undefined || IDEMPOTENT.has(method);
        const delay = retryAfter === undefined ? backoff() : retryAfter * 1000;
        if (mayRetry && (retryAfter ?? 0) <= policy.maxRetryAfterSeconds && fitsDeadline(delay)) {
          await response.body?.cancel();
          await sleep(delay);
          continue;
        }
        return response;
      }
      if (response.status >= 500 && retrySafe && canRetry) {
        const delay = backoff();
        if (fitsDeadline(delay)) {
          await response.body?.cancel();
          await sleep(delay);
          continue;
        }
      }
      return response;
    }
  };
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
