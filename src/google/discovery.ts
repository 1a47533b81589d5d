import { z } from 'zod';
import type { Clock } from '../clock.js';
import { BehalfError } from '../errors.js';
import { sendToGoogle, type FetchLike, type GoogleObserver } from './http.js';

/** Google's published discovery document (https://accounts.google.com/.well-known/openid-configuration). */
export const GOOGLE_DISCOVERY_URL = 'https://accounts.google.com/.well-known/openid-configuration';
export const GOOGLE_API_URL = 'https://www.googleapis.com';

export interface GoogleEndpoints {
  issuer: string;
  authorizationEndpoint: string;
  tokenEndpoint: string;
  revocationEndpoint: string;
  userinfoEndpoint: string;
  jwksUri: string;
}

const httpsOrLoopbackUrl = z
  .string()
  .refine(isAcceptableEndpoint, 'must be an https URL (http only on loopback)');

const DiscoveryDocument = z.object({
  issuer: z.string().min(1),
  authorization_endpoint: httpsOrLoopbackUrl,
  token_endpoint: httpsOrLoopbackUrl,
  revocation_endpoint: httpsOrLoopbackUrl,
  userinfo_endpoint: httpsOrLoopbackUrl,
  jwks_uri: httpsOrLoopbackUrl,
});

/** Google's endpoints must be https; plain http is accepted only on loopback (the emulator). */
export function isAcceptableEndpoint(value: string): boolean {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return false;
  }
  if (url.protocol === 'https:') return true;
  return url.protocol === 'http:' && isLoopbackHost(url.hostname);
}

export function isLoopbackHost(hostname: string): boolean {
  return (
    hostname === 'localhost' ||
    hostname === '[::1]' ||
    hostname === '::1' ||
    /^127\.\d+\.\d+\.\d+$/.test(hostname)
  );
}

/**
 * The discovery document, fetched lazily and cached as its Cache-Control says (Google: "Standard
 * HTTP caching headers are used and should be respected", https://developers.google.com/identity/openid-connect/openid-connect#discovery). A failed refetch keeps
 * serving the last good copy: endpoints do not move often, and a blip must not stop sign-ins.
 */
export class GoogleDiscovery {
  #cached: { endpoints: GoogleEndpoints; expiresAt: number } | undefined;
  #inflight: Promise<GoogleEndpoints> | undefined;

  constructor(
    private readonly url: string,
    private readonly fetchImpl: FetchLike,
    private readonly clock: Clock,
    private readonly timeoutMs = 10_000,
    private readonly observer?: GoogleObserver,
  ) {}

  async endpoints(): Promise<GoogleEndpoints> {
    const cached = this.#cached;
    if (cached !== undefined && cached.expiresAt > this.clock.now()) return cached.endpoints;
    this.#inflight ??= this.#fetch().finally(() => {
      this.#inflight = undefined;
    });
    try {
      return await this.#inflight;
    } catch (error) {
      if (cached !== undefined) return cached.endpoints;
      throw error;
    }
  }

  async #fetch(): Promise<GoogleEndpoints> {
    const response = await sendToGoogle(
      this.fetchImpl,
      this.url,
      { headers: { accept: 'application/json' } },
      this.timeoutMs,
      'discovery document request',
      (seconds) => this.observer?.request('discovery', seconds),
    );
    if (!response.ok) {
      await response.body?.cancel();
      throw new BehalfError(
        response.status >= 500 || response.status === 429 ? 'GOOGLE_UNAVAILABLE' : 'GOOGLE_ERROR',
        `Google's discovery document (${this.url}) answered HTTP ${response.status}.`,
      );
    }
    const parsed = DiscoveryDocument.safeParse(await response.json().catch(() => undefined));
    if (!parsed.success) {
      throw new BehalfError(
        'GOOGLE_ERROR',
        `Google's discovery document (${this.url}) is not a valid OpenID configuration.`,
      );
    }
    const doc = parsed.data;
    const endpoints: GoogleEndpoints = {
      issuer: doc.issuer,
      authorizationEndpoint: doc.authorization_endpoint,
      tokenEndpoint: doc.token_endpoint,
      revocationEndpoint: doc.revocation_endpoint,
      userinfoEndpoint: doc.userinfo_endpoint,
      jwksUri: doc.jwks_uri,
    };
    this.#cached = { endpoints, expiresAt: this.clock.now() + maxAgeSeconds(response.headers, 3600) * 1000 };
    return endpoints;
  }
}

/** `max-age` minus `Age` from a response, or the fallback when absent. */
export function maxAgeSeconds(headers: Headers, fallbackSeconds: number): number {
  const match = /(?:^|,)\s*max-age=(\d+)/i.exec(headers.get('cache-control') ?? '');
  if (match?.[1] === undefined) return fallbackSeconds;
  const age = Number(headers.get('age') ?? '0');
  return Math.max(0, Number(match[1]) - (Number.isFinite(age) ? age : 0));
}
