import { performance } from 'node:perf_hooks';
import { BehalfError } from '../errors.js';

/** The HTTP client behalf talks to Google through; injected so tests can fault the network. */
export type FetchLike = typeof fetch;

/** Google's OAuth and OpenID endpoints, as named to a {@link GoogleObserver}. */
export type GoogleEndpointName = 'discovery' | 'jwks' | 'token' | 'revocation';

/**
 * Told of each call to Google as it ends (metrics): which endpoint, how long it took until the
 * answer's headers (or the failure), and for a refresh how it ended.
 */
export interface GoogleObserver {
  request(endpoint: GoogleEndpointName, seconds: number): void;
  refresh(outcome: RefreshOutcome): void;
}

/** How one call to the token endpoint with a refresh token ended: `transient` is 5xx, 429, a timeout or the network. */
export type RefreshOutcome = 'ok' | 'invalid_grant' | 'transient' | 'error';

export interface GoogleErrorBody {
  error: string;
  errorDescription: string | undefined;
  /** Google's finer reason beside some errors, e.g. `invalid_rapt` with `invalid_grant`. */
  errorSubtype?: string;
}

/**
 * Google's OAuth endpoints answer errors as `{"error": "...", "error_description": "..."}`
 * (RFC 6749 §5.2); very old or rate-limited answers may be HTML. Returns undefined when the body is not
 * that shape. Only Google's short error strings are kept, never the raw body.
 */
export function parseOAuthErrorBody(text: string): GoogleErrorBody | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof parsed !== 'object' || parsed === null) return undefined;
  const { error, error_description: description, error_subtype: subtype } = parsed as Record<string, unknown>;
  if (typeof error !== 'string' || error.length === 0 || error.length > 100) return undefined;
  return {
    error,
    errorDescription: typeof description === 'string' ? description.slice(0, 300) : undefined,
    // https://developers.google.com/identity/protocols/oauth2#expiration (session control: invalid_rapt)
    ...(typeof subtype === 'string' && subtype.length > 0 && subtype.length <= 100
      ? { errorSubtype: subtype }
      : {}),
  };
}

/** Seconds from a Retry-After header (delta-seconds or HTTP date), capped; undefined if absent. */
export function parseRetryAfter(value: string | null, nowMs: number, capSeconds = 3600): number | undefined {
  if (value === null || value.trim() === '') return undefined;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Math.min(Number(trimmed), capSeconds);
  const date = Date.parse(trimmed);
  if (Number.isNaN(date)) return undefined;
  return Math.max(0, Math.min(Math.ceil((date - nowMs) / 1000), capSeconds));
}

/**
 * Sends a request to Google with a timeout. Network failures and timeouts become a retryable
 * GOOGLE_UNAVAILABLE; the URL (which never carries secrets: they travel in bodies and headers) is
 * named in the message, the error itself is attached as `cause`.
 */
export async function sendToGoogle(
  fetchImpl: FetchLike,
  url: string,
  init: RequestInit,
  timeoutMs: number,
  what: string,
  observe?: (seconds: number) => void,
): Promise<Response> {
  const started = performance.now();
  try {
    const response = await fetchImpl(url, { ...init, signal: AbortSignal.timeout(timeoutMs) });
    observe?.((performance.now() - started) / 1000);
    return response;
  } catch (cause) {
    observe?.((performance.now() - started) / 1000);
    const timedOut =
      cause instanceof DOMException && (cause.name === 'TimeoutError' || cause.name === 'AbortError');
    throw new BehalfError(
      'GOOGLE_UNAVAILABLE',
      timedOut
        ? `Google did not answer the ${what} within ${timeoutMs} ms; retry later.`
        : `Google could not be reached for the ${what}; retry later.`,
      { cause: redactCause(cause), reason: timedOut ? 'timeout' : 'network' },
    );
  }
}

/** Keep only the error's class and code: fetch errors can echo request details. */
function redactCause(cause: unknown): Error {
  if (cause instanceof Error) {
    const code = (cause.cause as { code?: unknown } | undefined)?.code;
    return new Error(`${cause.name}${typeof code === 'string' ? ` (${code})` : ''}`);
  }
  return new Error('unknown network error');
}
