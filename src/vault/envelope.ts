import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { BehalfError } from '../errors.js';
import type { Keyring } from './keyring.js';

/**
 * Token ciphertexts at rest. AES-256-GCM, a fresh 96-bit nonce per write, and associated data that
 * binds the ciphertext to its row and column, so a ciphertext copied to another user, client or
 * column does not decrypt. Layout (version 1):
 *
 *   [0x01][key id length: 1 byte][key id: ASCII][nonce: 12 bytes][ciphertext][tag: 16 bytes]
 */
const VERSION = 1;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;

export type TokenColumn = 'refresh_token' | 'access_token';

export interface RowBinding {
  column: TokenColumn;
  sub: string;
  clientId: string;
}

export function encryptToken(keyring: Keyring, binding: RowBinding, plaintext: string): Buffer {
  const key = keyring.get(keyring.primaryId)!;
  const keyId = Buffer.from(keyring.primaryId, 'ascii');
  const nonce = randomBytes(NONCE_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, nonce);
  cipher.setAAD(associatedData(binding));
  const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
  return Buffer.concat([Buffer.from([VERSION, keyId.length]), keyId, nonce, body, cipher.getAuthTag()]);
}

export function decryptToken(keyring: Keyring, binding: RowBinding, envelope: Buffer): string {
  const fail = (why: string): never => {
    throw new BehalfError('INTERNAL', `A stored ${binding.column.replace('_', ' ')} could not be decrypted: ${why}.`, {
      reason: 'decrypt_failed',
    });
  };
  if (envelope.length < 2 || envelope[0] !== VERSION) fail('unknown envelope version');
  const idLength = envelope[1]!;
  const headerLength = 2 + idLength + NONCE_BYTES;
  if (envelope.length < headerLength + TAG_BYTES) fail('envelope too short');
  const keyId = envelope.subarray(2, 2 + idLength).toString('ascii');
  const key = keyring.get(keyId) ?? fail(`key '${keyId}' is not in BEHALF_ENCRYPTION_KEYS`);
  const nonce = envelope.subarray(2 + idLength, headerLength);
  const decipher = createDecipheriv('aes-256-gcm', key, nonce);
  decipher.setAAD(associatedData(binding));
  decipher.setAuthTag(envelope.subarray(envelope.length - TAG_BYTES));
  try {
    return Buffer.concat([decipher.update(envelope.subarray(headerLength, envelope.length - TAG_BYTES)), decipher.final()]).toString('utf8');
  } catch {
    return fail('authentication failed (wrong key, or the ciphertext was altered or moved)');
  }
}

/** The key id an envelope was written with (key rotation looks at it). */
export function envelopeKeyId(envelope: Buffer): string | undefined {
  if (envelope.length < 2 || envelope[0] !== VERSION) return undefined;
  return envelope.subarray(2, 2 + envelope[1]!).toString('ascii');
}

/** Length-prefixed fields, so no two bindings serialise to the same bytes. */
function associatedData(binding: RowBinding): Buffer {
  const parts = ['behalf/v1', binding.column, binding.sub, binding.clientId].map((p) => Buffer.from(p, 'utf8'));
  return Buffer.concat(parts.flatMap((p) => [uint32(p.length), p]));
}

function uint32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}
