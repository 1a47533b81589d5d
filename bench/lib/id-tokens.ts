/**
 * Google-shaped ID tokens minted with node:crypto, signed by a key whose JWKS and PEM certificate
 * the verifiers are given directly (no network). Claims mirror what Google (and the emulator)
 * issue, so the tokens are about the size of real ones (~1 KiB).
 */
import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  randomBytes,
  sign,
  type KeyObject,
} from 'node:crypto';
import { selfSignedCertificate } from '../../src/emulator/x509.js';

export const GOOGLE_ISSUERS = ['https://accounts.google.com', 'accounts.google.com'];

export interface SigningKey {
  kid: string;
  /** PKCS#8 PEM, to hand the key to minting threads. */
  privateKeyPem: string;
  /** What Google serves at /oauth2/v3/certs. */
  jwks: { keys: Array<Record<string, string>> };
  /** What Google serves at /oauth2/v1/certs: kid → X.509 certificate PEM. */
  pemCerts: Record<string, string>;
}

export function createSigningKey(): SigningKey {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const kid = randomBytes(20).toString('hex');
  const jwk = publicKey.export({ format: 'jwk' }) as { n: string; e: string };
  const now = Date.now();
  const certificate = selfSignedCertificate({
    privateKey,
    publicKey,
    commonName: 'federated-signon.system.gserviceaccount.com',
    serial: randomBytes(8),
    notBefore: new Date(now - 3_600_000),
    notAfter: new Date(now + 14 * 86_400_000),
  });
  return {
    kid,
    privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
    jwks: { keys: [{ kty: 'RSA', alg: 'RS256', use: 'sig', kid, n: jwk.n, e: jwk.e }] },
    pemCerts: { [kid]: certificate },
  };
}

export interface TokenAudience {
  /** The server (web) client id: `aud`. */
  audience: string;
  /** The app client id: `azp`. */
  authorizedParty: string;
}

/** `count` distinct valid ID tokens (distinct subs and at_hash), valid for an hour from now. */
export function mintIdTokens(
  key: { kid: string; privateKeyPem: string },
  audience: TokenAudience,
  first: number,
  count: number,
): string[] {
  const privateKey: KeyObject = createPrivateKey(key.privateKeyPem);
  const header = Buffer.from(JSON.stringify({ alg: 'RS256', kid: key.kid, typ: 'JWT' })).toString(
    'base64url',
  );
  const iat = Math.floor(Date.now() / 1000);
  const tokens: string[] = [];
  for (let i = first; i < first + count; i++) {
    const sub = `1${String(i).padStart(20, '0')}`;
    const claims = {
      iss: 'https://accounts.google.com',
      azp: audience.authorizedParty,
      aud: audience.audience,
      sub,
      email: `user${i}@example.com`,
      email_verified: true,
      at_hash: createHash('sha256').update(`ya29.bench-${i}`).digest().subarray(0, 16).toString('base64url'),
      name: `Bench User ${i}`,
      picture: `https://lh3.googleusercontent.com/a/ACg8ocJ${randomBytes(48).toString('base64url')}=s96-c`,
      given_name: 'Bench',
      family_name: `User ${i}`,
      iat,
      exp: iat + 3600,
    };
    const payload = Buffer.from(JSON.stringify(claims)).toString('base64url');
    const signature = sign('RSA-SHA256', Buffer.from(`${header}.${payload}`), privateKey).toString(
      'base64url',
    );
    tokens.push(`${header}.${payload}.${signature}`);
  }
  return tokens;
}

/** The public key of a JWKS entry, parsed once (what the "limit" contender is allowed). */
export function publicKeyOf(jwk: Record<string, string>): KeyObject {
  return createPublicKey({ key: { kty: 'RSA', n: jwk.n!, e: jwk.e! }, format: 'jwk' });
}
