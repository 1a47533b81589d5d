/**
 * Signing secrets and signatures, as the Standard Webhooks specification defines them
 * (https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md):
 * a secret is `whsec_` and the base64 of random bytes, and a signature is
 * `v1,<base64 of HMAC-SHA256 over "id.timestamp.body">` keyed with those bytes.
 *
 * The signing is written here by hand with node:crypto: it is five lines, and behalf takes no
 * run-time dependency for it. The tests verify it with the specification's own `standardwebhooks`
 * library.
 */
import { createHmac, randomBytes } from 'node:crypto';
import { decryptToken, encryptToken, type Keyring } from '../vault/index.js';

const PREFIX = 'whsec_';
/** 32 random bytes: the specification asks for 24 to 64. */
const SECRET_BYTES = 32;

/** A new signing secret, `whsec_<base64>`. Shown once, at creation; stored only encrypted. */
export function generateSecret(): string {
  return `${PREFIX}${randomBytes(SECRET_BYTES).toString('base64')}`;
}

/** The `webhook-signature` header value for one attempt of a delivery. */
export function signDelivery(secret: string, id: string, timestampSeconds: number, body: string): string {
  const key = Buffer.from(secret.slice(PREFIX.length), 'base64');
  const mac = createHmac('sha256', key).update(`${id}.${timestampSeconds}.${body}`, 'utf8').digest('base64');
  key.fill(0);
  return `v1,${mac}`;
}

/** Which endpoint a secret belongs to: bound into its envelope, so a secret copied to another endpoint row, or a URL changed underneath it, does not decrypt. */
export interface SecretBinding {
  id: string;
  url: string;
}

/** Encrypt a secret for its endpoint under the keyring's primary key (the vault's envelope, column `webhook_secret`). */
export function sealSecret(keyring: Keyring, endpoint: SecretBinding, secret: string): Buffer {
  return encryptToken(
    keyring,
    { column: 'webhook_secret', sub: endpoint.id, clientId: endpoint.url },
    secret,
  );
}

/** Decrypt an endpoint's secret; a BehalfError naming the problem (never the secret) when it cannot be. */
export function openSecret(keyring: Keyring, endpoint: SecretBinding, envelope: Buffer): string {
  return decryptToken(
    keyring,
    { column: 'webhook_secret', sub: endpoint.id, clientId: endpoint.url },
    envelope,
  );
}
