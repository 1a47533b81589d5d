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
  /** Rotate every this many seconds of the emulator's clock; undefined: only by hand. */
  #rotationSeconds: number | undefined;
  /** Emulator-clock seconds of the last rotation (or of when the schedule was set). */
  #rotatedAt = 0;

  constructor(private readonly clock: OffsetClock) {
    // Start as Google usually is: two keys published, the newer one signing.
    this.#keys = [this.#generate(), this.#generate()];
  }

  get current(): SigningKey {
    this.#rotateIfDue();
    return this.#keys[0]!;
  }

  get rotationSeconds(): number | undefined {
    return this.#rotationSeconds;
  }

  /**
   * Rotate on a schedule, as Google does (a new key about every 8 days, observed in the published
   * key set; https://developers.google.com/identity/openid-connect/openid-connect#validatinganidtoken
   * says keys change "infrequently" and to honour the cache headers): each time the emulator's
   * clock passes a period, a new key signs. Undefined turns the schedule off.
   */
  setRotation(seconds: number | undefined): void {
    this.#rotationSeconds = seconds;
    this.#rotatedAt = this.#now();
  }

  /** Rotations the clock has passed since the last one; at most three happen (older keys are gone anyway). */
  #rotateIfDue(): void {
    if (this.#rotationSeconds === undefined) return;
    const due = Math.floor((this.#now() - this.#rotatedAt) / this.#rotationSeconds);
    if (due <= 0) return;
    for (let i = 0; i < Math.min(due, MAX_PUBLISHED); i++) this.#rotateOnce();
    this.#rotatedAt += due * this.#rotationSeconds;
  }

  #now(): number {
    return Math.floor(this.clock.now() / 1000);
  }

  /** A new key signs from now on; the oldest drops out past three published keys. */
  rotate(): { kid: string; published: string[] } {
    this.#rotateIfDue();
    this.#rotateOnce();
    if (this.#rotationSeconds !== undefined) this.#rotatedAt = this.#now();
    return { kid: this.current.kid, published: this.#keys.map((k) => k.kid) };
  }

  #rotateOnce(): void {
    this.#keys = [this.#generate(), ...this.#keys].slice(0, MAX_PUBLISHED);
  }

  jwks(): { keys: SigningKey['jwk'][] } {
    this.#rotateIfDue();
    return { keys: this.#keys.map((k) => k.jwk) };
  }

  pems(): Record<string, string> {
    this.#rotateIfDue();
    return Object.fromEntries(this.#keys.map((k) => [k.kid, k.certificate]));
  }

  /**
   * Seconds until the next shared cache boundary (Google's max-age is "time left", as observed;
   * https://developers.google.com/identity/openid-connect/openid-connect#validatinganidtoken), and
   * never past the next scheduled rotation.
   */
  maxAgeSeconds(): number {
    const now = this.#now();
    const window = CACHE_WINDOW_SECONDS - (now % CACHE_WINDOW_SECONDS);
    if (this.#rotationSeconds === undefined) return window;
    return Math.max(0, Math.min(window, this.#rotatedAt + this.#rotationSeconds - now));
  }

  /** An RS256 JWT signed with the current key. */
  signJwt(payload: Record<string, unknown>, kid?: string, typ = 'JWT'): string {
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
