import { createPublicKey, type KeyObject } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { Clock } from '../clock.js';
import { BehalfError } from '../errors.js';
import { maxAgeSeconds } from '../google/discovery.js';
import type { FetchLike } from '../google/http.js';

export interface GoogleKeySetOptions {
  /** e.g. https://www.googleapis.com/oauth2/v3/certs, or the emulator's. */
  jwksUri: string;
  fetch: FetchLike;
  clock: Clock;
  /**
   * Least time between two fetches caused by an unknown `kid` (default 60 s): a flood of tokens
   * with made-up key ids must not turn into a flood of requests to Google.
   */
  minRefetchIntervalMs?: number;
  /** Cache lifetime when the response has no usable Cache-Control (default 1 h). */
  defaultMaxAgeSeconds?: number;
  timeoutMs?: number;
  /** Told how long each fetch of the keys took (metrics), failures included. */
  observe?: (seconds: number) => void;
}

const MAX_JWKS_BYTES = 64 * 1024;
const MIN_RSA_BITS = 2048;

/**
 * Google's ID token signing keys, cached as the response's Cache-Control says
 * (https://developers.google.com/identity/openid-connect/openid-connect#validatinganidtoken), and
 * fetched again once, rate-limited, when a token names a key we do not know (a rotation).
 * Only RSA keys of at least 2048 bits meant for RS256 signatures are ever used.
 */
export class GoogleKeySet {
  #keys = new Map<string, KeyObject>();
  #expiresAt = 0;
  #lastFetchAt = Number.NEGATIVE_INFINITY;
  #inflight: Promise<void> | undefined;
  readonly #minRefetchMs: number;
  readonly #defaultMaxAge: number;

  constructor(private readonly options: GoogleKeySetOptions) {
    this.#minRefetchMs = options.minRefetchIntervalMs ?? 60_000;
    this.#defaultMaxAge = options.defaultMaxAgeSeconds ?? 3600;
  }

  /**
   * The key, when it is cached and the cache is fresh: no promise, no fetch (the hot path). When
   * this answers undefined, `getKey` decides (refresh, rotation, unknown kid).
   */
  freshKey(kid: string): KeyObject | undefined {
    return this.options.clock.now() < this.#expiresAt ? this.#keys.get(kid) : undefined;
  }

  /**
   * Whether usable keys are held (for readiness), fetching them when none are. Keys held past
   * their cache lifetime still count: they stay in use while Google cannot be reached.
   */
  async load(): Promise<boolean> {
    if (this.#keys.size === 0) await this.#refresh(false);
    return this.#keys.size > 0;
  }

  async getKey(kid: string): Promise<KeyObject | null> {
    const now = this.options.clock.now();
    if (now >= this.#expiresAt) {
      await this.#refresh(this.#keys.size > 0);
    } else if (!this.#keys.has(kid) && now - this.#lastFetchAt >= this.#minRefetchMs) {
      // An unknown kid while the cache is fresh: Google may have rotated. Look once.
      await this.#refresh(true);
    }
    return this.#keys.get(kid) ?? null;
  }

  /** One fetch at a time; concurrent callers share it. With `tolerateFailure`, old keys stay in use. */
  async #refresh(tolerateFailure: boolean): Promise<void> {
    this.#inflight ??= this.#fetch().finally(() => {
      this.#inflight = undefined;
    });
    try {
      await this.#inflight;
    } catch (error) {
      if (!tolerateFailure) throw error;
    }
  }

  async #fetch(): Promise<void> {
    const { jwksUri, fetch, clock } = this.options;
    this.#lastFetchAt = clock.now();
    const started = performance.now();
    let response: Response;
    let text: string;
    try {
      response = await fetch(jwksUri, {
        headers: { accept: 'application/json' },
        signal: AbortSignal.timeout(this.options.timeoutMs ?? 10_000),
      });
      text = await response.text().catch(() => '');
    } catch {
      throw unavailable(`Google's signing keys (${jwksUri}) could not be fetched; retry later.`);
    } finally {
      this.options.observe?.((performance.now() - started) / 1000);
    }
    if (!response.ok)
      throw unavailable(`Google's signing keys (${jwksUri}) answered HTTP ${response.status}; retry later.`);
    if (text.length > MAX_JWKS_BYTES)
      throw unavailable(`Google's signing keys (${jwksUri}) are unexpectedly large.`);
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      throw unavailable(`Google's signing keys (${jwksUri}) are not JSON.`);
    }
    this.#keys = parseJwks(body);
    this.#expiresAt = clock.now() + maxAgeSeconds(response.headers, this.#defaultMaxAge) * 1000;
  }
}

/** Usable keys of a JWKS by kid; anything that is not an RS256 signing key of ≥2048 bits is ignored. */
export function parseJwks(body: unknown): Map<string, KeyObject> {
  const keys = new Map<string, KeyObject>();
  const list = (body as { keys?: unknown } | null)?.keys;
  if (!Array.isArray(list)) return keys;
  for (const jwk of list.slice(0, 50) as Array<Record<string, unknown>>) {
    if (typeof jwk !== 'object' || jwk === null) continue;
    const { kty, alg, use, kid, n, e } = jwk;
    if (
      kty !== 'RSA' ||
      typeof kid !== 'string' ||
      kid.length === 0 ||
      typeof n !== 'string' ||
      typeof e !== 'string'
    )
      continue;
    if (alg !== undefined && alg !== 'RS256') continue;
    if (use !== undefined && use !== 'sig') continue;
    if (keys.has(kid)) continue;
    try {
      const key = createPublicKey({ key: { kty: 'RSA', n, e }, format: 'jwk' });
      if ((key.asymmetricKeyDetails?.modulusLength ?? 0) < MIN_RSA_BITS) continue;
      keys.set(kid, key);
    } catch {
      // A malformed key is skipped, never used.
    }
  }
  return keys;
}

function unavailable(message: string): BehalfError {
  return new BehalfError('GOOGLE_UNAVAILABLE', message, { reason: 'keys_unavailable', retryAfter: 5 });
}
