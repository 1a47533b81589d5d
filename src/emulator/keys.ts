import { createHash, generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto';
import type { OffsetClock } from '../clock.js';
import { selfSignedCertificate } from './x509.js';

interface SigningKey {
  kid: string;
  privateKey: KeyObject;
  publicKey: KeyObject;
  jwk: { kty: 'RSA'; alg: 'RS256'; use: 'sig'; kid: string; n: string; e: string };
  certificate: string;
}

/** How long key-set responses may be cached: the time left to a shared boundary, as Google does. */
const CACHE_WINDOW_SECONDS = 6 * 3600;
/** Published keys: normally two ("the old one plus the new one", as observed), three just after a rotation. */
const MAX_PUBLISHED = 3;

/**
 * The emulator's ID token signing keys. The newest key signs (which of Google's published keys
 * signs is not documented; the newest is the likely choice); the previous ones stay
 * published so tokens they signed keep verifying until they drop out of the set.
 */
export class SigningKeys {
  #keys: SigningKey[] = [];

  constructor(private readonly clock: OffsetClock) {
    // Start as Google usually is: two keys published, the newer one signing.
    this.#keys = [this.#generate(), this.#generate()];
  }

  get current(): SigningKey {
    return this.#keys[0]!;
  }

  /** A new key signs from now on; the oldest drops out past three published keys. */
  rotate(): { kid: string; published: string[] } {
    this.#keys = [this.#generate(), ...this.#keys].slice(0, MAX_PUBLISHED);
    return { kid: this.current.kid, published: this.#keys.map((k) => k.kid) };
  }

  jwks(): { keys: SigningKey['jwk'][] } {
    return { keys: this.#keys.map((k) => k.jwk) };
  }

  pems(): Record<string, string> {
    return Object.fromEntries(this.#keys.map((k) => [k.kid, k.certificate]));
  }

  /** Seconds until the next shared cache boundary (Google's max-age is "time left", as observed; https://developers.google.com/identity/openid-connect/openid-connect#validatinganidtoken). */
  maxAgeSeconds(): number {
    const now = Math.floor(this.clock.now() / 1000);
    return CACHE_WINDOW_SECONDS - (now % CACHE_WINDOW_SECONDS);
  }

  /** An RS256 JWT signed with the current key. */
  signJwt(payload: Record<string, unknown>, kid = this.current.kid, typ = 'JWT'): string {
    const key = this.#keys.find((k) => k.kid === kid) ?? this.current;
    const header = { alg: 'RS256', kid: key.kid, typ };
    const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(payload))}`;
    return `${input}.${sign('RSA-SHA256', Buffer.from(input), key.privateKey).toString('base64url')}`;
  }

  #generate(): SigningKey {
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const jwk = publicKey.export({ format: 'jwk' }) as { n: string; e: string };
    // Google's kids are 40 hex characters (as served at https://www.googleapis.com/oauth2/v3/certs).
    const kid = createHash('sha1').update(jwk.n).digest('hex');
    const now = this.clock.now();
    return {
      kid,
      privateKey,
      publicKey,
      jwk: { kty: 'RSA', alg: 'RS256', use: 'sig', kid, n: jwk.n, e: jwk.e },
      certificate: selfSignedCertificate({
        privateKey,
        publicKey,
        commonName: 'federated-signon.system.gserviceaccount.com',
        serial: randomBytes(8),
        notBefore: new Date(now - 86_400_000),
        notAfter: new Date(now + 16 * 86_400_000),
      }),
    };
  }
}

export function b64url(text: string): string {
  return Buffer.from(text, 'utf8').toString('base64url');
}
