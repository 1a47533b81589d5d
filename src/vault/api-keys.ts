import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Store } from './types.js';

/**
 * Service API keys: `bhf_<id>_<secret>`. Only SHA-256 of the whole key is stored (the secret has
 * 256 bits of entropy, so a plain hash is enough; no password hashing needed), looked up by id and
 * compared in constant time.
 */
const KEY_FORMAT = /^bhf_([a-z0-9]{12})_([A-Za-z0-9_-]{43})$/;

export async function createApiKey(store: Store, name: string, now = Date.now()): Promise<{ id: string; key: string }> {
  const id = randomBytes(8).toString('hex').slice(0, 12);
  const key = `bhf_${id}_${randomBytes(32).toString('base64url')}`;
  await store.createApiKey({ id, hash: sha256(key), name: name.slice(0, 100), createdAt: now });
  return { id, key };
}

export async function verifyApiKey(store: Store, presented: string): Promise<boolean> {
  const match = KEY_FORMAT.exec(presented);
  if (match === null) return false;
  const record = await store.findApiKey(match[1]!);
  // Hash anyway when the id is unknown, so both paths cost the same.
  const expected = record?.hash ?? sha256('bhf_unknown');
  return timingSafeEqual(sha256(presented), expected) && record !== null;
}

function sha256(value: string): Buffer {
  return createHash('sha256').update(value, 'utf8').digest();
}
