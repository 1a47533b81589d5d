import { BehalfError } from '../errors.js';

/**
 * Where a user's Google access token may be sent: Google API hosts only (https, *.googleapis.com)
 * and the configured API base URL (the emulator in development). A token sent anywhere else would
 * be handed to a stranger, so this is checked before every call and every proxied request.
 */
export class GoogleHostAllowList {
  readonly #extraOrigins: Set<string>;

  constructor(apiUrl: string, extra: readonly string[] = []) {
    this.#extraOrigins = new Set([new URL(apiUrl).origin, ...extra.map((u) => new URL(u).origin)]);
  }

  isAllowed(url: URL): boolean {
    if (this.#extraOrigins.has(url.origin)) return true;
    return (
      url.protocol === 'https:' &&
      // The default port only: a parsed URL has none for https://host:443 (WHATWG URL drops it).
      url.port === '' &&
      isGoogleApiHost(url.hostname)
    );
  }

  /** Parse and check a URL; throws PROXY_HOST_NOT_ALLOWED (403) for anything else. */
  check(target: string | URL): URL {
    let url: URL;
    try {
      url = typeof target === 'string' ? new URL(target) : target;
    } catch {
      throw new BehalfError('INVALID_REQUEST', 'The Google API URL is not a valid absolute URL.');
    }
    if (url.username !== '' || url.password !== '' || !this.isAllowed(url)) {
      throw new BehalfError(
        'HOST_NOT_ALLOWED',
        `${url.protocol}//${url.host} is not a Google API host; behalf sends user tokens only to Google.`,
      );
    }
    return url;
  }
}

export function isGoogleApiHost(hostname: string): boolean {
  const host = hostname.toLowerCase();
  return host === 'googleapis.com' || (host.endsWith('.googleapis.com') && /^[a-z0-9.-]+$/.test(host));
}
