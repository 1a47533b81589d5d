/**
 * Google ID token verification, written by hand on node:crypto rather than a general JOSE
 * library: this is behalf's own domain and its hot path (apps resend ID tokens on every request).
 * A narrow verifier accepts exactly what Google issues (RS256, a kid from Google's key set, flat
 * JSON without duplicate keys, Google's issuer) and nothing a general library would also accept
 * (other algorithms, embedded or remote keys, `crit`), and a cache of verified tokens makes a
 * resent token cost a map lookup. The hostile-token suite in test/idtoken proves the first; the
 * benchmarks prove the second.
 */
import { createHash, verify as verifySignature, type KeyObject } from 'node:crypto';
import type { Clock } from '../clock.js';
import { BehalfError, isBehalfError } from '../errors.js';
import type { GoogleKeySet } from './key-set.js';
import { parseJsonObjectStrict } from './strict-json.js';

/**
 * Why a token was refused. Stable: part of the API (`reason` in ID_TOKEN_INVALID errors;
 * `hd_mismatch` is HD_NOT_ALLOWED's, a genuine token of a user outside the required domain).
 */
export type IdTokenRejection =
  | 'malformed'
  | 'too_large'
  | 'bad_header'
  | 'unsupported_alg'
  | 'forbidden_header'
  | 'unknown_kid'
  | 'bad_signature'
  | 'bad_issuer'
  | 'bad_audience'
  | 'azp_not_allowed'
  | 'expired'
  | 'issued_in_future'
  | 'lifetime_too_long'
  | 'missing_claim'
  | 'bad_claim'
  | 'hd_mismatch'
  | 'at_hash_mismatch'
  | 'nonce_mismatch';

export interface IdTokenPolicy {
  /** The server (web) client id: the only accepted `aud`. */
  audience: string;
  /** App client ids accepted as `azp` (the audience itself is always accepted). */
  allowedAuthorizedParties: readonly string[];
  /** Default: Google's two spellings, `https://accounts.google.com` and `accounts.google.com`. */
  issuers?: readonly string[];
  /** When set, the `hd` claim must equal it (Workspace domain restriction), else HD_NOT_ALLOWED. */
  hostedDomain?: string;
  /** Default 60 s. */
  clockSkewSeconds?: number;
  /** Default 86,400 s: `exp - iat` may not exceed it. */
  maxLifetimeSeconds?: number;
}

export interface VerifiedIdToken {
  sub: string;
  email: string | null;
  emailVerified: boolean;
  name: string | null;
  givenName: string | null;
  familyName: string | null;
  picture: string | null;
  locale: string | null;
  hd: string | null;
  aud: string;
  azp: string | null;
  iss: string;
  iat: number;
  exp: number;
  nonce: string | null;
}

export interface VerifyOptions {
  /** The access token issued with the ID token: `at_hash` must be present and match. */
  accessToken?: string;
  /** The nonce the app sent: the `nonce` claim must equal it. */
  nonce?: string;
}

// Google's ID tokens are about 1 KiB; 8 KiB leaves room for long profile claims and no more.
const MAX_TOKEN_LENGTH = 8 * 1024;
const SEGMENT = /^[A-Za-z0-9_-]+$/;
const BODY_AND_SIGNATURE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;
const ID_TOKEN: GoogleJwtKind = { what: 'ID token', typ: ['JWT'] };
const FORBIDDEN_HEADERS = ['crit', 'jku', 'x5u', 'jwk', 'x5c', 'x5t', 'x5t#S256', 'zip', 'enc'];

interface CachedToken {
  claims: VerifiedIdToken;
  atHash: string | null;
}

export class IdTokenVerifier {
  readonly #keys: GoogleKeySet;
  readonly #clock: Clock;
  readonly #policy: Required<Omit<IdTokenPolicy, 'hostedDomain'>> & { hostedDomain: string | undefined };
  readonly #cache = new Map<string, CachedToken>();
  readonly #ring: Array<string | undefined>;
  #ringNext = 0;

  constructor(options: {
    keys: GoogleKeySet;
    clock: Clock;
    policy: IdTokenPolicy;
    cacheSize?: number | undefined;
  }) {
    this.#keys = options.keys;
    this.#clock = options.clock;
    const p = options.policy;
    this.#policy = {
      audience: p.audience,
      allowedAuthorizedParties: [...p.allowedAuthorizedParties],
      issuers: p.issuers ?? ['https://accounts.google.com', 'accounts.google.com'],
      hostedDomain: p.hostedDomain?.toLowerCase(),
      clockSkewSeconds: p.clockSkewSeconds ?? 60,
      maxLifetimeSeconds: p.maxLifetimeSeconds ?? 86_400,
    };
    this.#ring = new Array<string | undefined>(Math.max(1, options.cacheSize ?? 10_000));
  }

  async verify(idToken: string, options: VerifyOptions = {}): Promise<VerifiedIdToken> {
    let entry = this.#cache.get(idToken);
    if (entry === undefined) {
      // Inlined verifyGoogleJwt: with Google's keys cached, a miss awaits nothing.
      const jwt = parseGoogleJwt(idToken, ID_TOKEN);
      checkGoogleJwtSignature(
        jwt,
        this.#keys.freshKey(jwt.kid) ?? (await loadKey(this.#keys, jwt.kid, ID_TOKEN.what)),
        ID_TOKEN.what,
      );
      entry = this.#checkClaims(jwt.payload);
      this.#remember(idToken, entry);
    }
    // Time, at_hash and nonce depend on the call, so they are checked on every use, cached or not.
    this.#checkTime(entry.claims);
    if (options.accessToken !== undefined) {
      if (entry.atHash === null) reject('missing_claim', 'The ID token has no at_hash.');
      if (entry.atHash !== accessTokenHash(options.accessToken))
        reject('at_hash_mismatch', 'The ID token was not issued with this access token.');
    }
    if (options.nonce !== undefined && entry.claims.nonce !== options.nonce)
      reject('nonce_mismatch', 'The ID token nonce does not match.');
    // Last, once the token is proven genuine and current: the user is real but not one this
    // deployment accepts (403, not 401). `hd` is the user's Workspace domain, absent for consumer
    // accounts; Google says to check it on the server, https://developers.google.com/identity/openid-connect/openid-connect#an-id-tokens-payload
    const required = this.#policy.hostedDomain;
    if (required !== undefined && entry.claims.hd?.toLowerCase() !== required) {
      throw new BehalfError('HD_NOT_ALLOWED', 'The user is not in the allowed Google Workspace domain.', {
        reason: 'hd_mismatch',
      });
    }
    return entry.claims;
  }

  /**
   * First in, first out. The order is kept in a ring of keys rather than taken from the Map
   * (`keys().next()`), which in V8 walks the deleted slots at the table's head: measured at ~4 µs
   * per insert once the cache is full, a fifth of an RSA verification.
   */
  #remember(token: string, entry: CachedToken): void {
    if (this.#cache.has(token)) return; // verified twice concurrently: it holds one ring slot
    const evicted = this.#ring[this.#ringNext];
    if (evicted !== undefined) this.#cache.delete(evicted);
    this.#ring[this.#ringNext] = token;
    this.#ringNext = (this.#ringNext + 1) % this.#ring.length;
    this.#cache.set(token, entry);
  }

  #checkClaims(c: Record<string, unknown>): CachedToken {
    const policy = this.#policy;
    if (typeof c.iss !== 'string') reject('bad_issuer', 'The ID token has no issuer.');
    if (!policy.issuers.includes(c.iss as string))
      reject('bad_issuer', 'The ID token was not issued by Google.');
    const aud = Array.isArray(c.aud) && c.aud.length === 1 ? c.aud[0] : c.aud;
    if (aud !== policy.audience) reject('bad_audience', 'The ID token is for another audience.');
    const azp = optionalString(c, 'azp');
    if (azp !== null && azp !== policy.audience && !policy.allowedAuthorizedParties.includes(azp)) {
      reject('azp_not_allowed', 'The ID token was obtained by an app client that is not allowed (azp).');
    }
    if (typeof c.sub !== 'string' || c.sub.length === 0) reject('missing_claim', 'The ID token has no sub.');
    if ((c.sub as string).length > 255)
      reject('bad_claim', 'The ID token sub is longer than 255 characters.');
    const iat = wholeSeconds(c, 'iat');
    const exp = wholeSeconds(c, 'exp');
    if (exp - iat > policy.maxLifetimeSeconds)
      reject('lifetime_too_long', 'The ID token claims a lifetime longer than Google issues.');
    let emailVerified = false;
    if (c.email_verified === true || c.email_verified === 'true') emailVerified = true;
    else if (c.email_verified !== undefined && c.email_verified !== false && c.email_verified !== 'false') {
      reject('bad_claim', 'The email_verified claim is not a boolean.');
    }
    const hd = optionalString(c, 'hd');
    const atHash = optionalString(c, 'at_hash');
    const claims: VerifiedIdToken = {
      sub: c.sub as string,
      email: optionalString(c, 'email'),
      emailVerified,
      name: optionalString(c, 'name'),
      givenName: optionalString(c, 'given_name'),
      familyName: optionalString(c, 'family_name'),
      picture: optionalString(c, 'picture'),
      locale: optionalString(c, 'locale'),
      hd,
      aud: aud as string,
      azp,
      iss: c.iss as string,
      iat,
      exp,
      nonce: optionalString(c, 'nonce'),
    };
    this.#checkTime(claims);
    return { claims, atHash };
  }

  #checkTime(claims: VerifiedIdToken): void {
    const now = Math.floor(this.#clock.now() / 1000);
    const skew = this.#policy.clockSkewSeconds;
    if (claims.exp + skew <= now) reject('expired', 'The ID token has expired.');
    if (claims.iat - skew > now) reject('issued_in_future', 'The ID token is issued in the future.');
  }
}

/** The options of one kind of JWT Google signs for us. */
export interface GoogleJwtKind {
  what: string;
  typ: readonly string[];
  maxLength?: number;
}

interface ParsedJwt {
  kid: string;
  header: Readonly<Record<string, unknown>>;
  payload: Record<string, unknown>;
  /** `header.payload`, the signed text. */
  signed: string;
  signature: string;
}

/**
 * The structural and signature checks shared by every JWT Google signs for us (ID tokens, RISC
 * security event tokens): size, three canonical base64url segments, flat JSON objects without
 * duplicate keys, RS256 only, no key-carrying or critical headers, a `kid` from Google's key set,
 * and a valid signature. Claims are the caller's to check.
 */
export async function verifyGoogleJwt(
  token: string,
  keys: GoogleKeySet,
  kind: GoogleJwtKind,
): Promise<{ header: Readonly<Record<string, unknown>>; payload: Record<string, unknown> }> {
  const jwt = parseGoogleJwt(token, kind);
  checkGoogleJwtSignature(
    jwt,
    keys.freshKey(jwt.kid) ?? (await loadKey(keys, jwt.kid, kind.what)),
    kind.what,
  );
  return { header: jwt.header, payload: jwt.payload };
}

/** Everything but the signature, synchronously. */
function parseGoogleJwt(token: string, kind: GoogleJwtKind): ParsedJwt {
  const what = kind.what;
  if (typeof token !== 'string' || token.length === 0) reject('malformed', `The ${what} is empty.`);
  if (token.length > (kind.maxLength ?? MAX_TOKEN_LENGTH)) reject('too_large', `The ${what} is too large.`);
  const first = token.indexOf('.');
  const last = token.lastIndexOf('.');
  // Exactly two dots; an empty segment fails the base64url check below.
  if (first === -1 || token.indexOf('.', first + 1) !== last)
    reject('malformed', `A ${what} has exactly three segments.`);
  const h = token.slice(0, first);
  const p = token.slice(first + 1, last);
  const signature = token.slice(last + 1);
  // Payload and signature in one scan; the header in checkedHeader, unless remembered (checked then).
  if (!BODY_AND_SIGNATURE.test(token.slice(first + 1)) || !noStrayBits(p) || !noStrayBits(signature)) {
    reject('malformed', `A ${what} segment is not canonical base64url.`);
  }
  const header = checkedHeader(h, what);
  const typ = header.typ;
  if (typ !== undefined && (typeof typ !== 'string' || !kind.typ.includes(typ)))
    reject('bad_header', `The ${what} header typ is not expected.`);
  const payload = parseJsonObjectStrict(decodeSegment(p));
  if (payload === undefined)
    reject('malformed', `The ${what} payload is not a JSON object with unique keys.`);
  return { kid: header.kid as string, header, payload: payload!, signed: token.slice(0, last), signature };
}

/**
 * Every token a key signs has the same header segment, so a header that passed its checks is
 * remembered by its text (frozen; at most a few hundred, forgotten all at once when full): a
 * token then costs no header decode or parse. Headers that fail are never remembered.
 */
const checkedHeaders = new Map<string, Readonly<Record<string, unknown>>>();
const CHECKED_HEADERS_MAX = 256;

function checkedHeader(segment: string, what: string): Readonly<Record<string, unknown>> {
  const known = checkedHeaders.get(segment);
  if (known !== undefined) return known;
  if (!isCanonicalBase64Url(segment)) reject('malformed', `A ${what} segment is not canonical base64url.`);
  const header = parseJsonObjectStrict(decodeSegment(segment));
  if (header === undefined) reject('bad_header', `The ${what} header is not a JSON object with unique keys.`);
  for (const name of FORBIDDEN_HEADERS) {
    if (name in header!)
      reject('forbidden_header', `The ${what} header carries "${name}", which Google never sends.`);
  }
  const { alg, kid } = header!;
  if (alg !== 'RS256') reject('unsupported_alg', `Only RS256 is accepted for a ${what}.`);
  if (typeof kid !== 'string' || kid.length === 0 || kid.length > 256)
    reject('bad_header', `The ${what} header has no key id.`);
  if (checkedHeaders.size >= CHECKED_HEADERS_MAX) checkedHeaders.clear();
  checkedHeaders.set(segment, Object.freeze(header!));
  return header!;
}

async function loadKey(keys: GoogleKeySet, kid: string, what: string): Promise<KeyObject> {
  let key;
  try {
    key = await keys.getKey(kid);
  } catch (error) {
    if (isBehalfError(error)) throw error;
    throw new BehalfError('GOOGLE_UNAVAILABLE', "Google's signing keys could not be read; retry later.", {
      reason: 'keys_unavailable',
    });
  }
  if (key === null) reject('unknown_kid', `The ${what} is signed with a key Google does not publish.`);
  return key!;
}

function checkGoogleJwtSignature(jwt: ParsedJwt, key: KeyObject, what: string): void {
  if (
    !verifySignature(
      'RSA-SHA256',
      Buffer.from(jwt.signed, 'latin1'),
      key,
      Buffer.from(jwt.signature, 'base64url'),
    )
  ) {
    reject('bad_signature', `The ${what} signature is not valid.`);
  }
}

function optionalString(claims: Record<string, unknown>, name: string): string | null {
  const value = claims[name];
  if (value === undefined || value === null) return null;
  if (typeof value !== 'string') reject('bad_claim', `The ${name} claim is not a string.`);
  return value as string;
}

function wholeSeconds(claims: Record<string, unknown>, name: 'iat' | 'exp'): number {
  const value = claims[name];
  if (!Number.isSafeInteger(value) || (value as number) < 0)
    reject('missing_claim', `The ID token ${name} is not a whole number of seconds.`);
  return value as number;
}

/** OIDC at_hash: the left half of SHA-256 of the access token, base64url. */
export function accessTokenHash(accessToken: string): string {
  return createHash('sha256').update(accessToken, 'ascii').digest().subarray(0, 16).toString('base64url');
}

/**
 * Unpadded base64url that decodes and encodes back to the same text: only the alphabet, no
 * impossible length, and no stray bits in the last character (checked arithmetically, without
 * decoding: this is on the hot path).
 */
function isCanonicalBase64Url(segment: string): boolean {
  return SEGMENT.test(segment) && noStrayBits(segment);
}

/** The length and last-character half of {@link isCanonicalBase64Url}, for segments already known to be in the alphabet. */
function noStrayBits(segment: string): boolean {
  const rest = segment.length % 4;
  if (rest === 1) return false;
  if (rest === 0) return true;
  const last = BASE64URL.indexOf(segment[segment.length - 1]!);
  // 2 characters carry 8 bits (4 unused), 3 carry 16 (2 unused): those must be zero.
  return (last & (rest === 2 ? 0x0f : 0x03)) === 0;
}

const BASE64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

function decodeSegment(segment: string): string {
  return Buffer.from(segment, 'base64url').toString('utf8');
}

export function reject(reason: IdTokenRejection, message: string): never {
  throw new BehalfError('ID_TOKEN_INVALID', message, { reason });
}
