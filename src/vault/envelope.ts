import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { BehalfError } from '../errors.js';
import type { Keyring } from './keyring.js';

/**
 * Token ciphertexts at rest: AES-256-GCM with a fresh random 96-bit nonce per write (NIST SP
 * 800-38D §8.2.2; at 2^32 writes per key the collision bound is still far away, and
 * `behalf keys rotate` resets the count), a key id so keys can be rotated, and associated data
 * binding the ciphertext to its row and column, so a ciphertext copied to another user, client or
 * column does not decrypt.
 *
 * Envelope layout, version 1 (all lengths in bytes):
 *
 *     offset 0        1   version = 0x01
 *     offset 1        1   L = length of the key id (1-32)
 *     offset 2        L   key id, ASCII [A-Za-z0-9_-]
 *     offset 2+L      12  nonce
 *     offset 14+L     n   ciphertext (n = UTF-8 length of the token)
 *     last            16  GCM authentication tag
 *
 * Associated data (authenticated, not stored): the concatenation of five length-prefixed fields,
 * each a 4-byte big-endian length and then the bytes, so no field can shift into another:
 *
 *     lp("behalf/v1") ‖ lp(column) ‖ lp(sub) ‖ lp(clientId) ‖ lp(header)
 *
 * where column is `refresh_token` or `access_token` (sub and clientId are the grant's) or
 * `webhook_secret` (sub is the endpoint's id and clientId its URL, see src/webhooks/secrets.ts),
 * all UTF-8, and header is the envelope's first 2+L bytes (version and key id), so those cannot be
 * altered either.
 */
export const ENVELOPE_VERSION = 1;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const MAX_KEY_ID_BYTES = 32;
const AAD_DOMAIN = 'behalf/v1';

export type TokenColumn = 'refresh_token' | 'access_token' | 'webhook_secret';

/** Which row and column a ciphertext belongs to: bound in as associated data. */
export interface RowBinding {
  column: TokenColumn;
  sub: string;
  clientId: string;
}

/** Encrypt a token for one row and column under the keyring's primary key. */
export function encryptToken(keyring: Keyring, binding: RowBinding, plaintext: string): Buffer {
  // Stryker disable next-line StringLiteral: key ids are [A-Za-z0-9_-] (the Keyring refuses others), alike in ASCII and the default UTF-8
  const keyId = Buffer.from(keyring.primaryId, 'ascii');
  const key = keyring.keyFor(keyring.primaryId)!;
  const header = Buffer.from([ENVELOPE_VERSION, keyId.length, ...keyId]);
  const nonce = randomBytes(NONCE_BYTES);
  // Stryker disable next-line ObjectLiteral: GCM's tag is 16 bytes by default; named anyway so the length never rests on a default
  const cipher = createCipheriv('aes-256-gcm', key, nonce, { authTagLength: TAG_BYTES });
  cipher.setAAD(associatedData(binding, header));
  // Stryker disable next-line StringLiteral: UTF-8 is also what update() takes a string as when no encoding is named
  const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
  return Buffer.concat([header, nonce, body, cipher.getAuthTag()]);
}

/**
 * Decrypt a token stored for this row and column. Fails with a BehalfError that names the
 * column and the problem, never the token or a key: `INTERNAL` (reason `ciphertext_malformed` or
 * `ciphertext_invalid`: altered, or moved from another row or column) or `CONFIG_INVALID`
 * (reason `unknown_key_id`: the key it was written with is not configured).
 */
export function decryptToken(keyring: Keyring, binding: RowBinding, envelope: Buffer): string {
  const what = `The stored ${binding.column.replace('_', ' ')}`;
  const parsed = parseEnvelope(envelope);
  if (parsed === undefined) {
    throw new BehalfError(
      'INTERNAL',
      `${what} is not a behalf ciphertext envelope (unknown version or truncated).`,
      {
        reason: 'ciphertext_malformed',
      },
    );
  }
  const key = keyring.keyFor(parsed.keyId);
  if (key === undefined) {
    throw new BehalfError(
      'CONFIG_INVALID',
      `BEHALF_ENCRYPTION_KEYS: ${what} is encrypted with key id '${parsed.keyId}', which is not configured. ` +
        'Put that key back (after the primary) and run `behalf keys rotate` before removing it.',
      { reason: 'unknown_key_id' },
    );
  }
  // Stryker disable next-line ObjectLiteral: parseEnvelope always hands setAuthTag the last TAG_BYTES bytes, so no shorter tag can reach it; named as defence in depth
  const decipher = createDecipheriv('aes-256-gcm', key, parsed.nonce, { authTagLength: TAG_BYTES });
  decipher.setAAD(associatedData(binding, parsed.header));
  decipher.setAuthTag(parsed.tag);
  try {
    return Buffer.concat([decipher.update(parsed.ciphertext), decipher.final()]).toString('utf8');
  } catch {
    throw new BehalfError(
      'INTERNAL',
      `${what} failed authentication: it was altered, or moved from another user, client or column.`,
      { reason: 'ciphertext_invalid' },
    );
  }
}

/** The key id an envelope was written with (key rotation looks at it); undefined when malformed. */
export function envelopeKeyId(envelope: Buffer): string | undefined {
  return parseEnvelope(envelope)?.keyId;
}

function parseEnvelope(
  envelope: Buffer,
): { header: Buffer; keyId: string; nonce: Buffer; ciphertext: Buffer; tag: Buffer } | undefined {
  // Stryker disable next-line ConditionalExpression,EqualityOperator: a shorter envelope fails the length check below too; this keeps envelope[1] defined
  if (envelope.length < 2) return undefined;
  if (envelope[0] !== ENVELOPE_VERSION) return undefined;
  const idLength = envelope[1]!;
  // An empty key id fails the key id check below.
  if (idLength > MAX_KEY_ID_BYTES) return undefined;
  const headerLength = 2 + idLength;
  if (envelope.length < headerLength + NONCE_BYTES + TAG_BYTES) return undefined;
  const keyId = envelope.subarray(2, headerLength).toString('latin1');
  if (!/^[A-Za-z0-9_-]+$/.test(keyId)) return undefined;
  return {
    header: envelope.subarray(0, headerLength),
    keyId,
    nonce: envelope.subarray(headerLength, headerLength + NONCE_BYTES),
    ciphertext: envelope.subarray(headerLength + NONCE_BYTES, envelope.length - TAG_BYTES),
    tag: envelope.subarray(envelope.length - TAG_BYTES),
  };
}

/**
 * Written field by field into one buffer: building a Buffer per field and concatenating them was
 * 13% of a cold token lookup's CPU time (two decryptions per lookup, profiled on SQLite).
 */
function associatedData(binding: RowBinding, header: Buffer): Buffer {
  const fields = [AAD_DOMAIN, binding.column, binding.sub, binding.clientId];
  let size = 4 + header.length;
  for (const field of fields) size += 4 + Buffer.byteLength(field);
  const aad = Buffer.allocUnsafe(size);
  let at = 0;
  for (const field of fields) {
    const length = aad.write(field, at + 4);
    aad.writeUInt32BE(length, at);
    at += 4 + length;
  }
  aad.writeUInt32BE(header.length, at);
  header.copy(aad, at + 4);
  return aad;
}
